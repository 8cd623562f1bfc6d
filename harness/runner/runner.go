// Package runner runs one matrix cell: it builds the registration command the way Rancher's
// nodeCommand looks, starts a node whose trust store and name resolution match the cell, runs
// the command with the real install script, streams the output to the classifier, stops the
// script as soon as the verdict is proven, and gathers the server-side evidence.
package runner

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agenttls/agenttls/harness/classify"
	"github.com/agenttls/agenttls/harness/command"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/oracle"
	"github.com/agenttls/agenttls/harness/testbed"
	"github.com/agenttls/agenttls/harness/verdict"
)

// Result is what one cell showed.
type Result struct {
	Cell       matrix.Cell
	Command    string
	Expected   oracle.Expectation
	Observed   classify.Observation
	ExitCode   int // classify.Stopped when the runner stopped the script
	Transcript string
	Requests   int
	Timings    Timings
	Registered bool
	// InterceptedBy is the proxy mode the registration came through ("" when direct).
	InterceptedBy string
	NodeAddress   string
	// Script and RunID name the run in the transcript header.
	Script, RunID string
}

// Timings split a cell's wall time into the harness's own work and the script's.
type Timings struct {
	NodeStart time.Duration // create and start the node container
	Script    time.Duration // from exec start to the script's end or its stop
	Verdict   time.Duration // from exec start to the line that proved the verdict (0: none)
	// FirstFailure is from exec start to curl's first error line (0: none): for a refused
	// connection check, Verdict - FirstFailure is how long the harness took to decide.
	FirstFailure time.Duration
	Evidence     time.Duration // fetching server-side records
	Teardown     time.Duration // removing the node
	Total        time.Duration
}

// Overhead is the harness's share of the cell's wall time.
func (t Timings) Overhead() time.Duration { return t.Total - t.Script }

type options struct {
	timeout    time.Duration
	artifacts  string
	expect     func(matrix.Cell) oracle.Expectation
	insecureFn func(matrix.CAKind) bool
	backend    Backend
}

// WithBackend runs the cell with b (made once per process with NewBackend); by default Run
// makes one for the testbed's tier.
func WithBackend(b Backend) Option {
	return func(o *options) error {
		if b == nil {
			return errors.New("WithBackend: nil backend")
		}
		o.backend = b
		return nil
	}
}

// Option configures Run.
type Option func(*options) error

// WithTimeout bounds the whole cell (default 60s); past it the verdict is timeout.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("cell timeout must be positive")
		}
		o.timeout = d
		return nil
	}
}

// WithArtifacts writes the cell's transcript under dir/transcripts.
func WithArtifacts(dir string) Option {
	return func(o *options) error { o.artifacts = dir; return nil }
}

// WithExpectation replaces the oracle (the suite's self-test uses it to flip one answer).
func WithExpectation(f func(matrix.Cell) oracle.Expectation) Option {
	return func(o *options) error { o.expect = f; return nil }
}

// InsecureDownload says whether the node downloads the script with --insecure: what Rancher's
// insecureNodeCommand does and what a user of a private CA runs, since the node cannot verify
// a private CA before it has one. Users of a public CA run the plain nodeCommand.
func InsecureDownload(ca matrix.CAKind) bool { return ca != matrix.CAPublic }

// Run runs cell c on the testbed d.
func Run(ctx context.Context, d *testbed.Description, nodes *Nodes, c matrix.Cell, opts ...Option) (*Result, error) {
	o := options{timeout: 60 * time.Second, insecureFn: InsecureDownload}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("run cell %s: %w", c.ID(), err)
		}
	}
	t, err := d.For(c)
	if err != nil {
		return nil, fmt.Errorf("run cell %s: %w", c.ID(), err)
	}
	b := o.backend
	if b == nil {
		if b, err = NewBackend(d); err != nil {
			return nil, fmt.Errorf("run cell %s: %w", c.ID(), err)
		}
	}
	res := &Result{Cell: c}
	if o.expect != nil {
		res.Expected = o.expect(c)
	} else {
		res.Expected = Expect(d, c)
	}
	base, err := b.NodeCommand(c, t)
	if err != nil {
		return nil, fmt.Errorf("run cell %s: %w", c.ID(), err)
	}
	res.Command, err = command.ForCell(base, c, t.Checksums, o.insecureFn(c.CA))
	if err != nil {
		return nil, err
	}

	// The server in the cell's mode (a no-op where each mode has its own server), held until
	// the cell is done. Waiting for a switch has its own bound; the cell's starts after it.
	hctx, hcancel := context.WithTimeout(ctx, o.timeout)
	release, err := b.Hold(hctx, c)
	hcancel()
	if err != nil {
		return res, fmt.Errorf("run cell %s: %w", c.ID(), err)
	}
	defer release()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	// The node: its system store is the cell's (the node image); /etc/hosts is set below.
	lease, err := nodes.Get(ctx, t.NodeImage)
	broken := true
	defer func() {
		td := time.Now()
		// A fresh context: the cell's may have expired, and the node must go back regardless.
		tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer tcancel()
		_ = nodes.Put(tctx, lease, broken)
		res.Timings.Teardown = time.Since(td)
		res.Timings.Total = time.Since(start)
	}()
	if err != nil {
		return res, stageErr(ctx, c, "start its node", o.timeout, err)
	}
	n := lease.Node
	res.Timings.NodeStart = lease.Started
	res.NodeAddress = lease.IP

	// Where the server's records stand before the script.
	mark, err := b.Mark(ctx, t)
	if err != nil {
		return res, stageErr(ctx, c, "read the server's records", o.timeout, err)
	}

	// The script, streamed into the classifier; stopped once a verdict is proven.
	cl := classify.New(d.Profile)
	tr := &transcript{}
	execCtx, stop := context.WithCancel(ctx)
	defer stop()
	scriptStart := time.Now()
	var mu sync.Mutex
	feed := func(stream string) lineFunc {
		return func(line string) {
			mu.Lock()
			defer mu.Unlock()
			tr.add(stream, line)
			if stream == classify.Stderr && res.Timings.FirstFailure == 0 && strings.HasPrefix(line, "curl: (") {
				res.Timings.FirstFailure = time.Since(scriptStart)
			}
			if !cl.Decided() && cl.Line(stream, line) {
				res.Timings.Verdict = time.Since(scriptStart)
				if exitsAtOnce(cl.Proven()) {
					// The script exits right after this line: let it, and stop it only if it
					// does not (saves an exec into the node, which costs CPU on every cell).
					time.AfterFunc(exitGrace, stop)
				} else {
					stop()
				}
			}
		}
	}
	exit, execErr := n.ExecStream(execCtx, []string{"sh", "-c", prepare(d.Hostname, t.HostIP) + "\n" + res.Command},
		lineWriter(feed(classify.Stdout)), lineWriter(feed(classify.Stderr)))
	res.Timings.Script = time.Since(scriptStart)
	mu.Lock()
	decided := cl.Decided()
	reportedInfo := cl.Proven() == verdict.Registered
	mu.Unlock()
	timedOut := false
	switch {
	case execErr == nil:
	case decided && errors.Is(execErr, context.Canceled):
		exit = classify.Stopped
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		exit, timedOut = classify.Stopped, true
	default:
		return res, fmt.Errorf("run cell %s: exec: %w", c.ID(), execErr)
	}
	res.ExitCode = exit

	// Server-side evidence, with a context of its own (the cell's may be spent).
	evStart := time.Now()
	bound := 15 * time.Second
	if r, ok := d.Rancher[c.CA]; ok {
		bound += r.WaitNodeRegistered // Rancher may take a moment to show the machine
	}
	ectx, ecancel := context.WithTimeout(context.Background(), bound)
	defer ecancel()
	sv, err := b.Evidence(ectx, c, t, mark, n, res.NodeAddress, reportedInfo)
	if err != nil {
		return res, fmt.Errorf("run cell %s: read server records: %w", c.ID(), err)
	}
	res.Timings.Evidence = time.Since(evStart)
	res.Requests = sv.Requests
	res.Registered = len(sv.Registrations) > 0
	if res.Registered {
		res.InterceptedBy = sv.Registrations[0].InterceptedBy
	}
	res.Script, res.RunID = d.ScriptVersion, d.RunID
	if timedOut && !decided {
		res.Observed = classify.Observation{Verdict: verdict.Timeout,
			Evidence: verdict.Evidence{Source: "timer", Line: fmt.Sprintf("no verdict proven within %s", o.timeout)},
			Detail:   fmt.Sprintf("the cell timeout (-cell-timeout %s) ran out after %s of script; see the transcript", o.timeout, res.Timings.Script.Round(100*time.Millisecond))}
	} else {
		res.Observed = cl.Finish(exit, sv)
	}
	if o.artifacts != "" {
		if res.Transcript, err = tr.write(o.artifacts, c, res); err != nil {
			return res, err
		}
	}
	broken = false
	return res, nil
}

// Expect is the oracle's answer for cell c on testbed d, including the script download that
// comes before the script (see InsecureDownload).
func Expect(d *testbed.Description, c matrix.Cell) oracle.Expectation {
	return oracle.ExpectCommand(c, d.Profile, oracle.Server{StrictVerify: oracle.PreambleStyle(d.Preamble)}, InsecureDownload(c.CA))
}

// exitGrace is how long a script that proved a verdict it exits on may take to exit.
const exitGrace = 2 * time.Second

// exitsAtOnce reports whether the script ends by itself right after proving v: the strict
// abort and the /cacerts rejections exit 1 at once, while a refused connection check sleeps and
// retries for hours and a registration goes on to install the agent.
func exitsAtOnce(v verdict.Verdict) bool {
	switch v {
	case verdict.FatalStrictNoChecksum, verdict.RejectedChecksumMismatch, verdict.RejectedNoCACerts, verdict.RejectedNotX509:
		return true
	}
	return false
}

// scriptPath is what the registration command downloads before the script runs.
const scriptPath = "/system-agent-install.sh"

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type lineFunc func(string)

// lineWriter adapts a per-line callback to the node's streaming writer (one line per Write).
type lineWriter lineFunc

func (w lineWriter) Write(p []byte) (int, error) {
	w(strings.TrimRight(string(p), "\r\n"))
	return len(p), nil
}

// transcript records the script's output in the fixtures/transcripts format, up to
// stageErr is the error of a cell that broke before its script ran; when the cell's time ran out
// meanwhile, it says so and which bound to raise.
func stageErr(ctx context.Context, c matrix.Cell, stage string, bound time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("run cell %s: the cell timeout (-cell-timeout %s) ran out while it was waiting to %s: raise -cell-timeout if the machine is busy: %w", c.ID(), bound, stage, err)
	}
	return fmt.Errorf("run cell %s: %s: %w", c.ID(), stage, err)
}

// maxTranscriptBytes: a script that floods its output until the cell's timeout must not fill
// the memory or the disk. The classifier still reads every line.
type transcript struct {
	lines   []string
	size    int
	dropped int
}

// maxTranscriptBytes is far more than any install script prints (a whole registration prints
// a few KiB).
const maxTranscriptBytes = 4 << 20

func (t *transcript) add(stream, line string) {
	l := classify.FormatLine(stream, line)
	if t.size+len(l) > maxTranscriptBytes {
		t.dropped++
		return
	}
	t.size += len(l) + 1
	t.lines = append(t.lines, l)
}

func (t *transcript) write(dir string, c matrix.Cell, r *Result) (string, error) {
	rel := filepath.Join("transcripts", c.Slug()+".txt")
	path := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("write transcript: %w (is the artifacts folder writable?)", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("write transcript: %w", err)
	}
	w := bufio.NewWriter(f)
	// The header is the fixtures/transcripts format: a passing cell's file can be kept there as
	// a recorded transcript (expect is what the classifier must find in it again).
	fmt.Fprintf(w, "# cell: %s\n# source: recorded in a node container by agenttls run %s\n", c.ID(), r.RunID)
	if r.Script != "" {
		fmt.Fprintf(w, "# script: %s\n", r.Script)
	}
	fmt.Fprintf(w, "# command: %s\n# expect: %s\n# oracle: %s\n# evidence: %s\n# why: %s\n",
		r.Command, r.Observed.Verdict, r.Expected.Verdict, r.Observed.Evidence, r.Expected.Reason)
	icpt := ""
	if r.InterceptedBy != "" {
		icpt = " intercepted-by=" + r.InterceptedBy
	}
	regs := 0
	if r.Registered {
		regs = 1
	}
	fmt.Fprintf(w, "# server: registrations=%d%s requests=%d\n", regs, icpt, r.Requests)
	for _, l := range t.lines {
		fmt.Fprintln(w, l)
	}
	if t.dropped > 0 {
		fmt.Fprintf(w, "# truncated: %d more line(s) not kept (the transcript keeps %d bytes)\n", t.dropped, maxTranscriptBytes)
	}
	fmt.Fprintln(w, classify.FormatExit(r.ExitCode))
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	return rel, f.Close()
}
