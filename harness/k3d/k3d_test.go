package k3d_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/testcontainers/testcontainers-go/network"

	"github.com/agenttls/agenttls/harness/dockerx/dockertest"
	"github.com/agenttls/agenttls/harness/k3d"
	"github.com/agenttls/agenttls/harness/sweep"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// privileged returns what this host allows, probed once per test.
func privileged(t *testing.T, img string, runID string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ok, err := k3d.PrivilegedWorks(ctx, img, sweep.Labels(runID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("privileged containers on this host: %v", ok)
	return ok
}

// TestNodeLifecycle creates a systemd node through k3d on a run's network, checks what k3d and
// the harness put on it, runs a command, and deletes it: nothing of it is left.
func TestNodeLifecycle(t *testing.T) {
	img := dockertest.NodeImage(t)
	cli := dockertest.Require(t)
	runID := dockertest.RunID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	net, err := network.New(ctx, network.WithLabels(sweep.Labels(runID)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = net.Remove(context.Background()) })

	start := time.Now()
	n, err := k3d.RunNode(ctx, img, k3d.WithName("agenttls-"+runID+"-k3d"), k3d.WithNetwork(net.Name),
		k3d.WithLabels(sweep.Labels(runID)), k3d.WithPrivileged(privileged(t, img, runID)))
	t.Cleanup(func() { _ = n.Terminate(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("k3d node with systemd up in %s", time.Since(start).Round(time.Millisecond))

	in, err := cli.ContainerInspect(ctx, n.Name())
	if err != nil {
		t.Fatal(err)
	}
	l := in.Config.Labels
	if l["app"] != "k3d" || l["k3d.role"] != "noRole" || l[sweep.LabelRunID] != runID || l[sweep.LabelManaged] != "true" {
		t.Fatalf("labels %v: want k3d's (app=k3d, k3d.role) and the run's", l)
	}
	if in.Config.Image != img {
		t.Fatalf("image %s", in.Config.Image)
	}

	var out bytes.Buffer
	code, err := n.ExecStream(ctx, []string{"sh", "-c", "cat /proc/1/comm; systemctl is-system-running; for c in curl openssl sudo; do command -v $c; done"}, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("exec: %d %v\n%s", code, err, out.String())
	}
	lines := strings.Fields(out.String())
	if len(lines) < 5 || lines[0] != "systemd" || (lines[1] != "running" && lines[1] != "degraded") {
		t.Fatalf("PID 1 is not a booted systemd:\n%s", out.String())
	}
	ip, err := n.IP(ctx, net.Name)
	if err != nil || ip == "" {
		t.Fatalf("IP on the run's network: %q %v", ip, err)
	}

	if err := n.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", sweep.LabelRunID+"="+runID))})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%d container(s) of the run left after Terminate", len(left))
	}
}

// TestNodeSleepInitAndFailedStart: the light init works too; a node whose start fails is still
// handed back and removed; a missing image is refused without any pull.
func TestNodeSleepInitAndFailedStart(t *testing.T) {
	img := dockertest.NodeImage(t)
	cli := dockertest.Require(t)
	runID := dockertest.RunID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	priv := privileged(t, img, runID)

	n, err := k3d.RunNode(ctx, img, k3d.WithInit(k3d.InitSleep), k3d.WithLabels(sweep.Labels(runID)), k3d.WithPrivileged(priv))
	t.Cleanup(func() { _ = n.Terminate(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code, err := n.ExecStream(ctx, []string{"cat", "/proc/1/comm"}, &out, nil); err != nil || code != 0 || strings.TrimSpace(out.String()) != "docker-init" {
		t.Fatalf("sleep init: PID 1 is %q (%d %v), want the engine's init", out.String(), code, err)
	}
	if err := n.Terminate(ctx); err != nil {
		t.Fatal(err)
	}

	// A network that does not exist makes k3d's start fail after the container exists... or the
	// create fail; either way nothing may be left once Terminate ran.
	bad, err := k3d.RunNode(ctx, img, k3d.WithLabels(sweep.Labels(runID)), k3d.WithNetwork("agenttls-no-such-network-"+runID), k3d.WithPrivileged(priv))
	if err == nil {
		t.Fatal("a node on a missing network started")
	}
	if bad != nil {
		if err := bad.Terminate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	left, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", sweep.LabelRunID+"="+runID))})
	if len(left) != 0 {
		t.Fatalf("%d container(s) left after a failed start", len(left))
	}

	if _, err := k3d.RunNode(ctx, "agenttls/no-such-image:"+runID); err == nil || !strings.Contains(err.Error(), "not present locally") {
		t.Fatalf("missing image: %v", err)
	}
}
