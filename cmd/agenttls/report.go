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
	"text/tabwriter"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/report"
)

// inputError is a problem with what the user gave (flags, files, incompatible runs): the
// command prints it and exits 2.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

func badInput(format string, a ...any) error { return inputError{fmt.Errorf(format, a...)} }

type reportSub struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func reportSubs() []reportSub {
	return []reportSub{
		{"render", "results.json [-o dir]", "write junit.xml, summary.md and report.html from a results file", reportRender},
		{"diff", "old.json new.json [-md file] [-html file] [-partial]", "compare two runs; exit 1 on a regression, 2 on bad input", reportDiff},
		{"merge", "-o dir part.json...", "join the results of the shards of one run into one report", reportMerge},
		{"sweep", "a.json b.json... [-md file] [-html file]", "table of how each cell's verdict moves across runs (oldest first)", reportSweep},
	}
}

// reportCmd works with results files: render, diff, merge, sweep. A results-file argument may
// also be the folder that holds results.json.
func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		reportUsage(stderr)
		if len(args) == 0 {
			return exitError{exitBadInput}
		}
		return nil
	}
	for _, s := range reportSubs() {
		if s.name != args[0] {
			continue
		}
		err := s.run(ctx, args[1:], stdout, stderr)
		var ie inputError
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return err
		case errors.As(err, &ie):
			fmt.Fprintf(stderr, "agenttls report %s: %v\n", s.name, ie.err)
			return exitError{exitBadInput}
		case errors.As(err, new(exitError)):
			return err
		case isFlagError(err):
			// The flag package has printed the problem and the usage already.
			return exitError{exitBadInput}
		}
		return fmt.Errorf("%s: %w", s.name, err)
	}
	fmt.Fprintf(stderr, "agenttls report: unknown subcommand %q\n\n", args[0])
	reportUsage(stderr)
	return exitError{exitBadInput}
}

func reportUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: agenttls report <subcommand> [arguments]\n\nsubcommands:")
	for _, s := range reportSubs() {
		fmt.Fprintf(w, "  %-7s %s\n          %s\n", s.name, s.args, s.summary)
	}
	fmt.Fprintln(w, "\nA results file may be given as the folder that holds results.json. Flags may come before or\nafter the files. Exit codes: 0 fine, 1 regression (diff) or a cell that differs from the oracle\n(sweep), 2 bad input (unreadable, truncated or foreign file, runs that cannot be compared).")
}

// flagError marks an error returned by FlagSet.Parse, which has already printed it.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

func isFlagError(err error) bool { return errors.As(err, new(flagError)) }

// parseInterspersed parses flags that may come before, between or after the positional
// arguments, which the flag package alone does not allow. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos, tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, flagError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// resultsPath accepts a results file or the folder holding one.
func resultsPath(p string) string {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return filepath.Join(p, report.ResultsFile)
	}
	return p
}

// readResults reads every file, reporting all unreadable ones at once as bad input.
func readResults(paths []string) ([]*report.Results, error) {
	var (
		out  []*report.Results
		errs []string
	)
	for _, p := range paths {
		r, err := report.Read(resultsPath(p))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, badInput("%s", strings.Join(errs, "\n  "))
	}
	return out, nil
}

// writeOutput writes what write produces to path, or to stdout when path is "-". Nothing is
// written when path is empty.
func writeOutput(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "" {
		return nil
	}
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return err
	}
	if path == "-" {
		_, err := stdout.Write(b.Bytes())
		return err
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// reportRender rewrites the views of a results file. Into the results file's own folder it
// writes junit.xml, summary.md and report.html only; into another folder (-o) it also writes
// results.json and copies the transcripts, so that folder stands on its own.
func reportRender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report render", "", "", stderr)
	out := fs.String("o", "", "folder for the reports (default: the folder of the results file)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: agenttls report render results.json [-o dir]\n\nWrites junit.xml, summary.md and report.html from a results file.")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nexit codes: 0 written; 2 a file cannot be read or written, or a bad flag.")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return badInput("give exactly one results file (got %d): agenttls report render results.json [-o dir]", len(pos))
	}
	rs, err := readResults(pos)
	if err != nil {
		return err
	}
	r := rs[0]
	src := filepath.Dir(resultsPath(pos[0]))
	dst := *out
	if dst == "" {
		dst = src
	}
	same, err := sameDir(src, dst)
	if err != nil {
		return err
	}
	if !same {
		if err := checkReportFolder(dst, r.RunID); err != nil {
			return err
		}
	}
	if same {
		err = writeViews(dst, r, report.WithTranscripts(src))
	} else {
		if err := copyTranscripts(src, dst, r.Cells); err != nil {
			return err
		}
		err = report.WriteAll(dst, r, report.WithTranscripts(dst))
	}
	if err != nil {
		return err
	}
	n := r.Counts()
	fmt.Fprintf(stdout, "agenttls report render: %s: %d cells (%d passed, %d failed, %d skipped, %d exposed) -> %s, %s, %s in %s\n",
		pos[0], n.Total, n.Passed, n.Failed, n.Skipped, n.Exposed, report.JUnitFile, report.SummaryFile, report.HTMLFile, dst)
	return nil
}

// refuseOverwrite refuses output files (-md, -html) that would destroy something: one of the
// inputs, a file of the repository's (fixtures/, the sources), a run's own report, or the
// other output.
func refuseOverwrite(inputs []string, outputs ...string) error {
	root, rootErr := config.FindModuleRoot()
	seen := map[string]string{}
	for _, out := range outputs {
		if out == "" || out == "-" {
			continue
		}
		real := realPath(out)
		if other, dup := seen[real]; dup {
			return badInput("%s and %s are the same file: give each output its own", other, out)
		}
		seen[real] = out
		if rootErr == nil {
			if err := checkOutputPlace(root, filepath.Dir(out), "the folder of "+out); err != nil {
				return badInput("%v", err)
			}
		}
		if slices.Contains(reportNames, filepath.Base(out)) {
			if _, err := os.Stat(filepath.Join(filepath.Dir(out), report.ResultsFile)); err == nil {
				return badInput("%s is a report of the run in %s: it would be replaced; give another file name", out, filepath.Dir(out))
			}
		}
		fo, err := os.Stat(out)
		if err != nil {
			continue // a new file
		}
		for _, in := range inputs {
			if fi, err := os.Stat(resultsPath(in)); err == nil && os.SameFile(fi, fo) {
				return badInput("%s is an input of this comparison: writing the output there would destroy it; give another file", out)
			}
		}
	}
	return nil
}

// checkReportFolder refuses an output folder for a whole set of reports that belongs to the
// repository (fixtures/, the sources) or holds the results of another run than runID.
func checkReportFolder(dir, runID string) error {
	if root, err := config.FindModuleRoot(); err == nil {
		if err := checkOutputPlace(root, dir, "-o"); err != nil {
			return badInput("%v", err)
		}
	}
	if there, err := report.Read(filepath.Join(dir, report.ResultsFile)); err == nil && there.RunID != runID {
		return badInput("-o %s holds the results of run %s: they would be replaced; give an empty folder", dir, there.RunID)
	}
	return nil
}

// writeViews writes junit.xml, summary.md and report.html of r into dir, leaving results.json
// alone.
func writeViews(dir string, r *report.Results, opts ...report.Option) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	views := []struct {
		name  string
		write func(io.Writer) error
	}{
		{report.JUnitFile, func(w io.Writer) error { return report.WriteJUnit(w, r) }},
		{report.SummaryFile, func(w io.Writer) error { return report.WriteMarkdown(w, r) }},
		{report.HTMLFile, func(w io.Writer) error { return report.WriteHTML(w, r, opts...) }},
	}
	var errs []error
	for _, v := range views {
		errs = append(errs, writeOutput(filepath.Join(dir, v.name), nil, v.write))
	}
	return errors.Join(errs...)
}

func sameDir(a, b string) (bool, error) {
	aa, err := filepath.Abs(a)
	if err != nil {
		return false, err
	}
	bb, err := filepath.Abs(b)
	if err != nil {
		return false, err
	}
	if aa == bb {
		return true, nil
	}
	sa, errA := os.Stat(aa)
	sb, errB := os.Stat(bb)
	return errA == nil && errB == nil && os.SameFile(sa, sb), nil
}

// copyTranscripts copies the cells' transcripts from src to dst under the same relative paths.
// Missing transcripts are skipped (the HTML report says so per cell); paths that leave src are
// never followed.
func copyTranscripts(src, dst string, cells []report.CellResult) error {
	same, err := sameDir(src, dst)
	if err != nil || same {
		return err
	}
	for _, c := range cells {
		rel := filepath.FromSlash(c.Transcript)
		if rel == "" || !filepath.IsLocal(rel) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, rel))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("copy transcript of %s: %w", c.ID, err)
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return fmt.Errorf("copy transcript of %s: %w", c.ID, err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			return fmt.Errorf("copy transcript of %s: %w", c.ID, err)
		}
	}
	return nil
}

// reportDiff compares two runs. Exit 0: no regression; 1: a cell newly failing or newly
// exposed; 2: the files cannot be read or compared.
func reportDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report diff", "", "", stderr)
	md := fs.String("md", "", "write the diff as Markdown to this file ('-' for stdout)")
	htmlOut := fs.String("html", "", "write the diff as a self-contained HTML page to this file")
	partial := fs.Bool("partial", false, "compare runs of different cell sets on the cells they share (default: refuse)")
	quiet := fs.Bool("q", false, "print only the headline")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: agenttls report diff old.json new.json [-md file] [-html file] [-partial]\n\nCompares two runs cell by cell. Exit 0: no regression; 1: a cell newly failing or newly exposed;\n2: a file cannot be read, or the runs cannot be compared.")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return badInput("give two results files, the old run first (got %d): agenttls report diff old.json new.json", len(pos))
	}
	if err := refuseOverwrite(pos, *md, *htmlOut); err != nil {
		return err
	}
	rs, err := readResults(pos)
	if err != nil {
		return err
	}
	old, cur := rs[0], rs[1]
	var opts []report.DiffOption
	if *partial {
		opts = append(opts, report.AllowPartial())
	}
	d, err := report.Diff(old, cur, opts...)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "diff: ")
		if !*partial && strings.Contains(msg, "different matrices") {
			return badInput("%s (flag -partial)", msg)
		}
		return badInput("%s", msg)
	}
	if old.ToolVersion != cur.ToolVersion && old.ToolVersion != "" && cur.ToolVersion != "" {
		fmt.Fprintf(stderr, "agenttls report diff: note: the runs were written by agenttls %s and %s (same schema %s)\n", old.ToolVersion, cur.ToolVersion, cur.Schema)
	}
	if old.Backend != cur.Backend {
		fmt.Fprintf(stderr, "agenttls report diff: note: comparing a run of the %s backend with one of the %s backend\n", old.Backend, cur.Backend)
	}
	if err := writeOutput(*md, stdout, d.WriteMarkdown); err != nil {
		return inputError{fmt.Errorf("markdown: %w", err)}
	}
	if err := writeOutput(*htmlOut, stdout, d.WriteHTML); err != nil {
		return inputError{fmt.Errorf("html: %w", err)}
	}
	if *md != "-" {
		printDiffText(stdout, d, pos[0], pos[1], *quiet)
	}
	if d.Regressed() {
		return exitError{exitRegression}
	}
	return nil
}

// printDiffText is the terminal view of a diff: the headline, the tally, and the cells of each
// group.
func printDiffText(w io.Writer, d *report.DiffResult, oldName, newName string, quiet bool) {
	head := "no regression"
	if d.Regressed() {
		head = fmt.Sprintf("REGRESSED: %d newly failing, %d newly exposed", len(d.NewlyFailing), len(d.NewlyExposed))
	}
	fmt.Fprintf(w, "agenttls report diff: %s -> %s: %s\n", runName(d.Old), runName(d.New), head)
	if quiet {
		return
	}
	fmt.Fprintf(w, "  old %s (%s)\n  new %s (%s)\n", oldName, d.Old.RunID, newName, d.New.RunID)
	if d.Partial {
		fmt.Fprintf(w, "  partial: %d cells only in the old run, %d only in the new run, not compared\n", len(d.OnlyOld), len(d.OnlyNew))
	}
	fmt.Fprintf(w, "  %d compared: %d newly failing, %d newly exposed, %d newly passing, %d moved with the oracle, %d other, %d unchanged\n",
		d.Compared, len(d.NewlyFailing), len(d.NewlyExposed), len(d.NewlyPassing), len(d.OracleMoved), len(d.Other), d.Unchanged)
	groups := []struct {
		title string
		cs    []report.CellChange
	}{
		{"newly failing", d.NewlyFailing}, {"newly exposed", d.NewlyExposed}, {"newly passing", d.NewlyPassing},
		{"moved with the oracle", d.OracleMoved}, {"other changes", d.Other},
	}
	for _, g := range groups {
		if len(g.cs) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%d):\n", g.title, len(g.cs))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range g.cs {
			fmt.Fprintf(tw, "  %s\t%s\t-> %s\n", c.ID, stateText(c.Old), stateText(c.New))
		}
		tw.Flush()
	}
}

func runName(ri report.RunInfo) string {
	switch {
	case ri.RancherVersion != "" && ri.SystemAgentVersion != "":
		return "rancher " + ri.RancherVersion + " / system-agent " + ri.SystemAgentVersion
	case ri.RancherVersion != "":
		return "rancher " + ri.RancherVersion
	case ri.SystemAgentVersion != "":
		return "system-agent " + ri.SystemAgentVersion
	}
	return ri.RunID
}

// stateText is one cell's outcome in a few words.
func stateText(c report.CellResult) string {
	switch {
	case c.Status == report.StatusSkipped:
		return "skipped"
	case c.Observed == c.Expected:
		return fmt.Sprintf("%s (%s)", c.Observed, c.Status)
	}
	return fmt.Sprintf("%s, want %s (%s)", orDash(string(c.Observed)), orDash(string(c.Expected)), c.Status)
}

// reportMerge joins shards into one run and writes every report of it into -o, transcripts
// included.
func reportMerge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report merge", "", "", stderr)
	out := fs.String("o", "", "folder for the merged results.json, reports and transcripts (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: agenttls report merge -o dir part1.json part2.json...\n\nJoins the results of the shards of one run (-shard i/n) into one results.json and its reports.")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nexit codes: 0 merged; 2 a part cannot be read, the parts are not shards of one run, or a bad flag.")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return badInput("-o is required: the folder for the merged reports")
	}
	if len(pos) == 0 {
		return badInput("give the results files of the shards: agenttls report merge -o dir part1.json part2.json...")
	}
	for _, p := range pos {
		if same, _ := sameDir(filepath.Dir(resultsPath(p)), *out); same {
			return badInput("-o %s holds shard %s: the merge would overwrite it; give another folder", *out, p)
		}
	}
	parts, err := readResults(pos)
	if err != nil {
		return err
	}
	m, err := report.Merge(parts...)
	if err != nil {
		return badInput("%s", strings.TrimPrefix(err.Error(), "merge: "))
	}
	if err := checkReportFolder(*out, m.RunID); err != nil { // an earlier merge of these shards may be replaced
		return err
	}
	for i, p := range pos {
		if err := copyTranscripts(filepath.Dir(resultsPath(p)), *out, parts[i].Cells); err != nil {
			return err
		}
	}
	if err := report.WriteAll(*out, m, report.WithTranscripts(*out)); err != nil {
		return err
	}
	n := m.Counts()
	shard := "complete"
	if m.Shard != "" {
		shard = "shards " + m.Shard + " only"
	}
	fmt.Fprintf(stdout, "agenttls report merge: %d part(s), %s: %d cells (%d passed, %d failed, %d skipped, %d exposed) -> %s\n",
		len(parts), shard, n.Total, n.Passed, n.Failed, n.Skipped, n.Exposed, *out)
	return nil
}

// reportSweep lays existing runs side by side. It exits 1 when a cell differs from the oracle
// in any run, like sweep-versions.
func reportSweep(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report sweep", "", "", stderr)
	md := fs.String("md", "", "write the table as Markdown to this file ('-' for stdout)")
	htmlOut := fs.String("html", "", "write the table as a self-contained HTML page to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: agenttls report sweep a.json b.json... [-md file] [-html file]\n\nOne row per cell, one column per run (give them oldest first). Exit 1 when a cell differs from the\noracle in any run.")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nexit codes: 0 no cell differs from the oracle; 1 one does; 2 a file cannot be read, a run was\ninterrupted, or a bad flag.")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return badInput("give the results files to compare, oldest first: agenttls report sweep a.json b.json...")
	}
	if err := refuseOverwrite(pos, *md, *htmlOut); err != nil {
		return err
	}
	rs, err := readResults(pos)
	if err != nil {
		return err
	}
	t, err := report.Sweep(rs)
	if err != nil {
		return badInput("%s", strings.TrimPrefix(err.Error(), "sweep: "))
	}
	if err := writeSweep(t, *md, *htmlOut, stdout); err != nil {
		return err
	}
	if *md != "-" {
		printSweepText(stdout, t)
	}
	if n := printDiffers(stderr, rs); n > 0 {
		return exitError{exitRegression}
	}
	return nil
}

func writeSweep(t *report.SweepTable, md, htmlOut string, stdout io.Writer) error {
	if err := writeOutput(md, stdout, t.WriteMarkdown); err != nil {
		return fmt.Errorf("markdown: %w", err)
	}
	if err := writeOutput(htmlOut, stdout, t.WriteHTML); err != nil {
		return fmt.Errorf("html: %w", err)
	}
	return nil
}

// printSweepText prints the runs and the rows that move, as a terminal table.
func printSweepText(w io.Writer, t *report.SweepTable) {
	moving := t.Moving()
	fmt.Fprintf(w, "agenttls version sweep: %d of %d cells change verdict across %d runs\n", len(moving), len(t.Rows), len(t.Runs))
	for _, r := range t.Runs {
		n := r.Counts
		fmt.Fprintf(w, "  %-24s %-10s %d cells: %d passed, %d failed, %d skipped, %d exposed\n",
			r.Label, orDash(r.ScriptProfile), n.Total, n.Passed, n.Failed, n.Skipped, n.Exposed)
	}
	if len(moving) == 0 {
		return
	}
	fmt.Fprintln(w, "\n(* the verdict changed from the previous run; ! the cell differs from the oracle)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "CELL")
	for _, r := range t.Runs {
		fmt.Fprintf(tw, "\t%s", r.Label)
	}
	fmt.Fprintln(tw)
	for _, row := range moving {
		fmt.Fprint(tw, row.ID)
		for _, e := range row.Entries {
			fmt.Fprintf(tw, "\t%s", entryText(e))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func entryText(e report.SweepEntry) string {
	switch {
	case !e.Present:
		return "·"
	case e.Status == report.StatusSkipped:
		return "skipped"
	}
	s := string(e.Observed)
	if e.Changed {
		s = "*" + s
	}
	if e.Status == report.StatusFailed {
		s = "!" + s + " (want " + string(e.Expected) + ")"
	}
	return s
}

// printDiffers lists, per run, the cells whose observed verdict is not the oracle's (failed
// cells), and returns how many there are.
func printDiffers(w io.Writer, rs []*report.Results) int {
	total := 0
	for _, r := range rs {
		failed := r.Failed()
		if len(failed) == 0 {
			continue
		}
		label := r.SystemAgentVersion
		if r.RancherVersion != "" {
			label = "rancher " + r.RancherVersion + " / " + label
		}
		fmt.Fprintf(w, "%s (run %s): %d cell(s) differ from the oracle:\n", label, r.RunID, len(failed))
		for _, c := range failed {
			fmt.Fprintf(w, "  %s: %s\n", c.ID, stateText(c))
			if c.Rerun != "" {
				fmt.Fprintf(w, "    rerun: %s\n", c.Rerun)
			}
		}
		total += len(failed)
	}
	return total
}
