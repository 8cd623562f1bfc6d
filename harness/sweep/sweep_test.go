package sweep_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dnetwork "github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"

	"github.com/agenttls/agenttls/harness/dockerx"
	"github.com/agenttls/agenttls/harness/dockerx/dockertest"
	"github.com/agenttls/agenttls/harness/sweep"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

func TestLabels(t *testing.T) {
	l := sweep.Labels("r1")
	want := map[string]string{"org.agenttls.run-id": "r1", "org.agenttls.managed": "true"}
	if !maps.Equal(l, want) {
		t.Fatalf("Labels = %v, want %v", l, want)
	}
	l["x"] = "y"
	if _, ok := sweep.Labels("r1")["x"]; ok {
		t.Fatal("Labels returns a shared map")
	}
}

// fixture makes, for one run id, a running container, a created-only container, a network and
// an image, all labelled with labels.
type fixture struct {
	containers []string // ids
	network    string   // id
	image      string   // tag
}

func makeFixture(t *testing.T, cli *client.Client, idle string, labels map[string]string, tag string) fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var f fixture
	net, err := network.New(ctx, network.WithLabels(labels))
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	f.network = net.ID
	for _, started := range []bool{true, false} {
		opts := []testcontainers.ContainerCustomizer{
			testcontainers.WithEntrypoint("/idle"),
			testcontainers.WithLabels(labels),
			network.WithNetwork(nil, net),
		}
		if !started {
			opts = append(opts, testcontainers.WithNoStart())
		}
		ctr, err := testcontainers.Run(ctx, idle, opts...)
		if ctr != nil {
			f.containers = append(f.containers, ctr.GetContainerID())
		}
		if err != nil {
			t.Fatalf("container: %v", err)
		}
	}
	if err := dockerx.ImportImage(ctx, cli, tag, []dockerx.File{{Name: "marker", Mode: 0o644, Body: []byte(tag)}}, labels); err != nil {
		t.Fatalf("image: %v", err)
	}
	f.image = tag
	return f
}

func (f fixture) assertGone(t *testing.T, cli *client.Client) {
	t.Helper()
	ctx := context.Background()
	for _, id := range f.containers {
		if _, err := cli.ContainerInspect(ctx, id); !cerrdefs.IsNotFound(err) {
			t.Errorf("container %s still there (inspect err %v)", id[:12], err)
		}
	}
	if _, err := cli.NetworkInspect(ctx, f.network, dnetwork.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("network %s still there (inspect err %v)", f.network[:12], err)
	}
	if ok, err := dockerx.ImageExists(ctx, cli, f.image); ok || err != nil {
		t.Errorf("image %s still there (err %v)", f.image, err)
	}
}

func (f fixture) assertPresent(t *testing.T, cli *client.Client) {
	t.Helper()
	ctx := context.Background()
	for _, id := range f.containers {
		if _, err := cli.ContainerInspect(ctx, id); err != nil {
			t.Errorf("container %s was removed: %v", id[:12], err)
		}
	}
	if _, err := cli.NetworkInspect(ctx, f.network, dnetwork.InspectOptions{}); err != nil {
		t.Errorf("network %s was removed: %v", f.network[:12], err)
	}
	if ok, err := dockerx.ImageExists(ctx, cli, f.image); !ok || err != nil {
		t.Errorf("image %s was removed (err %v)", f.image, err)
	}
}

func TestSweepRemovesOnlyItsRun(t *testing.T) {
	cli := dockertest.Require(t)
	idle := dockertest.IdleImage(t)
	runA, runB := dockertest.RunID(t), dockertest.RunID(t)
	a := makeFixture(t, cli, idle, sweep.Labels(runA), "agenttls/sweep-test:"+runA)
	b := makeFixture(t, cli, idle, sweep.Labels(runB), "agenttls/sweep-test:"+runB)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Each run's host lock files too (an image lock of run A and of run B).
	var lockFiles []string
	for _, id := range []string{runA, runB} {
		unlock, err := dockerx.Lock(ctx, "image-agenttls/sweep-test:"+id)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
		dir, _ := dockerx.LockDir()
		matches, _ := filepath.Glob(filepath.Join(dir, "*"+id+"*"))
		if len(matches) != 1 {
			t.Fatalf("lock files of %s: %v", id, matches)
		}
		lockFiles = append(lockFiles, matches[0])
	}
	start := time.Now()
	removed, err := sweep.Sweep(ctx, runA)
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	t.Logf("sweep of %s took %s: %s", runA, time.Since(start).Round(time.Millisecond), removed)
	if len(removed.Containers) != 2 || len(removed.Networks) != 1 || len(removed.Images) != 1 {
		t.Errorf("removed = %+v, want 2 containers, 1 network, 1 image", removed)
	}
	if !slices.ContainsFunc(removed.Images, func(s string) bool { return strings.Contains(s, runA) }) {
		t.Errorf("removed images %v do not name %s", removed.Images, runA)
	}
	a.assertGone(t, cli)
	b.assertPresent(t, cli)
	if _, err := os.Stat(lockFiles[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run A's lock file is still there: %v", err)
	}
	if _, err := os.Stat(lockFiles[1]); err != nil {
		t.Errorf("run B's lock file went with run A's sweep: %v", err)
	}

	again, err := sweep.Sweep(ctx, runA)
	if err != nil || !again.Empty() {
		t.Errorf("second sweep of %s: %s, %v; want nothing to remove", runA, again, err)
	}
	if _, err := sweep.Sweep(ctx, runB); err != nil {
		t.Fatalf("sweep %s: %v", runB, err)
	}
	b.assertGone(t, cli)

	if _, err := sweep.Sweep(ctx, ""); err == nil {
		t.Error("sweep of an empty run id: no error")
	}
}

func TestSweepStaleHonoursAge(t *testing.T) {
	cli := dockertest.Require(t)
	idle := dockertest.IdleImage(t)
	runID := dockertest.RunID(t)
	labels := sweep.Labels(runID)
	labels["org.agenttls.test"] = runID
	f := makeFixture(t, cli, idle, labels, "agenttls/sweep-test:"+runID)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The real entry point with a bound no fresh resource passes: ours stay.
	if _, err := sweep.SweepStale(ctx, 7*24*time.Hour); err != nil {
		t.Fatalf("sweep stale: %v", err)
	}
	f.assertPresent(t, cli)
	// Restricted to this test's label: a cutoff in the past keeps them, one after their creation
	// removes them.
	if r, err := sweep.StaleMatching(ctx, time.Now().Add(-time.Hour), "org.agenttls.test", runID); err != nil || !r.Empty() {
		t.Fatalf("stale sweep with a past cutoff: %s, %v; want nothing removed", r, err)
	}
	f.assertPresent(t, cli)
	r, err := sweep.StaleMatching(ctx, time.Now().Add(2*time.Second), "org.agenttls.test", runID)
	if err != nil {
		t.Fatalf("stale sweep: %v", err)
	}
	if len(r.Containers) != 2 || len(r.Networks) != 1 || len(r.Images) != 1 {
		t.Errorf("removed = %+v, want 2 containers, 1 network, 1 image", r)
	}
	f.assertGone(t, cli)
}
