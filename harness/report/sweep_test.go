package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/verdict"
)

// sweepRuns models four system-agent versions: the pre-strict era (v0.3.4, v0.3.11) had no
// strict abort, so strict cells without a checksum registered through the system store.
func sweepRuns(t *testing.T) []*Results {
	var runs []*Results
	for _, v := range []string{"v0.3.4", "v0.3.11", "v0.3.16", "v0.15.0"} {
		r := cleanRun(t, v)
		if v == "v0.3.4" || v == "v0.3.11" {
			r.ScriptProfile = "pre-strict"
			for i, c := range r.Cells {
				if c.Expected == verdict.FatalStrictNoChecksum {
					v := verdict.Registered
					switch {
					case c.Params.Path == "mitm":
						v = verdict.RejectedUntrusted
					case c.Params.Path == "mitm-trusted":
						v = verdict.Exposed
					}
					r.Cells[i].Expected, r.Cells[i].Observed, r.Cells[i].Evidence = v, v, synthEvidence(v)
				}
			}
		}
		runs = append(runs, r)
	}
	// v0.3.16 regressed on one cell, fixed in v0.15.0.
	setCell(t, runs[2], "private/strict/cs-absent/sv-unset/direct", StatusFailed, verdict.Registered, verdict.Timeout)
	// v0.15.0 lacks a cell (a smaller scenario).
	runs[3].Cells = runs[3].Cells[1:]
	return runs
}

func TestSweep(t *testing.T) {
	runs := sweepRuns(t)
	// Nil entries are ignored; the order given is the column order.
	s, err := Sweep(append([]*Results{nil}, runs...))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Runs) != 4 || s.Runs[0].Label != "v0.3.4" || s.Runs[3].Label != "v0.15.0" {
		t.Fatalf("columns %+v", s.Runs)
	}
	if len(s.Rows) != 144 {
		t.Fatalf("%d rows, want 144", len(s.Rows))
	}
	if s.Rows[0].ID != "private/strict/cs-absent/sv-unset/direct" || s.Rows[143].ID != "public/system-store/cs-wrong/sv-false/tamper" {
		t.Errorf("rows not in matrix order: first %s, last %s", s.Rows[0].ID, s.Rows[143].ID)
	}
	row := s.Rows[0]
	if !row.Moves || row.Entries[3].Present || !row.Entries[2].Changed || row.Entries[2].Observed != verdict.Timeout || row.Entries[1].Changed {
		t.Errorf("first row: %+v", row)
	}
	var fatal SweepRow
	for _, r := range s.Rows {
		if r.ID == "public/strict/cs-absent/sv-unset/mitm-trusted" {
			fatal = r
		}
	}
	if !fatal.Moves || !fatal.ExpectedMoves || fatal.Entries[0].Observed != verdict.Exposed || fatal.Entries[2].Observed != verdict.FatalStrictNoChecksum ||
		fatal.Entries[1].Changed || !fatal.Entries[2].Changed || fatal.Entries[3].Changed {
		t.Errorf("strict-era row: %+v", fatal)
	}
	// The 12 cells that expect the strict fatal in the strict era (public CA, no checksum,
	// strict by mode or by sv-true) move, and so does the regressed cell.
	moving := s.Moving()
	want := 1
	for _, c := range runs[3].Cells {
		if c.Expected == verdict.FatalStrictNoChecksum {
			want++
		}
	}
	if len(moving) != want || want != 13 {
		t.Errorf("%d moving rows, want %d", len(moving), want)
	}
	// Rows that do not move are the rest; skipped entries do not count as a move.
	for _, r := range s.Rows {
		if r.ID == "public/system-store/cs-correct/sv-true/tamper" && r.Moves {
			t.Error("a cell skipped in every run moves")
		}
	}
	// Two runs of one version get told apart by run ID.
	dup, err := Sweep([]*Results{runs[0], runs[0]})
	if err != nil {
		t.Fatal(err)
	}
	if dup.Runs[0].Label != "v0.3.4 (run-v0-3-4)" {
		t.Errorf("duplicate label %q", dup.Runs[0].Label)
	}
}

func TestSweepRenderers(t *testing.T) {
	s, err := Sweep(sweepRuns(t))
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := s.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	for _, want := range []string{
		"## agenttls version sweep: 13 of 144 cells change verdict across 4 runs\n",
		"| cell | v0.3.4 | v0.3.11 | v0.3.16 | v0.15.0 |",
		"### Cells whose verdict moves (13)",
		"| `private/strict/cs-absent/sv-unset/direct` | registered | registered | ❌ **timeout** (want registered) | · |",
		"| `public/strict/cs-absent/sv-unset/mitm-trusted` | ⚠️ EXPOSED | ⚠️ EXPOSED | **fatal** | fatal |",
		"<details><summary>All 144 cells</summary>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sweep markdown lacks %q", want)
		}
	}
	moves := out[strings.Index(out, "### Cells whose verdict moves"):strings.Index(out, "<details>")]
	if strings.Contains(moves, "private/strict/cs-absent/sv-unset/mitm`") {
		t.Error("a cell that does not move is in the moving table")
	}
	var h bytes.Buffer
	if err := s.WriteHTML(&h); err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, parseHTML(t, h.Bytes()))
	page := h.String()
	if n := strings.Count(page, `<tr class="moving">`); n != 13 {
		t.Errorf("%d highlighted rows, want 13", n)
	}
	if n := strings.Count(page, `<tr class="still">`); n != 131 {
		t.Errorf("%d still rows, want 131", n)
	}
	// The script era changes once (pre-strict v0.3.11 -> strict v0.3.16): that column header
	// and its entries carry the era rule; a failed entry carries the ≠ mark and the expected
	// verdict; an exposed one the ⚠ mark.
	if n := strings.Count(page, `<th class="era">v0.3.16<br><span class="small">strict</span></th>`); n != 1 {
		t.Errorf("%d era headers before v0.3.16, want 1", n)
	}
	if n := strings.Count(page, `<th class="era">`); n != 1 {
		t.Errorf("%d era headers, want 1", n)
	}
	if !strings.Contains(page, `timeout <b class="mk ne">≠</b></span> <span class="small">want registered</span>`) {
		t.Error("the failed entry lacks its ≠ mark and expected verdict")
	}
	if !strings.Contains(page, `EXPOSED <b class="mk warn">⚠</b>`) {
		t.Error("exposed entries lack the ⚠ mark")
	}
	dir := demoDir(t)
	if err := os.WriteFile(filepath.Join(dir, "sweep.html"), h.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	screenshot(t, filepath.Join(dir, "sweep.html"))
}

// An interrupted run is refused by the sweep as by diff: the cells it was running failed for
// the interruption, and the table would count them as differing from the oracle.
func TestSweepAndDiffRefuseAnInterruptedRun(t *testing.T) {
	runs := sweepRuns(t)
	if s, err := Sweep(append([]*Results{nil}, runs...)); err != nil || len(s.Runs) != 4 || len(s.Rows) == 0 {
		t.Fatalf("Sweep of complete runs: %v", err)
	}
	runs[2].Interrupted = true
	_, sweepErr := Sweep(runs)
	_, diffErr := Diff(runs[2], runs[2])
	for op, err := range map[string]error{"sweep": sweepErr, "diff": diffErr} {
		if err == nil {
			t.Errorf("%s accepted an interrupted run", op)
			continue
		}
		for _, w := range []string{op + ": run " + runs[2].RunID + " was interrupted", "run it again to completion"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", op, err, w)
			}
		}
	}
	if sweepErr != nil && diffErr != nil && strings.TrimPrefix(sweepErr.Error(), "sweep: ") != strings.TrimPrefix(diffErr.Error(), "diff: ") {
		t.Errorf("sweep and diff refuse an interrupted run in different words:\n  %v\n  %v", sweepErr, diffErr)
	}
}
