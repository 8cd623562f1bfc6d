package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/oracle"
	"github.com/agenttls/agenttls/harness/report"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

// These tests drive `agenttls report` and `agenttls sweep-versions` through mainErr, as the
// binary does, on results files written to disk: real files, real exit codes, no Docker.

type cliOut struct {
	code           int
	stdout, stderr string
}

func cli(t *testing.T, args ...string) cliOut {
	t.Helper()
	var out, errb bytes.Buffer
	code := mainErr(context.Background(), args, &out, &errb)
	return cliOut{code, out.String(), errb.String()}
}

func loadCells(t *testing.T, scenario string) []matrix.Cell {
	t.Helper()
	root, err := config.FindModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	s, err := matrix.LoadScenario(filepath.Join(root, scenario))
	if err != nil {
		t.Fatal(err)
	}
	return s.Cells
}

// synthRun is a clean run of cells in which every cell observed what the oracle expects for
// the given script profile, with a transcript per cell in dir (when dir is not empty).
func synthRun(t *testing.T, dir, sa, profile string, cells []matrix.Cell) *report.Results {
	t.Helper()
	p, err := script.ParseProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	r := &report.Results{
		Schema: report.SchemaVersion, RunID: "r-" + strings.ReplaceAll(sa, ".", "-"), ToolVersion: "dev",
		Backend: config.BackendEmulator, SystemAgentVersion: sa, ScriptProfile: profile, ScriptSHA256: strings.Repeat("ab", 32),
		Scenario: "synthetic", Started: time.Unix(1_800_000_000, 0).UTC(), Finished: time.Unix(1_800_000_060, 0).UTC(),
		Config: map[string]string{"sa-version": sa, "run-id": "r-" + sa, "artifacts": dir, "shard": ""},
	}
	for _, c := range cells {
		e := oracle.Expect(c, p, oracle.Server{})
		cr := report.CellResult{
			ID: c.ID(), Params: c, Labels: c.Labels(), Expected: e.Verdict, Reason: e.Reason, Observed: e.Verdict,
			Evidence: verdict.Evidence{Line: "synthetic line for " + c.ID(), Source: "stdout"},
			Status:   report.StatusPassed, Duration: time.Second, Transcript: "transcripts/" + c.Slug() + ".txt",
			Rerun: "make conformance SA_VERSION=" + sa + " CELL='" + c.ID() + "'",
		}
		r.Cells = append(r.Cells, cr)
	}
	if dir != "" {
		writeRun(t, dir, r)
	}
	return r
}

// writeRun writes r's results.json and a transcript per cell into dir.
func writeRun(t *testing.T, dir string, r *report.Results) string {
	t.Helper()
	if err := report.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Cells {
		p := filepath.Join(dir, c.Transcript)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("transcript of "+c.ID+" in "+r.RunID+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, report.ResultsFile)
}

func setCell(t *testing.T, r *report.Results, id string, status report.Status, observed verdict.Verdict) {
	t.Helper()
	for i, c := range r.Cells {
		if c.ID == id {
			r.Cells[i].Status, r.Cells[i].Observed = status, observed
			return
		}
	}
	t.Fatalf("no cell %s", id)
}

const (
	cellPinned  = "private/strict/cs-absent/sv-unset/direct"            // registered
	cellTrusted = "public/system-store/cs-absent/sv-unset/mitm-trusted" // exposed in every era
	cellMITM    = "private/system-store/cs-absent/sv-false/mitm"        // rejected by the pinned CA
)

func TestReportDiffExitCodes(t *testing.T) {
	cells := loadCells(t, "scenarios/smoke.yaml")
	base := t.TempDir()
	oldPath := writeRun(t, filepath.Join(base, "old"), synthRun(t, "", "v0.15.0", "strict", cells))

	t.Run("same run", func(t *testing.T) {
		r := cli(t, "report", "diff", oldPath, filepath.Dir(oldPath)) // a folder stands for its results.json
		if r.code != 0 || !strings.Contains(r.stdout, "no regression") || !strings.Contains(r.stdout, "6 compared") {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("newly failing", func(t *testing.T) {
		nr := synthRun(t, "", "v0.15.0", "strict", cells)
		setCell(t, nr, cellPinned, report.StatusFailed, verdict.Timeout)
		newPath := writeRun(t, filepath.Join(base, "failing"), nr)
		md, html := filepath.Join(base, "out", "d.md"), filepath.Join(base, "out", "d.html")
		r := cli(t, "report", "diff", oldPath, newPath, "-md", md, "-html", html) // flags after the files
		if r.code != exitRegression {
			t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "REGRESSED: 1 newly failing, 0 newly exposed") || !strings.Contains(r.stdout, cellPinned) {
			t.Errorf("stdout:\n%s", r.stdout)
		}
		mdText, err := os.ReadFile(md)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(mdText), "### ❌ Newly failing (1)") || !strings.Contains(string(mdText), "`"+cellPinned+"`") {
			t.Errorf("markdown:\n%s", mdText)
		}
		if h, err := os.ReadFile(html); err != nil || !strings.Contains(string(h), "Newly failing") {
			t.Errorf("html: %v", err)
		}
	})

	t.Run("newly exposed although the oracle agrees", func(t *testing.T) {
		// The pinned cell of a system-store run through a trusted interception: if a version
		// made it exposed and the oracle followed, it is still a regression to look at.
		or := synthRun(t, "", "v0.15.0", "strict", cells)
		nr := synthRun(t, "", "v0.15.0", "strict", cells)
		for i, c := range nr.Cells {
			if c.ID == cellMITM {
				nr.Cells[i].Expected, nr.Cells[i].Observed = verdict.Exposed, verdict.Exposed
			}
		}
		r := cli(t, "report", "diff", writeRun(t, filepath.Join(base, "o2"), or), writeRun(t, filepath.Join(base, "n2"), nr))
		if r.code != exitRegression || !strings.Contains(r.stdout, "1 newly exposed") {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("newly passing", func(t *testing.T) {
		or := synthRun(t, "", "v0.15.0", "strict", cells)
		setCell(t, or, cellPinned, report.StatusFailed, verdict.Timeout)
		r := cli(t, "report", "diff", "-md", "-", writeRun(t, filepath.Join(base, "o3"), or), oldPath)
		if r.code != 0 || !strings.Contains(r.stdout, "### ✅ Newly passing (1)") {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("the oracle moved with the version", func(t *testing.T) {
		pre := writeRun(t, filepath.Join(base, "pre"), synthRun(t, "", "v0.3.4", "pre-strict", cells))
		r := cli(t, "report", "diff", pre, oldPath)
		if r.code != 0 || !strings.Contains(r.stdout, "moved with the oracle (") {
			t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}

func TestReportDiffRefusesBadInput(t *testing.T) {
	cells := loadCells(t, "scenarios/smoke.yaml")
	dir := t.TempDir()
	good := writeRun(t, filepath.Join(dir, "good"), synthRun(t, "", "v0.15.0", "strict", cells))
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	doc["schema"] = "agenttls.results/v2"
	doc["cells"] = "moved elsewhere in v2"
	v2, _ := json.Marshal(doc)
	subset := synthRun(t, "", "v0.15.0", "strict", cells[:4])
	subset.RunID = "r-subset"

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"truncated", []string{good, write("truncated.json", data[:len(data)/3])}, "is truncated or not JSON"},
		{"empty", []string{good, write("empty.json", nil)}, "is truncated or not JSON"},
		{"another schema version", []string{write("v2.json", v2), good}, `was written by schema "agenttls.results/v2"; this agenttls reads "agenttls.results/v1"`},
		{"another tool's JSON", []string{good, write("ginkgo.json", []byte(`[{"SuitePath":"/x","SpecReports":[]}]`))}, "is not an agenttls results file"},
		{"JSON without a schema", []string{good, write("other.json", []byte(`{"tests": 3, "passed": 3}`))}, "has no schema field"},
		{"JUnit XML", []string{good, write("junit.xml", []byte(`<?xml version="1.0"?><testsuites/>`))}, "is truncated or not JSON"},
		{"cells that contradict themselves", []string{good, write("bad-cells.json", bytes.Replace(data, []byte(`"status": "passed"`), []byte(`"status": "green"`), 1))}, `is not passed, failed or skipped`},
		{"missing file", []string{good, filepath.Join(dir, "nope.json")}, "no such file"},
		{"folder without results", []string{good, t.TempDir()}, "no such file"},
		{"different matrices", []string{good, writeRun(t, filepath.Join(dir, "subset"), subset)}, "the runs cover different matrices: 2 cells only in old run"},
		{"one file", []string{good}, "give two results files"},
		{"three files", []string{good, good, good}, "give two results files"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, append([]string{"report", "diff"}, tc.args...)...)
			if r.code != exitBadInput {
				t.Errorf("exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) || !strings.HasPrefix(r.stderr, "agenttls report diff: ") {
				t.Errorf("stderr %q\nwant it to contain %q", r.stderr, tc.want)
			}
		})
	}

	// Different matrices compare on the shared cells when asked to.
	r := cli(t, "report", "diff", "-partial", good, filepath.Join(dir, "subset"))
	if r.code != 0 || !strings.Contains(r.stdout, "partial: 2 cells only in the old run") || !strings.Contains(r.stdout, "4 compared") {
		t.Errorf("-partial: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A flag the command does not know is a usage error, not a regression.
	if r := cli(t, "report", "diff", "-fail-fast", good, good); r.code != exitBadInput {
		t.Errorf("unknown flag: exit %d", r.code)
	}
	if r := cli(t, "report", "frobnicate"); r.code != exitBadInput || !strings.Contains(r.stderr, `unknown subcommand "frobnicate"`) {
		t.Errorf("unknown subcommand: exit %d %s", r.code, r.stderr)
	}
	if r := cli(t, "report", "diff", "-h"); r.code != 0 {
		t.Errorf("-h: exit %d", r.code)
	}
}

func TestReportRender(t *testing.T) {
	cells := loadCells(t, "scenarios/smoke.yaml")
	src := t.TempDir()
	nr := synthRun(t, "", "v0.15.0", "strict", cells)
	setCell(t, nr, cellPinned, report.StatusFailed, verdict.Timeout)
	path := writeRun(t, src, nr)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// In place: the views appear, results.json is left as it was.
	r := cli(t, "report", "render", path)
	if r.code != 0 || !strings.Contains(r.stdout, "6 cells (5 passed, 1 failed") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("render in place rewrote results.json")
	}
	junit, err := os.ReadFile(filepath.Join(src, report.JUnitFile))
	if err != nil || !strings.Contains(string(junit), `failures="1"`) || !strings.Contains(string(junit), `name="`+cellPinned+`"`) {
		t.Errorf("junit.xml: %v\n%.600s", err, junit)
	}
	summary, err := os.ReadFile(filepath.Join(src, report.SummaryFile))
	if err != nil || !strings.Contains(string(summary), cellPinned) {
		t.Errorf("summary.md: %v", err)
	}

	// Elsewhere: a folder that stands on its own, transcripts embedded in the page.
	out := filepath.Join(t.TempDir(), "rendered")
	if r := cli(t, "report", "render", "-o", out, src); r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{report.ResultsFile, report.JUnitFile, report.SummaryFile, report.HTMLFile, "transcripts/" + strings.ReplaceAll(cellPinned, "/", "_") + ".txt"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("rendered folder lacks %s: %v", f, err)
		}
	}
	page, _ := os.ReadFile(filepath.Join(out, report.HTMLFile))
	if !strings.Contains(string(page), "transcript of "+cellPinned+" in "+nr.RunID) {
		t.Error("the HTML report does not embed the transcript")
	}
	if _, err := report.Read(filepath.Join(out, report.ResultsFile)); err != nil {
		t.Error(err)
	}
	if r := cli(t, "report", "render", filepath.Join(src, "missing.json")); r.code != exitBadInput {
		t.Errorf("missing file: exit %d", r.code)
	}
}

// shardRuns writes the n shards of a run of cells as a sharded `agenttls run` would: each
// with its shard, its own run ID and artifacts folder.
func shardRuns(t *testing.T, base string, cells []matrix.Cell, n int) []string {
	t.Helper()
	var paths []string
	for i := 1; i <= n; i++ {
		part, err := matrix.Shard(cells, i, n)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(base, "shard", strconv.Itoa(i))
		r := synthRun(t, "", "v0.15.0", "strict", part)
		r.Shard = fmt.Sprintf("%d/%d", i, n)
		r.RunID = fmt.Sprintf("r-shard-%d", i)
		r.Config["shard"], r.Config["run-id"], r.Config["artifacts"] = r.Shard, r.RunID, dir
		paths = append(paths, writeRun(t, dir, r))
	}
	return paths
}

func TestReportMerge(t *testing.T) {
	cells := loadCells(t, "scenarios/full.yaml")
	base := t.TempDir()
	parts := shardRuns(t, base, cells, 3)
	out := filepath.Join(base, "merged")

	r := cli(t, append([]string{"report", "merge", "-o", out}, parts...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "3 part(s), complete: 144 cells (144 passed") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	m, err := report.Read(filepath.Join(out, report.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	full := synthRun(t, "", "v0.15.0", "strict", cells)
	if len(m.Cells) != len(full.Cells) || m.Shard != "" || m.RunID != "r-shard-1+r-shard-2+r-shard-3" {
		t.Fatalf("merged: %d cells, shard %q, run %q", len(m.Cells), m.Shard, m.RunID)
	}
	// The merged run is the unsharded run, cell for cell: a diff finds nothing.
	if err := report.Write(filepath.Join(base, "full"), full); err != nil {
		t.Fatal(err)
	}
	if d := cli(t, "report", "diff", filepath.Join(base, "full"), out); d.code != 0 || !strings.Contains(d.stdout, "144 compared") || !strings.Contains(d.stdout, "144 unchanged") {
		t.Errorf("diff unsharded vs merged: exit %d\n%s%s", d.code, d.stdout, d.stderr)
	}
	// Every shard's transcripts came along, and the page embeds them.
	for _, c := range m.Cells {
		if _, err := os.Stat(filepath.Join(out, c.Transcript)); err != nil {
			t.Fatalf("merged folder lacks the transcript of %s: %v", c.ID, err)
		}
	}
	page, _ := os.ReadFile(filepath.Join(out, report.HTMLFile))
	if !strings.Contains(string(page), "transcript of "+cellTrusted+" in r-shard-") {
		t.Error("the merged HTML report does not embed the shards' transcripts")
	}

	// Two of three shards: merged, and says which.
	r = cli(t, "report", "merge", "-o", filepath.Join(base, "partial"), parts[0], parts[2])
	if r.code != 0 || !strings.Contains(r.stdout, "shards 1/3+3/3 only: 96 cells") {
		t.Errorf("partial merge: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A shard twice, shards of another version, no -o, nothing given: refused.
	other := synthRun(t, "", "v0.3.16", "strict", cells[:3])
	other.Shard = "2/3"
	otherPath := writeRun(t, filepath.Join(base, "other"), other)
	for name, args := range map[string][]string{
		"shard twice":   {"-o", filepath.Join(base, "x"), parts[0], parts[0]},
		"other version": {"-o", filepath.Join(base, "y"), parts[0], otherPath},
		"no -o":         {parts[0]},
		"no parts":      {"-o", filepath.Join(base, "z")},
		"truncated":     {"-o", filepath.Join(base, "w"), parts[0], writeTruncated(t, parts[1])},
		"into a shard":  {"-o", filepath.Dir(parts[0]), parts[0], parts[1], parts[2]},
	} {
		if r := cli(t, append([]string{"report", "merge"}, args...)...); r.code != exitBadInput || !strings.HasPrefix(r.stderr, "agenttls report merge: ") {
			t.Errorf("%s: exit %d, stderr %q", name, r.code, r.stderr)
		}
	}
}

func writeTruncated(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cut.json")
	if err := os.WriteFile(p, data[:len(data)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReportSweep(t *testing.T) {
	cells := loadCells(t, "scenarios/full.yaml")
	base := t.TempDir()
	pre := writeRun(t, filepath.Join(base, "v0.3.4"), synthRun(t, "", "v0.3.4", "pre-strict", cells))
	strict := writeRun(t, filepath.Join(base, "v0.15.0"), synthRun(t, "", "v0.15.0", "strict", cells))
	md, html := filepath.Join(base, "s.md"), filepath.Join(base, "s.html")

	r := cli(t, "report", "sweep", pre, strict, "-md", md, "-html", html)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The oracle's own table: which cells the strict era moves. The sweep must find exactly those.
	p1, _ := script.ParseProfile("pre-strict")
	p2, _ := script.ParseProfile("strict")
	moving := 0
	for _, c := range cells {
		if oracle.Expect(c, p1, oracle.Server{}).Verdict != oracle.Expect(c, p2, oracle.Server{}).Verdict {
			moving++
		}
	}
	if moving == 0 {
		t.Fatal("the oracle moves no cell between the eras: the test proves nothing")
	}
	head := "agenttls version sweep: " + strconv.Itoa(moving) + " of 144 cells change verdict across 2 runs"
	if !strings.Contains(r.stdout, head) {
		t.Errorf("stdout lacks %q:\n%.800s", head, r.stdout)
	}
	mdText, _ := os.ReadFile(md)
	if !strings.Contains(string(mdText), "### Cells whose verdict moves ("+strconv.Itoa(moving)+")") || !strings.Contains(string(mdText), "| cell | v0.3.4 | v0.15.0 |") {
		t.Errorf("markdown:\n%.1500s", mdText)
	}
	page, _ := os.ReadFile(html)
	if n := strings.Count(string(page), `<tr class="moving">`); n != moving {
		t.Errorf("%d highlighted rows in the HTML, want %d", n, moving)
	}

	// A cell that differs from the oracle in one run fails the sweep and is named with its rerun.
	bad := synthRun(t, "", "v0.3.16", "strict", cells)
	setCell(t, bad, cellPinned, report.StatusFailed, verdict.Timeout)
	badPath := writeRun(t, filepath.Join(base, "v0.3.16"), bad)
	r = cli(t, "report", "sweep", pre, badPath, strict)
	if r.code != exitRegression || !strings.Contains(r.stderr, "v0.3.16 (run r-v0-3-16): 1 cell(s) differ from the oracle") ||
		!strings.Contains(r.stderr, "rerun: make conformance SA_VERSION=v0.3.16 CELL='"+cellPinned+"'") {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
	if r := cli(t, "report", "sweep", pre, writeTruncated(t, strict)); r.code != exitBadInput {
		t.Errorf("truncated input: exit %d", r.code)
	}
	// An interrupted run is refused, as diff refuses it, not counted as cells that differ.
	stopped := synthRun(t, "", "v0.3.16", "strict", cells)
	stopped.Interrupted = true
	r = cli(t, "report", "sweep", pre, writeRun(t, filepath.Join(base, "stopped"), stopped))
	if r.code != exitBadInput || !strings.Contains(r.stderr, "interrupted") {
		t.Errorf("interrupted run: exit %d\n%s", r.code, r.stderr)
	}
}

// Report outputs never replace what they read, another run's reports, or the repository's files.
func TestReportOutputsDoNotOverwrite(t *testing.T) {
	cells := loadCells(t, "scenarios/smoke.yaml")
	ra, rb := synthRun(t, "", "v0.15.0", "strict", cells), synthRun(t, "", "v0.15.0", "strict", cells)
	ra.RunID, rb.RunID = "ra", "rb"
	a := writeRun(t, t.TempDir(), ra)
	other := t.TempDir()
	b := writeRun(t, other, rb)
	root, _ := config.FindModuleRoot()
	for name, args := range map[string][]string{
		"render into another run's folder":  {"report", "render", "-o", other, a},
		"render into fixtures/baseline":     {"report", "render", "-o", filepath.Join(root, "fixtures", "baseline"), a},
		"diff's Markdown onto an input":     {"report", "diff", a, b, "-md", b},
		"sweep's HTML onto an input":        {"report", "sweep", a, b, "-html", a},
		"diff's Markdown onto the baseline": {"report", "diff", a, b, "-md", filepath.Join(root, "fixtures", "baseline", "results.json")},
		"sweep's Markdown into scenarios/":  {"report", "sweep", a, b, "-md", "../../scenarios/new.md"},
		"diff's HTML onto a run's report":   {"report", "diff", a, b, "-html", filepath.Join(other, "report.html")},
		"both outputs to one file":          {"report", "diff", a, b, "-md", filepath.Join(other, "d.txt"), "-html", filepath.Join(other, "d.txt")},
		"render into scenarios/, relative":  {"report", "render", "-o", "../../scenarios", a},
	} {
		if r := cli(t, args...); r.code != exitBadInput {
			t.Errorf("%s: exit %d\n%s", name, r.code, r.stderr)
		}
	}
	if res, err := report.Read(b); err != nil || res.RunID != "rb" {
		t.Errorf("run rb's results were touched: %v", err)
	}
	// The same run again into its own rendering is fine.
	out := t.TempDir()
	for i := 0; i < 2; i++ {
		if r := cli(t, "report", "render", "-o", out, a); r.code != 0 {
			t.Fatalf("render %d into %s: exit %d\n%s", i+1, out, r.code, r.stderr)
		}
	}
}
