// Package k3d provides k3d-managed node containers for the Rancher tier: machines created,
// started and deleted through the k3d v5 library (pkg/client NodeRun / NodeDelete, with k3d's
// runtime labels plus the harness's own), from the locally built node image, booting systemd as
// a custom node does.
//
// A k3d *cluster* is not made: it needs the k3s, k3d-tools and k3d-proxy images, which cannot be
// pulled on an offline machine, and the registration command needs no Kubernetes on the node.
// The nodes are standalone k3d nodes (role noRole) on the run's Docker network.
//
// k3d creates every node privileged and with the engine's init as PID 1. systemd must be PID 1,
// and some hosts (rootless or nested engines) cannot grant privileged mode; so container
// creation goes through a thin wrapper of k3d's Docker runtime that takes k3d's own translation
// of the node and changes only those two things when asked (WithInit, WithPrivileged). Start,
// lookup and deletion are k3d's.
package k3d

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	k3dclient "github.com/k3d-io/k3d/v5/pkg/client"
	"github.com/k3d-io/k3d/v5/pkg/runtimes"
	k3ddocker "github.com/k3d-io/k3d/v5/pkg/runtimes/docker"
	k3dtypes "github.com/k3d-io/k3d/v5/pkg/types"

	"github.com/agenttls/agenttls/harness/dockerx"
	"github.com/agenttls/agenttls/harness/node"
	"github.com/agenttls/agenttls/harness/sweep"
)

// Init is what runs as the node's main process.
type Init string

const (
	// InitSystemd boots systemd as PID 1 (/sbin/init), as on a real machine; the install script's
	// systemctl calls then work. The default.
	InitSystemd Init = "systemd"
	// InitSleep runs `sleep infinity` under the engine's init, like the plain testcontainers
	// nodes: faster, but systemctl does not work.
	InitSleep Init = "sleep"
)

// Node is a running k3d-managed node. Exec and addresses come from the embedded harness node;
// Terminate deletes it through k3d.
type Node struct {
	*node.Node
	k3d     *k3dtypes.Node
	rt      runtimes.Runtime
	deleted bool
}

type options struct {
	name       string
	networks   []string
	labels     map[string]string
	env        []string
	init       Init
	privileged bool
	bootWait   time.Duration
}

// Option configures RunNode.
type Option func(*options) error

// WithName sets the node (container) name. Default: agenttls-node-<random>.
func WithName(name string) Option {
	return func(o *options) error {
		if name == "" {
			return errors.New("WithName: empty name")
		}
		o.name = name
		return nil
	}
}

// WithNetwork attaches the node to a Docker network (the run's).
func WithNetwork(name string) Option {
	return func(o *options) error {
		if name == "" {
			return errors.New("WithNetwork: empty network name")
		}
		o.networks = append(o.networks, name)
		return nil
	}
}

// WithLabels adds runtime labels on top of k3d's (pass sweep.Labels(runID) so that the run's
// sweep finds the node even if nobody deleted it).
func WithLabels(l map[string]string) Option {
	return func(o *options) error { maps.Copy(o.labels, l); return nil }
}

// WithEnv adds NAME=value environment variables to the node's main process.
func WithEnv(env ...string) Option {
	return func(o *options) error {
		for _, e := range env {
			if !strings.Contains(e, "=") {
				return fmt.Errorf("WithEnv: %q is not NAME=value", e)
			}
		}
		o.env = append(o.env, env...)
		return nil
	}
}

// WithInit chooses the main process (InitSystemd by default).
func WithInit(i Init) Option {
	return func(o *options) error {
		if i != InitSystemd && i != InitSleep {
			return fmt.Errorf("WithInit: %q: use %q or %q", i, InitSystemd, InitSleep)
		}
		o.init = i
		return nil
	}
}

// WithPrivileged says whether the node runs privileged, as k3d makes every node (the default).
// On hosts that cannot grant it (PrivilegedWorks), false gives the node CAP_SYS_ADMIN and the
// host's cgroup tree instead, which is what systemd needs.
func WithPrivileged(p bool) Option { return func(o *options) error { o.privileged = p; return nil } }

// WithBootWait bounds the wait for systemd to finish booting (default 60s).
func WithBootWait(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("WithBootWait: the bound must be positive")
		}
		o.bootWait = d
		return nil
	}
}

// RunNode creates and starts a node from image img through k3d and, with systemd, waits until
// it has booted. Like testcontainers modules it returns the node even with an error whenever a
// container was created, so that the caller can Terminate it; register that before checking
// the error.
func RunNode(ctx context.Context, img string, opts ...Option) (*Node, error) {
	o := options{labels: map[string]string{sweep.LabelManaged: "true"}, init: InitSystemd, privileged: true, bootWait: time.Minute}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("run k3d node: %w", err)
		}
	}
	if o.name == "" {
		o.name = "agenttls-node-" + randomSuffix()
	}
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return nil, fmt.Errorf("run k3d node: %w", err)
	}
	present, err := dockerx.ImageExists(ctx, cli, img)
	cli.Close()
	if err != nil {
		return nil, fmt.Errorf("run k3d node: %w", err)
	}
	if !present {
		// k3d would try to pull it; the node image is only ever built locally.
		return nil, fmt.Errorf("run k3d node: image %s is not present locally: build it first (`agenttls images`)", img)
	}

	kn := &k3dtypes.Node{
		Name:          o.name,
		Role:          k3dtypes.NoRole,
		Image:         img,
		Networks:      append([]string(nil), o.networks...),
		RuntimeLabels: maps.Clone(o.labels),
		Env:           append([]string{"container=docker"}, o.env...),
	}
	switch o.init {
	case InitSystemd:
		kn.Cmd = []string{"/sbin/init"}
	default:
		kn.Cmd = []string{"sleep", "infinity"}
	}
	rt := hostRuntime{Runtime: runtimes.Docker, init: o.init, privileged: o.privileged}
	n := &Node{k3d: kn, rt: rt}
	runErr := k3dclient.NodeRun(ctx, rt, kn, k3dtypes.NodeCreateOpts{})
	if _, err := inspect(context.WithoutCancel(ctx), o.name); err != nil {
		// Nothing was created: nothing to hand back.
		if runErr != nil {
			return nil, fmt.Errorf("run k3d node %s: %w", o.name, runErr)
		}
		return nil, fmt.Errorf("run k3d node %s: %w", o.name, err)
	}
	if runErr != nil {
		return n, fmt.Errorf("run k3d node %s: %w", o.name, runErr)
	}
	hn, err := node.Attach(ctx, o.name)
	if err != nil {
		return n, fmt.Errorf("run k3d node %s: %w", o.name, err)
	}
	n.Node = hn
	if o.init == InitSystemd {
		if err := n.waitBooted(ctx, o.bootWait); err != nil {
			return n, fmt.Errorf("run k3d node %s: %w", o.name, err)
		}
	}
	return n, nil
}

// Name is the node's container name.
func (n *Node) Name() string { return n.k3d.Name }

// Labels are the node's runtime labels (k3d's and the harness's).
func (n *Node) Labels() map[string]string { return maps.Clone(n.k3d.RuntimeLabels) }

// waitBooted waits until systemd reports the system running (or degraded: some units of a
// container-sized Debian may fail, which does not matter to the install script).
func (n *Node) waitBooted(ctx context.Context, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	last := ""
	for {
		_, out, err := dockerx.ExecOutput(ctx, cli, n.k3d.Name, []string{"systemctl", "is-system-running"})
		state := strings.TrimSpace(string(out))
		if err == nil && (state == "running" || state == "degraded") {
			return nil
		}
		if state != "" {
			last = state
		}
		in, ierr := inspect(ctx, n.k3d.Name)
		if ierr == nil && (in.State == nil || !in.State.Running) {
			return fmt.Errorf("the node exited while systemd booted (exit code %d); the host may not allow systemd in containers: try WithInit(k3d.InitSleep)", in.State.ExitCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("systemd did not finish booting within %s (state %q)", bound, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Terminate deletes the node through k3d and checks that its container is gone (k3d logs, but
// does not return, a failed container removal); it also releases the harness's Docker client.
func (n *Node) Terminate(ctx context.Context) error {
	if n == nil || n.k3d == nil || n.deleted {
		return nil
	}
	var errs []error
	if n.Node != nil {
		errs = append(errs, n.Node.Release())
	}
	if err := k3dclient.NodeDelete(ctx, n.rt, n.k3d, k3dtypes.NodeDeleteOpts{SkipLBUpdate: true}); err != nil {
		errs = append(errs, fmt.Errorf("delete k3d node %s: %w", n.k3d.Name, err))
	}
	if _, err := inspect(ctx, n.k3d.Name); err == nil {
		errs = append(errs, fmt.Errorf("delete k3d node %s: the container is still there; remove it with `agenttls sweep`", n.k3d.Name))
	} else if !cerrdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete k3d node %s: check removal: %w", n.k3d.Name, err))
	} else {
		n.deleted = true
	}
	return errors.Join(errs...)
}

func inspect(ctx context.Context, name string) (container.InspectResponse, error) {
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return container.InspectResponse{}, err
	}
	defer cli.Close()
	return cli.ContainerInspect(ctx, name)
}

// hostRuntime is k3d's Docker runtime with container creation adjusted to the node's init and to
// what the host grants; everything else is k3d's.
type hostRuntime struct {
	runtimes.Runtime
	init       Init
	privileged bool
}

// CreateNode translates the node with k3d's own translation, changes init and privileges as
// asked, and creates the container (never pulling: the image is local).
func (r hostRuntime) CreateNode(ctx context.Context, kn *k3dtypes.Node) error {
	dn, err := k3ddocker.TranslateNodeToContainer(kn)
	if err != nil {
		return fmt.Errorf("translate k3d node %s: %w", kn.Name, err)
	}
	adjust(&dn.HostConfig, r.init, r.privileged)
	// k3d uses the node name as host name, which the kernel bounds to 64 bytes.
	if h := dn.ContainerConfig.Hostname; len(h) > 63 {
		dn.ContainerConfig.Hostname = strings.Trim(h[:63], "-.")
	}
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.ContainerCreate(ctx, &dn.ContainerConfig, &dn.HostConfig, &dn.NetworkingConfig, nil, kn.Name); err != nil {
		return fmt.Errorf("create container for k3d node %s: %w", kn.Name, err)
	}
	return nil
}

// adjust changes k3d's host config for the node's init and the host's privileges.
func adjust(hc *container.HostConfig, init Init, privileged bool) {
	hc.Privileged = privileged
	if init == InitSystemd {
		no := false
		hc.Init = &no // systemd must be PID 1
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs["/run/lock"] = ""
		if !privileged {
			// What privileged mode would have given systemd: mounting rights and a writable
			// cgroup tree.
			hc.CapAdd = append(hc.CapAdd, "SYS_ADMIN")
			hc.Binds = append(hc.Binds, "/sys/fs/cgroup:/sys/fs/cgroup:rw")
			hc.CgroupnsMode = container.CgroupnsModeHost
		}
	}
}

// PrivilegedWorks reports whether the Docker host can run privileged containers, by starting one
// from img (a local image with `true`) and removing it. Nested or rootless engines often cannot.
func PrivilegedWorks(ctx context.Context, img string, labels map[string]string) (bool, error) {
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return false, err
	}
	defer cli.Close()
	l := map[string]string{sweep.LabelManaged: "true"}
	maps.Copy(l, labels)
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Cmd: []string{"true"}, Labels: l},
		&container.HostConfig{Privileged: true}, nil, nil, "agenttls-privileged-probe-"+randomSuffix())
	if err != nil {
		return false, fmt.Errorf("probe privileged mode: %w", err)
	}
	defer func() {
		_ = cli.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true})
	}()
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		if strings.Contains(err.Error(), "operation not permitted") || strings.Contains(err.Error(), "caps") {
			return false, nil
		}
		return false, fmt.Errorf("probe privileged mode: %w", err)
	}
	return true, nil
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
