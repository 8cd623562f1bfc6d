package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/report"
	"github.com/agenttls/agenttls/harness/verdict"
)

// fakeRun stands in for runCmd in these tests (the real one is exercised on Docker by
// TestShardedRunsMergeIntoTheUnshardedRun and by the sweep recorded in harness/report/README.md): it
// parses the flags sweep-versions passes, records them, and writes the results a clean run of
// that version's script era would write, or what the test asks for.
type fakeRun struct {
	t     *testing.T
	cells []matrix.Cell
	calls [][]string
	// per version: fail this cell, or return this error without results; or refuse the
	// version as not served (before any run).
	failCell  map[string]string
	err       map[string]error
	notServed map[string]bool
}

func (f *fakeRun) available(ctx context.Context, v string) error {
	if f.notServed[v] {
		return fmt.Errorf("system-agent %s is not available from the Go module proxy", v)
	}
	return nil
}

func (f *fakeRun) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f.calls = append(f.calls, args)
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	sa := fs.String("sa-version", "", "")
	artifacts := fs.String("artifacts", "", "")
	fs.String("scenario", "", "")
	fs.Int("procs", 0, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.err[*sa]; err != nil {
		return err
	}
	profile := "strict"
	if *sa == "v0.3.4" {
		profile = "pre-strict"
	}
	r := synthRun(f.t, "", *sa, profile, f.cells)
	if id := f.failCell[*sa]; id != "" {
		setCell(f.t, r, id, report.StatusFailed, verdict.Timeout)
	}
	writeRun(f.t, *artifacts, r)
	fmt.Fprintf(stdout, "fake run of %s\n", *sa)
	if len(r.Failed()) > 0 {
		return exitError{1}
	}
	return nil
}

func sweepCLI(t *testing.T, f *fakeRun, ctx context.Context, args ...string) cliOut {
	t.Helper()
	var out, errb bytes.Buffer
	err := sweepVersions(ctx, args, &out, &errb, f.run, f.available)
	code := 0
	var ee exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ee):
		code = ee.code
	default:
		t.Fatalf("sweep-versions: %v", err)
	}
	return cliOut{code, out.String(), errb.String()}
}

func TestSweepVersionsRunsEachVersionAndTabulates(t *testing.T) {
	f := &fakeRun{t: t, cells: loadCells(t, "scenarios/smoke.yaml")}
	dir := t.TempDir()
	r := sweepCLI(t, f, context.Background(), "-versions", "v0.3.4, v0.3.16,v0.15.0", "-scenario", "../../scenarios/smoke.yaml", "-artifacts", dir, "--", "-procs", "2")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := [][]string{
		{"-sa-version", "v0.3.4", "-artifacts", filepath.Join(dir, "v0.3.4"), "-scenario", "../../scenarios/smoke.yaml", "-procs", "2"},
		{"-sa-version", "v0.3.16", "-artifacts", filepath.Join(dir, "v0.3.16"), "-scenario", "../../scenarios/smoke.yaml", "-procs", "2"},
		{"-sa-version", "v0.15.0", "-artifacts", filepath.Join(dir, "v0.15.0"), "-scenario", "../../scenarios/smoke.yaml", "-procs", "2"},
	}
	if !slices.EqualFunc(f.calls, want, slices.Equal) {
		t.Errorf("run calls\n%q\nwant\n%q", f.calls, want)
	}
	md, err := os.ReadFile(filepath.Join(dir, sweepMarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	// The smoke scenario's public strict cell is the strict era's abort: it moves.
	for _, s := range []string{"| cell | v0.3.4 | v0.3.16 | v0.15.0 |", "| `public/strict/cs-absent/sv-unset/direct` | registered | **fatal** | fatal |"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("sweep.md lacks %q:\n%s", s, md)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, sweepHTMLFile)); err != nil {
		t.Error(err)
	}
	if !strings.Contains(r.stdout, "across 3 runs") || !strings.Contains(r.stdout, "sweep of 3 version(s)") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	// Without -scenario, the run's own default (or AGENTTLS_SCENARIO) applies: no flag is passed.
	f.calls = nil
	if r := sweepCLI(t, f, context.Background(), "-versions", "v0.15.0", "-artifacts", dir); r.code != 0 || slices.Contains(f.calls[0], "-scenario") {
		t.Errorf("exit %d, calls %q", r.code, f.calls)
	}
}

func TestSweepVersionsFailsOnAnyDifference(t *testing.T) {
	f := &fakeRun{t: t, cells: loadCells(t, "scenarios/smoke.yaml"),
		failCell: map[string]string{"v0.3.16": cellPinned},
		err:      map[string]error{"v0.3.99": errors.New("docker daemon unreachable")}}
	dir := t.TempDir()
	r := sweepCLI(t, f, context.Background(), "-versions", "v0.3.4,v0.3.16,v0.3.99,v0.15.0", "-artifacts", dir)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Every version ran; the table of those with results is written all the same.
	if len(f.calls) != 4 {
		t.Errorf("%d runs, want 4", len(f.calls))
	}
	md, err := os.ReadFile(filepath.Join(dir, sweepMarkdownFile))
	if err != nil || !strings.Contains(string(md), "❌ **timeout** (want registered)") || strings.Contains(string(md), "v0.3.99") {
		t.Errorf("sweep.md (%v):\n%s", err, md)
	}
	for _, s := range []string{
		"v0.3.16 (run r-v0-3-16): 1 cell(s) differ from the oracle",
		cellPinned + ": timeout, want registered (failed)",
		"v0.3.99: the run did not start: docker daemon unreachable",
		"FAILED: 1 cell(s) differ from the oracle, 1 version(s) without results",
	} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

func TestSweepVersionsRefusesBadInput(t *testing.T) {
	f := &fakeRun{t: t, cells: loadCells(t, "scenarios/smoke.yaml"), notServed: map[string]bool{"v0.3.5": true}}
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"a version not served":  {"-versions", "v0.3.4,v0.3.5", "-artifacts", dir},
		"bad run flag":          {"-versions", "v0.3.4", "-artifacts", dir, "--", "-bogus"},
		"no run processes":      {"-versions", "v0.3.4", "-artifacts", dir, "--", "-procs", "0"},
		"a bad run value":       {"-versions", "v0.3.4", "-artifacts", dir, "--", "-preamble", "bogus"},
		"a label with capitals": {"-versions", "v0.3.4", "-artifacts", dir, "--", "-label-filter", "Mode:strict"},
		"a missing scenario":    {"-versions", "v0.3.4", "-artifacts", dir, "-scenario", "nope.yaml"},
		"an empty entry":        {"-versions", "v0.15.0,,v0.3.4", "-artifacts", dir},
		"version twice":         {"-versions", "v0.3.4,v0.3.4", "-artifacts", dir},
		"a path for a version":  {"-versions", "../v0.3.4", "-artifacts", dir},
		"no versions":           {"-versions", " , ", "-artifacts", dir},
		"both lists":            {"-versions", "v0.3.4", "-rancher-versions", "v2.9.3", "-artifacts", dir},
		"run flag it sets":      {"-versions", "v0.3.4", "-artifacts", dir, "--", "-sa-version=v0.15.0"},
		"positional argument":   {"v0.3.4"},
		"not a version":         {"-versions", "v0.3.4,bogus", "-artifacts", dir},
		"unknown Rancher":       {"-rancher-versions", "v2.9.3,v1.0.0", "-artifacts", dir},
		"unknown flag":          {"-version", "v0.3.4"},
	} {
		if r := sweepCLI(t, f, context.Background(), args...); r.code != exitBadInput {
			t.Errorf("%s: exit %d\n%s", name, r.code, r.stderr)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("bad input started %d run(s)", len(f.calls))
	}
	// Rancher releases map to -rancher-version runs in rancher-<version> folders.
	var got [][]string
	rec := func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		got = append(got, args)
		return errors.New("stop here")
	}
	var out, errb bytes.Buffer
	_ = sweepVersions(context.Background(), []string{"-rancher-versions", "v2.8.2,v2.9.3", "-artifacts", dir}, &out, &errb, rec, f.available)
	want := [][]string{
		{"-rancher-version", "v2.8.2", "-artifacts", filepath.Join(dir, "rancher-v2.8.2")},
		{"-rancher-version", "v2.9.3", "-artifacts", filepath.Join(dir, "rancher-v2.9.3")},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("rancher runs %q, want %q", got, want)
	}
	// The environment cannot choose every run's version behind the sweep's back.
	t.Setenv("SA_VERSION", "v0.15.0")
	if r := sweepCLI(t, f, context.Background(), "-rancher-versions", "v2.8.2", "-artifacts", dir); r.code != exitBadInput || !strings.Contains(r.stderr, "SA_VERSION") {
		t.Errorf("SA_VERSION set: exit %d\n%s", r.code, r.stderr)
	}
	if len(f.calls) != 0 {
		t.Errorf("bad input started %d run(s)", len(f.calls))
	}
}

func TestSweepVersionsStopsWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	run := func(c context.Context, args []string, stdout, stderr io.Writer) error {
		n++
		cancel() // the user pressed ^C during the first run
		return exitError{130}
	}
	var out, errb bytes.Buffer
	err := sweepVersions(ctx, []string{"-versions", "v0.3.4,v0.15.0", "-artifacts", t.TempDir()}, &out, &errb, run, (&fakeRun{}).available)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 130 || n != 1 {
		t.Errorf("err %v after %d run(s), want exit 130 after 1", err, n)
	}
}
