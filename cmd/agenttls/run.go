package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/dockerx"
	"github.com/agenttls/agenttls/harness/images"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/report"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/sweep"
	"github.com/agenttls/agenttls/harness/testbed"
)

// runPlan is what run decided before starting anything: the configuration, the cells, and the
// run a rerun reads.
type runPlan struct {
	cfg             config.Config
	opts            *runOptions
	all, selected   []matrix.Cell // selected: all, sharded
	rerunOf         *report.Results
	scriptInherited bool // the script is the rerun run's
}

// planRun parses run's arguments and checks everything that needs neither Docker nor the
// script: configuration, cells, label filter, shard, artifacts place. sweep-versions uses it to
// refuse bad input before its first run.
func planRun(args []string, stdout, stderr io.Writer) (*runPlan, error) {
	cfg := config.Default()
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	// Paths the user gives are relative to where the command runs; defaults to the repository.
	cfg.WorkDir = wd
	fs, o := runFlags(&cfg, stderr)
	cells, rerunFailed, labelFilter := &o.cells, &o.rerunFailed, &o.labelFilter
	if err := parseRunFlags(fs, o, args); err != nil {
		return nil, err
	}
	artifactsChosen := false
	fs.Visit(func(f *flag.Flag) { artifactsChosen = artifactsChosen || f.Name == "artifacts" })
	if v, ok := os.LookupEnv("ARTIFACTS"); ok && v != "" {
		artifactsChosen = true
	}
	var rerunOf *report.Results // the run -rerun-failed reads
	scriptInherited := false    // and whether its script is this run's
	if *rerunFailed != "" {
		// Absolute: the rerun's folder is made from it, and the suite runs in e2e/.
		abs, err := filepath.Abs(resultsPath(*rerunFailed))
		if err != nil {
			return nil, err
		}
		*rerunFailed = abs
		// A rerun runs what failed the way it ran: the same script, backend and nodes, unless
		// the user chose otherwise.
		r, err := report.Read(*rerunFailed)
		if err != nil {
			return nil, err
		}
		taken := cfg.Inherit(r.Config, fs, "", os.LookupEnv)
		if len(taken) > 0 {
			fmt.Fprintf(stdout, "agenttls: rerunning as %s ran: %s\n", *rerunFailed, strings.Join(taken, " "))
		}
		rerunOf, scriptInherited = r, slices.ContainsFunc(taken, config.ChoosesScript)
	}
	if err := cfg.Resolve(fs, "", os.LookupEnv); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if *rerunFailed != "" {
		// A rerun never clears the run it reads: it goes into <run>/rerun unless told where.
		runDir := filepath.Dir(*rerunFailed)
		if !artifactsChosen {
			cfg.Artifacts = filepath.Join(runDir, "rerun")
		} else if same, _ := sameDir(cfg.Artifacts, runDir); same {
			return nil, fmt.Errorf("-artifacts %s holds the run -rerun-failed reads: the rerun would clear it; give another folder, or none (default: %s)",
				cfg.Artifacts, filepath.Join(runDir, "rerun"))
		}
	}
	if cfg.RunID != "" && !runIDPattern.MatchString(cfg.RunID) {
		return nil, fmt.Errorf("-run-id %q: use lower-case letters, digits and - (at most 63 characters, starting with a letter or digit): it names containers and labels", cfg.RunID)
	}

	// Everything that can be checked before anything starts. The suite is given the unsharded
	// cell list and applies -harness.shard itself (a shard split twice would run too little), so
	// the cells that run here are the same shard of the same list.
	unsharded := cfg
	unsharded.Shard = ""
	all, err := selectForRun(unsharded, *cells, rerunOf, *rerunFailed)
	if err != nil {
		return nil, err
	}
	// The label filter is applied here, with Ginkgo's own parser, so that a bad expression fails
	// before anything starts and the progress counts only the cells that run.
	if *labelFilter != "" {
		if all, err = filterLabels(all, *labelFilter); err != nil {
			return nil, err
		}
	}
	si, sn, _ := matrix.ParseShard(cfg.Shard)
	selected, err := matrix.Shard(all, si, sn)
	if err != nil {
		return nil, err
	}
	if len(selected) == 0 {
		return nil, fmt.Errorf("shard %s of these %d cell(s) holds none: give fewer shards than cells", cfg.Shard, len(all))
	}
	if cfg.FlipOracle != "" && !slices.ContainsFunc(selected, func(c matrix.Cell) bool { return c.ID() == cfg.FlipOracle }) {
		return nil, fmt.Errorf("-flip-oracle %s is not among the %s this run selects: the self-test would prove nothing", cfg.FlipOracle, plural(len(selected), "cell"))
	}
	if err := checkArtifactsPlace(cfg); err != nil {
		return nil, err
	}
	if _, err := images.NodeBuildFromEnv(); err != nil {
		return nil, err
	}
	return &runPlan{cfg: cfg, opts: o, all: all, selected: selected, rerunOf: rerunOf, scriptInherited: scriptInherited}, nil
}

// runCmd is the main job: it checks everything it can before starting anything, runs the
// Ginkgo suite in e2e/ across several processes, prints one line per finished cell, and ends
// with the summary table. The exit codes are main's: 1 when any cell differs from the oracle,
// 2 for input refused before anything started, 3 when -fail-on-skip is set and a cell was
// skipped, 128+n after signal n.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	p, err := planRun(args, stdout, stderr)
	if errors.Is(err, errNothingToRerun) {
		fmt.Fprintf(stdout, "agenttls: %v\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	cfg, o, all, selected := p.cfg, p.opts, p.all, p.selected
	cells, rerunFailed, procs, verbose := &o.cells, &o.rerunFailed, &o.procs, &o.verbose
	rerunOf, scriptInherited := p.rerunOf, p.scriptInherited
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return err
	}
	cli.Close()
	fmt.Fprintf(stdout, "agenttls: resolving the install script (%s)\n", scriptWhat(cfg))
	var s *script.Script
	if scriptInherited {
		s, err = rerunScript(ctx, cfg, rerunOf, filepath.Dir(*rerunFailed))
	} else {
		s, err = loadScript(ctx, cfg)
	}
	if err != nil {
		return err
	}
	for _, w := range s.Profile.Warnings {
		fmt.Fprintf(stderr, "agenttls: warning: the script's structure is not one the oracle knows (%s): expectations may not fit it\n", w)
	}
	if cfg.RunID == "" {
		cfg.RunID = testbed.NewRunID()
	} else if inUse, err := sweep.InUse(ctx, cfg.RunID); err != nil {
		return err
	} else if inUse > 0 {
		return fmt.Errorf("run id %s is in use: %d container(s) carry it (a run still going, or one kept with -keep): choose another -run-id, or remove them with `agenttls sweep -run-id %s`", cfg.RunID, inUse, cfg.RunID)
	}
	if err := checkArtifacts(cfg.Artifacts); err != nil {
		return err
	}
	if err := checkArtifactsOwner(cfg.Artifacts); err != nil {
		return err
	}
	lock, err := lockArtifacts(cfg.Artifacts, cfg.RunID)
	if err != nil {
		return err
	}
	defer lock.Close()
	if removed, err := sweep.SweepStale(ctx, 2*time.Hour); err == nil && !removed.Empty() {
		fmt.Fprintf(stdout, "agenttls: removed leftovers of earlier runs: %s\n", removed)
	}
	// Only now, with every check passed, are the reports of an earlier run in the folder removed.
	if err := clearArtifacts(cfg.Artifacts); err != nil {
		return err
	}
	// The suite runs exactly the bytes resolved here, whatever the source does meanwhile.
	saved := filepath.Join(cfg.Artifacts, scriptFile)
	if err := s.Save(saved); err != nil {
		return err
	}
	*procs = min(*procs, len(selected))
	what := "system-agent " + s.Version
	if s.Version == "" {
		what = "install.sh from " + s.Source
	}
	fmt.Fprintf(stdout, "agenttls: run %s: %s, %s (%s profile, sha256 %s), %s; artifacts in %s\n",
		cfg.RunID, plural(len(selected), "cell"), what, s.Profile.Name, s.SHA256[:12], plural(*procs, "process"), cfg.Artifacts)

	// The suite.
	suiteArgs := []string{"tool", "ginkgo", "-tags", "e2e", "--no-color", "--timeout", "2h",
		"-p", "--procs", strconv.Itoa(*procs)}
	if o.race {
		suiteArgs = append(suiteArgs, "-race")
	}
	suiteArgs = append(suiteArgs, "./e2e", "--")
	// Every value, empty and false ones too: the suite reads the environment for options it is
	// not given, and what was resolved here must win over it. The script is the one saved.
	for k, v := range cfg.Redacted() {
		suiteArgs = append(suiteArgs, "-harness."+k+"="+v)
	}
	suiteArgs = append(suiteArgs, "-harness.script-saved="+saved, "-harness.script-sha256="+s.SHA256,
		"-harness.script-version="+s.Version, "-harness.script-origin="+s.Source)
	ids := make([]string, len(all))
	for i, c := range all {
		ids[i] = c.ID()
	}
	suiteArgs = append(suiteArgs, "-harness.cells="+strings.Join(ids, ","), "-harness.scenario-name="+scenarioLabel(cfg, *cells, *rerunFailed))
	logPath := filepath.Join(cfg.Artifacts, "ginkgo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create %s: %w", logPath, err)
	}
	defer logFile.Close()
	progressPath := filepath.Join(cfg.Artifacts, "progress.log")

	cmd := exec.Command("go", suiteArgs...)
	cmd.Dir = cfg.ModuleRoot
	cmd.Env = append(os.Environ(), "AGENTTLS_PROGRESS="+progressPath, "TESTCONTAINERS_RYUK_DISABLED="+os.Getenv("TESTCONTAINERS_RYUK_DISABLED"))
	if *verbose {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(logFile, stdout), io.MultiWriter(logFile, stderr)
	} else {
		cmd.Stdout, cmd.Stderr = logFile, logFile
	}
	// Its own process group: an interrupt is forwarded once, so Ginkgo runs its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The suite holds the folder's lock too: should this process die without its cleanup
	// (SIGKILL), no other run can take the folder while the suite still writes to it.
	cmd.ExtraFiles = []*os.File{lock}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the suite (go tool ginkgo): %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tail := newTailer(progressPath, len(selected), stdout)
	interrupted, code := false, 0
	var waitErr error
	var force chan os.Signal // a second interrupt, once the first was forwarded
loop:
	for {
		select {
		case waitErr = <-done:
			break loop
		case <-ctx.Done():
			interrupted, code = true, interruptCode(ctx)
			fmt.Fprintln(stdout, "agenttls: interrupted: stopping the suite and cleaning up (interrupt again to force)")
			force = make(chan os.Signal, 1)
			signal.Notify(force, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(force)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			ctx = context.Background()
		case <-force:
			fmt.Fprintln(stdout, "agenttls: interrupted again: killing the suite; the sweep below removes what it left")
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			force = nil
		case <-time.After(200 * time.Millisecond):
			tail.poll()
		}
	}
	tail.poll()

	// Nothing of the run may stay, whatever happened (unless kept on purpose).
	if !cfg.Keep {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		removed, err := sweepRun(sctx, cfg.RunID, interrupted || waitErr != nil)
		cancel()
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "agenttls: sweep of run %s failed: %v (run `agenttls sweep -run-id %s`)\n", cfg.RunID, err, cfg.RunID)
		case !removed.Empty():
			fmt.Fprintf(stdout, "agenttls: swept what the suite left: %s\n", removed)
		}
	} else {
		fmt.Fprintf(stdout, "agenttls: -keep: containers of run %s are left running; remove them with `agenttls sweep -run-id %s`\n", cfg.RunID, cfg.RunID)
	}
	resultsPath := filepath.Join(cfg.Artifacts, "results.json")
	if interrupted {
		// What the suite wrote is marked, so that no one takes its failed cells for the script's.
		if res, err := report.Read(resultsPath); err == nil {
			res.Interrupted = true
			for i, c := range res.Cells {
				switch c.Status {
				case report.StatusSkipped:
					res.Cells[i].Message = "not run: the run was interrupted before this cell"
				case report.StatusFailed:
					res.Cells[i].Message = "interrupted while it ran (not a verdict on the script): " + c.Message
				}
			}
			if err := report.WriteAll(cfg.Artifacts, res, report.WithTranscripts(cfg.Artifacts)); err != nil {
				fmt.Fprintf(stderr, "agenttls: could not mark %s as interrupted: %v\n", resultsPath, err)
			} else {
				fmt.Fprintf(stdout, "agenttls: the reports of the interrupted run are marked as such: %s\n", cfg.Artifacts)
			}
		}
		return exitError{code}
	}
	res, rerr := report.Read(resultsPath)
	if rerr != nil {
		fmt.Fprintf(stderr, "agenttls: the suite wrote no results (%v); what went wrong:\n", rerr)
		printFailures(logPath, stderr)
		fmt.Fprintf(stderr, "full log: %s\n", logPath)
		return exitError{exitRegression}
	}
	fmt.Fprintln(stdout)
	if err := report.SummaryTable(stdout, res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nreports: %s (results.json, junit.xml, summary.md, report.html, transcripts/) in %s\n",
		cfg.Artifacts, time.Since(start).Round(100*time.Millisecond))
	if waitErr != nil {
		if len(res.Failed()) == 0 {
			fmt.Fprintf(stderr, "agenttls: the suite failed outside the cells; see %s\n", logPath)
			printFailures(logPath, stderr)
		}
		return exitError{exitRegression}
	}
	if n := res.Counts(); cfg.FailOnSkip && n.Skipped > 0 {
		fmt.Fprintf(stderr, "agenttls: %d of %d cell(s) were skipped and -fail-on-skip is set: nothing was proven for them (the reason is in the DETAIL column above)\n", n.Skipped, n.Total)
		return exitError{exitSkipped}
	}
	return nil
}

// runOptions are run's flags that are not configuration.
type runOptions struct {
	cells, rerunFailed, labelFilter string
	procs                           int
	verbose, race                   bool
}

// runFlags defines run's flags on a new flag set: cfg's and the options'.
func runFlags(cfg *config.Config, stderr io.Writer) (*flag.FlagSet, *runOptions) {
	fs := newFlags("run", "", exitCodesRun, stderr)
	cfg.Bind(fs, "")
	o := &runOptions{}
	fs.StringVar(&o.cells, "cell", "", "run only these cell IDs (comma-separated), whatever the scenario")
	fs.StringVar(&o.rerunFailed, "rerun-failed", "", "run the cells that failed in this results.json (with -cell: those cells of it), as that run ran them")
	fs.IntVar(&o.procs, "procs", defaultProcs(), "parallel Ginkgo processes (cells run concurrently)")
	fs.StringVar(&o.labelFilter, "label-filter", "", "Ginkgo label filter, e.g. 'mode:strict && path:mitm'")
	fs.BoolVar(&o.verbose, "v", false, "also stream Ginkgo's own output")
	fs.BoolVar(&o.race, "race", false, "build the suite with the race detector (slower; make race)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: agenttls run [flags]\n\nRuns every cell of a scenario. Flags (each also read from the environment variable named):")
		fs.PrintDefaults()
		fmt.Fprint(stderr, runEnvHelp)
		fmt.Fprintln(stderr, exitCodesRun)
	}
	return fs, o
}

// parseRunFlags parses run's arguments and checks what needs no configuration.
func parseRunFlags(fs *flag.FlagSet, o *runOptions, args []string) error {
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if o.procs < 1 {
		return fmt.Errorf("-procs %d: give at least 1 process", o.procs)
	}
	return nil
}

// sweepRun removes what the suite left of run id. After an interrupt or a broken suite the
// engine may still finish work the suite had asked for (an image commit whose client was
// stopped), so the sweep is repeated until one finds nothing, a few seconds apart.
func sweepRun(ctx context.Context, id string, again bool) (sweep.Removed, error) {
	var all sweep.Removed
	for i := 0; ; i++ {
		r, err := sweep.Sweep(ctx, id)
		all.Containers = append(all.Containers, r.Containers...)
		all.Networks = append(all.Networks, r.Networks...)
		all.Images = append(all.Images, r.Images...)
		if err != nil || !again || i == 3 || (i > 0 && r.Empty()) {
			return all, err
		}
		select {
		case <-ctx.Done():
			return all, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// defaultProcs: cells wait on containers part of the time, so twice as many processes as cores
// pay off; more only add contention (make bench with AGENTTLS_BENCH_PROCS=4,6,8 measured 60 s,
// 66 s and 68 s for the full matrix on 2 cores).
func defaultProcs() int {
	n := runtime.NumCPU() * 2
	if n > 8 {
		n = 8
	}
	return n
}

// selectForRun returns the cells of a run: those of -cell (of the rerun run r, when given), the
// failed and unrun cells of r (read from rerunPath), or the scenario's; then the shard.
func selectForRun(cfg config.Config, cells string, r *report.Results, rerunPath string) ([]matrix.Cell, error) {
	var list []matrix.Cell
	switch {
	case cells != "":
		seen := map[string]bool{}
		for _, id := range strings.Split(cells, ",") {
			c, err := matrix.ParseID(strings.TrimSpace(id))
			if err != nil {
				return nil, fmt.Errorf("-cell: %w (list the cells with `agenttls list`)", err)
			}
			if seen[c.ID()] {
				return nil, fmt.Errorf("-cell: %s is given twice: name each cell once", c.ID())
			}
			seen[c.ID()] = true
			list = append(list, c)
		}
		if r != nil {
			// These cells of that run, as it ran them, whatever their outcome.
			for _, c := range list {
				if !slices.ContainsFunc(r.Cells, func(rc report.CellResult) bool { return rc.ID == c.ID() }) {
					return nil, fmt.Errorf("-cell %s is not a cell of the run in %s", c.ID(), rerunPath)
				}
			}
		}
	case r != nil:
		for _, c := range r.Failed() {
			list = append(list, c.Params)
		}
		if r.Interrupted {
			// The cells an interrupted run never got to are as unproven as its failures.
			for _, c := range r.Cells {
				if c.Status == report.StatusSkipped {
					list = append(list, c.Params)
				}
			}
		}
		if len(list) == 0 {
			return nil, fmt.Errorf("%s has no failed cells: %w", rerunPath, errNothingToRerun)
		}
	default:
		s, err := matrix.LoadScenario(cfg.Scenario)
		if err != nil {
			return nil, err
		}
		list = s.Cells
	}
	i, n, _ := matrix.ParseShard(cfg.Shard)
	return matrix.Shard(list, i, n)
}

// runIDPattern: a run id names containers (agenttls-<id>-...) and is a label value.
var runIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// errNothingToRerun: -rerun-failed of a run without failures; not an error of the user's.
var errNothingToRerun = errors.New("nothing to rerun")

// labelSetOps are the words of Ginkgo's label-set syntax (key: consistsOf {a, b}), the only
// capitals a filter may hold.
var labelSetOps = regexp.MustCompile(`\b(consistsOf|containsAny|containsAll|isEmpty|isSubsetOf)\b`)

func filterLabels(cells []matrix.Cell, expr string) ([]matrix.Cell, error) {
	// Ginkgo matches labels without regard to case, and every label is lower-case: capitals
	// would silently select the lower-case value (strict-verify:TRUE selects strict-verify:true;
	// the value TRUE is labelled strict-verify:uppercase-true).
	if bare := labelSetOps.ReplaceAllString(expr, ""); bare != strings.ToLower(bare) {
		hint := "every label is lower-case"
		if strings.Contains(bare, "TRUE") {
			hint = "the strict-verify value TRUE is labelled strict-verify:uppercase-true (scenarios/field-cases.yaml has such cells)"
		}
		return nil, fmt.Errorf("-label-filter %q has capitals, but labels are matched without regard to case, so it would select the lower-case labels; %s (see the labels with `agenttls list`)",
			expr, hint)
	}
	f, err := types.ParseLabelFilter(expr)
	if err != nil {
		return nil, fmt.Errorf("-label-filter %q: %s (labels look like mode:strict, path:mitm; see `agenttls list`)", expr, ansi.ReplaceAllString(err.Error(), ""))
	}
	var out []matrix.Cell
	for _, c := range cells {
		if f(c.Labels()) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-label-filter %q selects none of the %d cells (see their labels with `agenttls list`)", expr, len(cells))
	}
	return out, nil
}

func scenarioLabel(cfg config.Config, cells, rerun string) string {
	switch {
	case cells != "":
		return "cells"
	case rerun != "":
		return "rerun-failed"
	}
	return strings.TrimSuffix(filepath.Base(cfg.Scenario), filepath.Ext(cfg.Scenario))
}

// checkArtifacts makes sure the folder exists and is writable; it removes nothing.
func checkArtifacts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("artifacts folder %s: %w: choose a writable folder with -artifacts or ARTIFACTS", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("artifacts folder %s is not writable: %w: choose another with -artifacts or ARTIFACTS", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// runMarks are the files only a run writes; reportNames, what a run writes and clears.
var (
	runMarks    = []string{"results.json", "ginkgo.log", "progress.log"}
	reportNames = []string{"results.json", "junit.xml", "summary.md", "report.html", "progress.log", "ginkgo.log", "transcripts", scriptFile}
)

// checkArtifactsOwner refuses a folder that holds some of a run's file names but no sign of a
// run (results.json, ginkgo.log or progress.log): it is not an artifacts folder, and its files
// (a transcripts/ folder, an install.sh of somebody's) would be overwritten.
func checkArtifactsOwner(dir string) error {
	for _, name := range runMarks {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil
		}
	}
	var found []string
	for _, name := range reportNames {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			found = append(found, name)
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("artifacts folder %s holds %s but no results.json of a run: it would be overwritten; choose an empty folder or an earlier run's with -artifacts or ARTIFACTS", dir, strings.Join(found, ", "))
	}
	return nil
}

// clearArtifacts removes the reports of an earlier run from the folder (checkArtifactsOwner
// first), so that nothing in it can be taken for this run's.
func clearArtifacts(dir string) error {
	for _, old := range reportNames {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			return fmt.Errorf("clear %s: %w", filepath.Join(dir, old), err)
		}
	}
	return nil
}

func scriptWhat(cfg config.Config) string {
	switch {
	case cfg.ScriptFile != "":
		return "file " + cfg.ScriptFile
	case cfg.ScriptURL != "":
		return "URL " + script.RedactURL(cfg.ScriptURL)
	}
	return "system-agent " + cfg.SystemAgentVersion + " from the Go module cache"
}

func loadScript(ctx context.Context, cfg config.Config) (*script.Script, error) {
	return script.Load(ctx, cfg.ScriptFile, cfg.ScriptURL, cfg.SystemAgentVersion)
}

// rerunScript is the script run r ran: the copy in its folder (runDir/install.sh), whatever its
// source gives now; for a run without that copy, its source again, if it still gives the same
// bytes.
func rerunScript(ctx context.Context, cfg config.Config, r *report.Results, runDir string) (*script.Script, error) {
	saved := filepath.Join(runDir, scriptFile)
	if _, err := os.Stat(saved); err == nil {
		s, err := script.FromSaved(saved, r.SystemAgentVersion, r.ScriptSource+" (as run "+r.RunID+" saved it)", r.ScriptSHA256)
		if err != nil {
			return nil, fmt.Errorf("the script run %s ran: %w", r.RunID, err)
		}
		return s, nil
	}
	s, err := loadScript(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if r.ScriptSHA256 != "" && s.SHA256 != r.ScriptSHA256 {
		return nil, fmt.Errorf("run %s ran an install.sh with sha256 %s, but %s now gives %s: give that script with -script-file, or choose another on purpose (-sa-version, -script-file, -script-url)",
			r.RunID, r.ScriptSHA256, scriptWhat(cfg), s.SHA256)
	}
	return s, nil
}

// scriptFile is the install script of a run, as resolved, in its artifacts folder.
const scriptFile = "install.sh"

// checkArtifactsPlace refuses folders whose clearing would destroy the repository's own files.
func checkArtifactsPlace(cfg config.Config) error {
	return checkOutputPlace(cfg.ModuleRoot, cfg.Artifacts, "artifacts folder")
}

// checkOutputPlace refuses an output folder dir that is, through symlinks too, the repository
// root or inside one of its folders of tracked files (fixtures/, scenarios/, the sources).
func checkOutputPlace(root, dir, what string) error {
	rel, err := filepath.Rel(realPath(root), realPath(dir))
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return nil // outside the repository
	}
	top := strings.Split(rel, string(filepath.Separator))[0]
	switch {
	case rel == "." || rel == "e2e":
	case slices.Contains([]string{"fixtures", "scenarios", "harness", "cmd", ".github", ".ci", ".git"}, top):
	default:
		return nil
	}
	where := "the repository's root"
	if rel != "." {
		where = "in the repository's " + top + "/"
	}
	return fmt.Errorf("%s %s is %s, which holds the repository's own files: they would be cleared or overwritten; choose a folder such as artifacts/ (the default) or one outside the repository",
		what, dir, where)
}

// realPath is p absolute, with the symlinks of its longest existing part resolved (p may not
// exist yet).
func realPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	p = filepath.Clean(p)
	var rest []string
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(append([]string{p}, rest...)...)
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// lockArtifacts holds the folder for this run: a second run into the same folder would clear
// the first's reports under it. The lock goes with the process, however it ends.
func lockArtifacts(dir, runID string) (*os.File, error) {
	path := filepath.Join(dir, ".agenttls.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock the artifacts folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(f, 64))
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("artifacts folder %s is in use by run %s: wait for it to end, or give this run another folder with -artifacts or ARTIFACTS",
				dir, orDash(strings.TrimSpace(string(holder))))
		}
		return nil, fmt.Errorf("lock the artifacts folder %s: %w", dir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(runID+"\n"), 0)
	return f, nil // closing it (here and in the suite) releases the lock
}

// plural spells a count with its noun: 1 cell, 2 cells, 1 process, 4 processes.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "s") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runEnvHelp names what run reads from the environment besides its flags' variables.
const runEnvHelp = `
Also read from the environment:
  AGENTTLS_NODE_BUILD           how the node image is built: rootfs (debootstrap, needs root; default) or dockerfile (needs a registry)
  DOCKER_HOST                   the Docker engine (default: the local socket)
  TESTCONTAINERS_RYUK_DISABLED  true unless set: the harness sweeps by label instead of Ryuk
Relative paths given by flag or environment are relative to the working directory; defaults are
relative to the repository root.
`

// tailer prints the suite's progress file as cells finish.
type tailer struct {
	path  string
	off   int64
	done  int
	total int
	out   io.Writer
	part  string
}

func newTailer(path string, total int, out io.Writer) *tailer {
	return &tailer{path: path, total: total, out: out}
}

func (t *tailer) poll() {
	f, err := os.Open(t.path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return
	}
	b, _ := io.ReadAll(f)
	t.off += int64(len(b))
	data := t.part + string(b)
	lines := strings.Split(data, "\n")
	t.part = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "setup: ") {
			fmt.Fprintln(t.out, l)
			continue
		}
		t.done++
		fmt.Fprintf(t.out, "[%*d/%d] %s\n", len(strconv.Itoa(t.total)), t.done, t.total, l)
	}
}

// printFailures shows the failure messages of a Ginkgo log without its struct dumps.
func printFailures(logPath string, w io.Writer) {
	f, err := os.Open(logPath)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	shown := 0
	seen := map[string]bool{}
	var tail []string // the log's last lines, for a suite that broke before any spec (a build error)
	for sc.Scan() {
		l := strings.TrimSpace(ansi.ReplaceAllString(sc.Text(), ""))
		// Every process repeats a setup failure of process 1; one copy says it.
		if strings.HasPrefix(l, "[FAILED]") && len(l) > len("[FAILED]") && shown < 10 && !seen[l] {
			seen[l] = true
			fmt.Fprintf(w, "  %s\n", l)
			shown++
		}
		if l != "" {
			tail = append(tail, l)
			if len(tail) > 15 {
				tail = tail[1:]
			}
		}
	}
	if shown == 0 {
		for _, l := range tail {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

// ansi matches terminal colour sequences, which Ginkgo writes into some messages even with
// --no-color.
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)
