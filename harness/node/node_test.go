package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"

	"github.com/agenttls/agenttls/harness/dockerx/dockertest"
	"github.com/agenttls/agenttls/harness/node"
	"github.com/agenttls/agenttls/harness/sweep"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// recorder keeps the lines written to it and when each arrived.
type recorder struct {
	mu    sync.Mutex
	lines []string
	at    []time.Time
	on    func(line string)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.lines = append(r.lines, string(p))
	r.at = append(r.at, time.Now())
	on := r.on
	r.mu.Unlock()
	if on != nil {
		on(string(p))
	}
	return len(p), nil
}

func (r *recorder) get() ([]string, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...), append([]time.Time(nil), r.at...)
}

func runNode(t *testing.T, img string, opts ...node.Option) *node.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	n, err := node.Run(ctx, img, opts...)
	testcontainers.CleanupContainer(t, n)
	if err != nil {
		t.Fatalf("run node: %v", err)
	}
	t.Logf("node started in %s", time.Since(start).Round(time.Millisecond))
	return n
}

func TestExecStreamsLinesAsTheyArrive(t *testing.T) {
	img := dockertest.NodeImage(t)
	runID := dockertest.RunID(t)
	n := runNode(t, img, node.WithLabels(sweep.Labels(runID)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out, errOut recorder
	start := time.Now()
	code, err := n.ExecStream(ctx, []string{"sh", "-c", `echo one; echo err1 >&2; sleep 0.6; printf 'two\nthree'; exit 7`}, &out, &errOut)
	end := time.Now()
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	if code != 7 {
		t.Errorf("exit code = %d, want 7", code)
	}
	lines, at := out.get()
	if got, want := strings.Join(lines, "|"), "one\n|two\n|three"; got != want {
		t.Errorf("stdout writes = %q, want %q (one write per line, the last without newline)", got, want)
	}
	if got, _ := errOut.get(); strings.Join(got, "|") != "err1\n" {
		t.Errorf("stderr writes = %q, want [\"err1\\n\"]", got)
	}
	if len(at) > 0 {
		// The first line must reach us while the command still runs, not when it ends.
		if early := end.Sub(at[0]); early < 400*time.Millisecond {
			t.Errorf("first line arrived %s before the command ended, want >= 400ms: output is not streamed", early)
		}
		t.Logf("first line after %s; exec took %s", at[0].Sub(start).Round(time.Millisecond), end.Sub(start).Round(time.Millisecond))
	}

	// Round trip of a trivial command, the runner's per-exec overhead.
	const rounds = 10
	start = time.Now()
	for range rounds {
		if code, err := n.ExecStream(ctx, []string{"true"}, nil, nil); err != nil || code != 0 {
			t.Fatalf("exec true: code %d, %v", code, err)
		}
	}
	t.Logf("exec round trip: %s", (time.Since(start) / rounds).Round(time.Millisecond))

	code, err = n.ExecStream(ctx, []string{"no-such-command"}, nil, &errOut)
	if err != nil || code != 127 {
		t.Errorf("exec of a missing command: code %d, err %v; want 127, nil", code, err)
	}
}

func TestExecCancelStopsTheProcessTree(t *testing.T) {
	img := dockertest.NodeImage(t)
	runID := dockertest.RunID(t)
	n := runNode(t, img, node.WithLabels(sweep.Labels(runID)))

	for _, tc := range []struct {
		name string
		cmd  []string
	}{
		{"plain", []string{"sh", "-c", "echo started; exec sleep 100"}},
		// sudo (use_pty) runs the command in a new session: a process-group kill would miss it.
		{"sudo-tree", []string{"sh", "-c", "echo started; sudo sh -c 'sleep 101 & sleep 102; echo not-reached'"}},
		{"pipe", []string{"sh", "-c", "echo started; yes | sudo sh -c 'cat >/dev/null'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var cancelled time.Time
			var once sync.Once
			out := &recorder{on: func(line string) {
				if line == "started\n" {
					// Give the tree a moment to grow its children, then stop it.
					time.AfterFunc(300*time.Millisecond, func() {
						once.Do(func() { cancelled = time.Now(); cancel() })
					})
				}
			}}
			done := make(chan struct{})
			var code int
			var err error
			go func() {
				defer close(done)
				code, err = n.ExecStream(ctx, tc.cmd, out, nil)
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("exec did not return within 20 s of its start")
			}
			stopped := time.Since(cancelled)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("exec err = %v, want context.Canceled (code %d)", err, code)
			}
			if stopped > 1500*time.Millisecond {
				t.Errorf("exec returned %s after cancel, want about 1 s at most", stopped)
			}
			if code != 137 {
				t.Errorf("exit code = %d, want 137 (killed)", code)
			}
			if lines, _ := out.get(); strings.Contains(strings.Join(lines, ""), "not-reached") {
				t.Errorf("the command went on after cancel: %q", lines)
			}
			t.Logf("stopped %s after cancel", stopped.Round(time.Millisecond))

			check, cancelCheck := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancelCheck()
			var ps recorder
			// pgrep exits 1 when nothing matches.
			c, err := n.ExecStream(check, []string{"pgrep", "-af", "^sleep 10[0-9]|^yes|^cat"}, &ps, nil)
			if err != nil || c > 1 {
				t.Fatalf("list processes: code %d, %v", c, err)
			}
			if lines, _ := ps.get(); len(lines) > 0 {
				t.Errorf("processes left running after cancel: %q", lines)
			}
		})
	}
}

func TestRunOptions(t *testing.T) {
	img := dockertest.NodeImage(t)
	runID := dockertest.RunID(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	net, err := network.New(ctx, network.WithLabels(sweep.Labels(runID)))
	testcontainers.CleanupNetwork(t, net)
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	name := "agenttls-" + runID
	n := runNode(t, img,
		node.WithName(name),
		node.WithNetwork(net.Name, "node-a"),
		node.WithHosts(map[string]string{"rancher.agenttls.test": "10.11.12.13"}),
		node.WithLabels(sweep.Labels(runID)),
		node.WithLabels(map[string]string{"org.agenttls.test": "run-options"}),
	)

	var out recorder
	if code, err := n.ExecStream(ctx, []string{"getent", "hosts", "rancher.agenttls.test"}, &out, nil); err != nil || code != 0 {
		t.Fatalf("getent: code %d, %v", code, err)
	}
	if lines, _ := out.get(); len(lines) != 1 || !strings.HasPrefix(lines[0], "10.11.12.13 ") {
		t.Errorf("rancher.agenttls.test resolves to %q, want 10.11.12.13", lines)
	}

	ip, err := n.IP(ctx, net.Name)
	if err != nil {
		t.Fatalf("IP: %v", err)
	}
	var addrs recorder
	if code, err := n.ExecStream(ctx, []string{"sh", "-c", "ip -4 -o addr show | awk '{print $4}'"}, &addrs, nil); err != nil || code != 0 {
		t.Fatalf("ip addr: code %d, %v", code, err)
	}
	if lines, _ := addrs.get(); !strings.Contains(strings.Join(lines, ""), ip+"/") {
		t.Errorf("IP() = %s, but the node's addresses are %q", ip, lines)
	}
	if _, err := n.IP(ctx, "no-such-network"); err == nil {
		t.Error("IP on a network the node is not on: no error")
	}

	in, err := n.Inspect(ctx)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if in.Name != "/"+name {
		t.Errorf("name = %q, want %q", in.Name, "/"+name)
	}
	for k, v := range map[string]string{sweep.LabelRunID: runID, sweep.LabelManaged: "true", "org.agenttls.test": "run-options"} {
		if in.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, in.Config.Labels[k], v)
		}
	}
	if in.HostConfig.Init == nil || !*in.HostConfig.Init {
		t.Error("the node runs without an init to reap killed scripts")
	}
	// Another node on the same network reaches this one by its alias.
	peer := runNode(t, img, node.WithNetwork(net.Name), node.WithLabels(sweep.Labels(runID)))
	var ping recorder
	if code, err := peer.ExecStream(ctx, []string{"getent", "hosts", "node-a"}, &ping, nil); err != nil || code != 0 {
		t.Fatalf("getent node-a from a peer: code %d, %v", code, err)
	}
	if lines, _ := ping.get(); len(lines) != 1 || !strings.HasPrefix(lines[0], ip+" ") {
		t.Errorf("node-a resolves to %q on the peer, want %s", lines, ip)
	}
}

func BenchmarkRunTerminate(b *testing.B) {
	img := dockertest.NodeImage(b)
	runID := dockertest.RunID(b)
	ctx := context.Background()
	for b.Loop() {
		n, err := node.Run(ctx, img, node.WithLabels(sweep.Labels(runID)))
		if n != nil {
			if terr := n.Terminate(ctx); terr != nil {
				b.Fatalf("terminate: %v", terr)
			}
		}
		if err != nil {
			b.Fatalf("run: %v", err)
		}
	}
}

func BenchmarkExecRoundTrip(b *testing.B) {
	img := dockertest.NodeImage(b)
	runID := dockertest.RunID(b)
	ctx := context.Background()
	n, err := node.Run(ctx, img, node.WithLabels(sweep.Labels(runID)))
	b.Cleanup(func() { _ = testcontainers.TerminateContainer(n) })
	if err != nil {
		b.Fatalf("run: %v", err)
	}
	for b.Loop() {
		if code, err := n.ExecStream(ctx, []string{"true"}, nil, nil); err != nil || code != 0 {
			b.Fatal(fmt.Errorf("exec: code %d, %w", code, err))
		}
	}
}
