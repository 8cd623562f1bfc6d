package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/report"
	"github.com/agenttls/agenttls/harness/script"
)

// Files a version sweep writes beside the per-version folders.
const (
	sweepMarkdownFile = "sweep.md"
	sweepHTMLFile     = "sweep.html"
)

// runFunc is the signature of runCmd, the one path that runs a matrix.
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// sweepVersionsCmd runs the hermetic matrix once per version through runCmd and lays the runs
// side by side.
func sweepVersionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return sweepVersions(ctx, args, stdout, stderr, runCmd, serves)
}

// serves checks that the Go module proxy serves system-agent version v (the download is
// cached, so the run that follows finds it at once).
func serves(ctx context.Context, v string) error {
	_, err := script.FromModule(ctx, v)
	return err
}

// sweepTarget is one column of the sweep: the flag given to `run` and the folder of its run.
type sweepTarget struct {
	label, flag, value, dir string
}

// sweepVersions runs the sweep with run for each version, after checking every version with
// available (whether the module proxy serves it) before the first run.
func sweepVersions(ctx context.Context, args []string, stdout, stderr io.Writer, run runFunc, available func(context.Context, string) error) error {
	fs := newFlags("sweep-versions", "", "", stderr)
	var (
		versions = fs.String("versions", strings.Join(script.KnownServedVersions(), ","),
			"system-agent versions whose install.sh runs, comma-separated, oldest first")
		rancherVersions = fs.String("rancher-versions", "",
			"instead of -versions: Rancher releases, each run with the script fixtures/versions.yaml maps it to")
		scenario  = fs.String("scenario", "", "scenario file (default: run's default, scenarios/full.yaml)")
		artifacts = fs.String("artifacts", "artifacts/sweep", "folder for one run folder per version and the sweep table")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: agenttls sweep-versions [-versions v1,v2,...] [-scenario file] [-artifacts dir] [-- run flags]

Runs the hermetic matrix once per version, exactly as `+"`agenttls run`"+` does, into <dir>/<version>/, then
writes the version table to <dir>/`+sweepMarkdownFile+` and <dir>/`+sweepHTMLFile+`. Flags after "--" go to every run
(e.g. -- -procs 4). Exits 1 when a cell differs from the oracle in any version, or a version
did not run.`)
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nexit codes: 0 every version ran, every cell as the oracle says; 1 a cell differs, or a version\ndid not run; 2 refused before any run (bad flag or version); 130/143/129 interrupted.")
	}
	var extra []string
	for i, a := range args {
		if a == "--" {
			args, extra = args[:i], args[i+1:]
			break
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{exitBadInput}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agenttls sweep-versions: unexpected arguments %q: flags only; run flags go after \"--\"\n", fs.Args())
		return exitError{exitBadInput}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, a := range extra {
		name := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
		switch name {
		case "sa-version", "rancher-version", "artifacts", "script-file", "script-url", "shard":
			fmt.Fprintf(stderr, "agenttls sweep-versions: -%s cannot be passed to the runs: the sweep sets the version and the folder of each run\n", name)
			return exitError{exitBadInput}
		}
	}
	// Nor can the environment choose them for every run behind the sweep's back.
	for _, env := range []string{"SA_VERSION", "RANCHER_VERSION", "AGENTTLS_SCRIPT_FILE", "AGENTTLS_SCRIPT_URL", "AGENTTLS_SHARD"} {
		if v := os.Getenv(env); v != "" {
			fmt.Fprintf(stderr, "agenttls sweep-versions: %s=%s is set: the sweep chooses each run's script; unset it\n", env, v)
			return exitError{exitBadInput}
		}
	}
	root, err := config.FindModuleRoot()
	if err != nil {
		return err
	}
	targets, err := sweepTargets(*versions, *rancherVersions, set["versions"])
	if err == nil {
		err = checkTargets(ctx, root, targets, available)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agenttls sweep-versions: %v\n", err)
		return exitError{exitBadInput}
	}
	dir := *artifacts
	if !filepath.IsAbs(dir) {
		if set["artifacts"] {
			// As run resolves a path the user gives: from the working directory.
			if dir, err = filepath.Abs(dir); err != nil {
				return err
			}
		} else {
			dir = filepath.Join(root, dir)
		}
	}
	// Each run is planned here, as run itself will (its flags, scenario, label filter and
	// folder), so that bad input is refused before the first run, not found by every run.
	runArgs := func(t sweepTarget) []string {
		a := []string{"-" + t.flag, t.value, "-artifacts", t.dir}
		if set["scenario"] {
			a = append(a, "-scenario", *scenario)
		}
		return append(a, extra...)
	}
	for i := range targets {
		targets[i].dir = filepath.Join(dir, targets[i].label)
		if _, err := planRun(runArgs(targets[i]), io.Discard, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			fmt.Fprintf(stderr, "agenttls sweep-versions: the run of %s would be refused: %v\n", targets[i].label, err)
			return exitError{exitBadInput}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sweep folder %s: %w: choose a writable folder with -artifacts", dir, err)
	}
	for _, f := range []string{sweepMarkdownFile, sweepHTMLFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("clear %s: %w", f, err)
		}
	}

	start := time.Now()
	var (
		runs     []*report.Results
		problems []string
	)
	for i, t := range targets {
		fmt.Fprintf(stdout, "\n=== agenttls sweep-versions [%d/%d]: %s -> %s\n", i+1, len(targets), t.label, t.dir)
		vstart := time.Now()
		err := run(ctx, runArgs(t), stdout, stderr)
		var ee exitError
		switch {
		case ctx.Err() != nil || (errors.As(err, &ee) && ee.code > 128):
			fmt.Fprintf(stderr, "agenttls sweep-versions: interrupted during %s; the table is not written\n", t.label)
			if ctx.Err() != nil {
				return exitError{interruptCode(ctx)}
			}
			return exitError{ee.code}
		case err == nil, errors.As(err, &ee) && ee.code == 1:
			// 1: some cells differ from the oracle; the results say which.
		default:
			problems = append(problems, fmt.Sprintf("%s: the run did not start: %v", t.label, err))
			fmt.Fprintf(stderr, "agenttls sweep-versions: %s: %v\n", t.label, err)
			continue
		}
		r, rerr := report.Read(filepath.Join(t.dir, report.ResultsFile))
		if rerr != nil {
			problems = append(problems, fmt.Sprintf("%s: no results: %v", t.label, rerr))
			continue
		}
		fmt.Fprintf(stdout, "=== %s done in %s\n", t.label, time.Since(vstart).Round(time.Second))
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		fmt.Fprintf(stderr, "agenttls sweep-versions: no version produced results:\n  %s\n", strings.Join(problems, "\n  "))
		return exitError{1}
	}

	table, err := report.Sweep(runs) // none is interrupted: an interrupt ends the sweep above
	if err != nil {
		return err
	}
	md, html := filepath.Join(dir, sweepMarkdownFile), filepath.Join(dir, sweepHTMLFile)
	if err := writeSweep(table, md, html, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	printSweepText(stdout, table)
	fmt.Fprintf(stdout, "\nsweep of %d version(s) in %s: %s, %s\n", len(runs), time.Since(start).Round(time.Second), md, html)
	differs := printDiffers(stderr, runs)
	for _, p := range problems {
		fmt.Fprintf(stderr, "agenttls sweep-versions: %s\n", p)
	}
	if differs > 0 || len(problems) > 0 {
		fmt.Fprintf(stderr, "agenttls sweep-versions: FAILED: %d cell(s) differ from the oracle, %d version(s) without results\n", differs, len(problems))
		return exitError{1}
	}
	return nil
}

// checkTargets refuses, before any run, a version that is not one (v1.2.3), that the module
// proxy does not serve (available), or a Rancher release the version map does not know.
func checkTargets(ctx context.Context, root string, targets []sweepTarget, available func(context.Context, string) error) error {
	var vm *config.Versions
	var errs []error
	for _, t := range targets {
		switch t.flag {
		case "sa-version":
			if err := script.CheckVersion(t.value); err != nil {
				errs = append(errs, err)
			} else if err := available(ctx, t.value); err != nil {
				errs = append(errs, err)
			}
		case "rancher-version":
			if vm == nil {
				var err error
				if vm, err = config.LoadVersions(filepath.Join(root, "fixtures", "versions.yaml")); err != nil {
					return err
				}
			}
			if r, err := vm.ForRancher(t.value); err != nil {
				errs = append(errs, err)
			} else if err := available(ctx, r.SystemAgent); err != nil {
				errs = append(errs, fmt.Errorf("Rancher %s: %w", t.value, err))
			}
		}
	}
	return errors.Join(errs...)
}

// sweepTargets turns the version lists into run targets; Rancher releases win when given.
func sweepTargets(saList, rancherList string, saSet bool) ([]sweepTarget, error) {
	var targets []sweepTarget
	add := func(list, runFlag, prefix string) error {
		seen := map[string]bool{}
		for _, v := range strings.Split(list, ",") {
			v = strings.TrimSpace(v)
			if v == "" {
				if strings.TrimSpace(list) == "" {
					continue // no versions at all: said below
				}
				return fmt.Errorf("an empty entry in the version list %q: separate versions by one comma", list)
			}
			if seen[v] {
				return fmt.Errorf("version %s is listed twice", v)
			}
			seen[v] = true
			if strings.ContainsAny(v, `/\ `) || v == "." || v == ".." {
				return fmt.Errorf("version %q: not a version (it names a folder of the sweep)", v)
			}
			targets = append(targets, sweepTarget{label: prefix + v, flag: runFlag, value: v})
		}
		return nil
	}
	switch {
	case rancherList != "" && saSet:
		return nil, errors.New("give -versions or -rancher-versions, not both")
	case rancherList != "":
		if err := add(rancherList, "rancher-version", "rancher-"); err != nil {
			return nil, err
		}
	default:
		if err := add(saList, "sa-version", ""); err != nil {
			return nil, err
		}
	}
	if len(targets) == 0 {
		return nil, errors.New("no versions given: -versions v0.3.4,v0.15.0 (comma-separated, oldest first)")
	}
	return targets, nil
}
