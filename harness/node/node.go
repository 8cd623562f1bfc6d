// Package node runs node containers: Debian machines from the node image (or a trust variant of
// it) on which the runner executes the registration command. A plain node's main process is
// `sleep infinity` under the engine's init, so it starts in a fraction of a second and reaps what
// the script leaves behind; systemd is not needed.
package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"

	"github.com/agenttls/agenttls/harness/dockerx"
	"github.com/agenttls/agenttls/harness/sweep"
)

// Node is a running node container.
type Node struct {
	testcontainers.Container
	cli *client.Client
}

// Option configures Run.
type Option func(*options) error

type options struct {
	name        string
	networks    []network
	hosts       map[string]string
	labels      map[string]string
	env         map[string]string
	customizers []testcontainers.ContainerCustomizer
}

type network struct {
	name    string
	aliases []string
}

// WithNetwork attaches the node to the Docker network name (it may be given more than once), with
// optional DNS aliases on it.
func WithNetwork(name string, aliases ...string) Option {
	return func(o *options) error {
		if name == "" {
			return errors.New("WithNetwork: empty network name")
		}
		o.networks = append(o.networks, network{name: name, aliases: aliases})
		return nil
	}
}

// WithHosts makes host names resolve to the given IPs on the node (written to its /etc/hosts as
// the engine's extra hosts): this is how a node reaches "Rancher" through a proxy.
func WithHosts(hosts map[string]string) Option {
	return func(o *options) error {
		if o.hosts == nil {
			o.hosts = map[string]string{}
		}
		maps.Copy(o.hosts, hosts)
		return nil
	}
}

// WithLabels adds container labels; pass sweep.Labels(runID) so that the run's sweep finds the
// node even when nobody terminated it.
func WithLabels(labels map[string]string) Option {
	return func(o *options) error {
		if o.labels == nil {
			o.labels = map[string]string{}
		}
		maps.Copy(o.labels, labels)
		return nil
	}
}

// WithName sets the container name.
func WithName(name string) Option {
	return func(o *options) error {
		o.name = name
		return nil
	}
}

// WithEnv sets environment variables of the node's main process (not of Exec'd commands).
func WithEnv(env map[string]string) Option {
	return func(o *options) error {
		if o.env == nil {
			o.env = map[string]string{}
		}
		maps.Copy(o.env, env)
		return nil
	}
}

// WithCustomizers passes testcontainers customizers through, applied after the node's own
// settings (a logger, lifecycle hooks, files).
func WithCustomizers(c ...testcontainers.ContainerCustomizer) Option {
	return func(o *options) error {
		o.customizers = append(o.customizers, c...)
		return nil
	}
}

// Run starts a node from image img. As testcontainers modules do, it returns the node even with
// an error whenever a container was created, so that the caller can terminate it: register
// testcontainers.TerminateContainer before checking the error.
func Run(ctx context.Context, img string, opts ...Option) (*Node, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("run node: %w", err)
		}
	}
	labels := map[string]string{sweep.LabelManaged: "true"}
	maps.Copy(labels, o.labels)
	hosts := make([]string, 0, len(o.hosts))
	for _, h := range slices.Sorted(maps.Keys(o.hosts)) {
		hosts = append(hosts, h+":"+o.hosts[h])
	}

	custom := []testcontainers.ContainerCustomizer{
		testcontainers.WithCmd("sleep", "infinity"),
		testcontainers.WithLabels(labels),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			init := true
			hc.Init = &init // the engine's init reaps what killed scripts leave behind
			hc.ExtraHosts = append(hc.ExtraHosts, hosts...)
		}),
	}
	if o.name != "" {
		custom = append(custom, testcontainers.WithName(o.name))
	}
	if len(o.env) > 0 {
		custom = append(custom, testcontainers.WithEnv(o.env))
	}
	for _, n := range o.networks {
		custom = append(custom, tcnetwork.WithNetworkName(n.aliases, n.name))
	}
	custom = append(custom, o.customizers...)

	cli, err := dockerx.Client(ctx)
	if err != nil {
		return nil, fmt.Errorf("run node: %w", err)
	}
	ctr, err := testcontainers.Run(ctx, img, custom...)
	var n *Node
	if ctr != nil {
		n = &Node{Container: ctr, cli: cli}
	} else {
		_ = cli.Close()
	}
	if err != nil {
		return n, fmt.Errorf("run node from %s: %w", img, err)
	}
	return n, nil
}

// Terminate stops and removes the node and releases its Docker client.
func (n *Node) Terminate(ctx context.Context, opts ...testcontainers.TerminateOption) error {
	err := n.Container.Terminate(ctx, opts...)
	if n.cli != nil {
		_ = n.cli.Close()
	}
	return err
}

// IP returns the node's address on the Docker network name.
func (n *Node) IP(ctx context.Context, name string) (string, error) {
	in, err := n.cli.ContainerInspect(ctx, n.GetContainerID())
	if err != nil {
		return "", fmt.Errorf("node IP: inspect: %w", err)
	}
	if in.NetworkSettings != nil {
		if ep, ok := in.NetworkSettings.Networks[name]; ok && ep != nil && ep.IPAddress != "" {
			return ep.IPAddress, nil
		}
	}
	return "", fmt.Errorf("node IP: the node is not attached to network %q", name)
}

// Attach returns a Node for a running container that something else created and owns (a
// k3d-managed node), so that the harness can run commands on it as on its own nodes. The owner
// removes the container its own way and calls Release; Terminate would remove it through
// testcontainers.
func Attach(ctx context.Context, containerID string) (*Node, error) {
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return nil, fmt.Errorf("attach node: %w", err)
	}
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("attach node: %w", err)
	}
	in, err := cli.ContainerInspect(ctx, containerID)
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("attach node %s: %w", containerID, err)
	}
	state := "exited"
	if in.State != nil && in.State.Running {
		state = "running"
	}
	ctr, err := p.ContainerFromType(ctx, container.Summary{ID: in.ID, Image: in.Config.Image, Labels: in.Config.Labels, State: state})
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("attach node %s: %w", containerID, err)
	}
	return &Node{Container: ctr, cli: cli}, nil
}

// Release frees what the harness holds for the node (its Docker client) without touching the
// container; for attached nodes whose owner removes them.
func (n *Node) Release() error {
	if n.cli == nil {
		return nil
	}
	err := n.cli.Close()
	n.cli = nil
	return err
}
