package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/verdict"
)

func TestMarkdownSummary(t *testing.T) {
	dir := t.TempDir()
	r := synthRun(t, dir, "v0.15.0")
	r.Cells = append(r.Cells, extraCells()...)
	// Evidence with a pipe and a backtick must not break the table.
	findCell(t, r, "private/strict/cs-wrong/sv-false/tamper").Evidence = verdict.Evidence{Source: "stderr", Line: "a | b `c`"}
	if err := WriteAll(dir, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	lines := strings.Split(md, "\n")
	if want := "## agenttls `run-v0-15-0`: 149 cells: ❌ 3 failed, 144 passed, 2 skipped, ⚠️ 19 exposed"; lines[0] != want {
		t.Errorf("header %q\nwant %q", lines[0], want)
	}
	for _, want := range []string{
		"| system-agent | `v0.15.0` |",
		"| backend | emulator |",
		"> **⚠️ 19 cells EXPOSED**: the node registered through an attacker's proxy. 18 are what the oracle expects",
		"**1 is not, and fails this run**",
		"### ❌ Failures (3)",
		"| `private/strict/cs-wrong/sv-false/tamper` | `rejected-checksum-mismatch` | `timeout` | `` stderr: a \\| b `c` `` | `make e2e FOCUS='private/strict/cs-wrong/sv-false/tamper'` |",
		"| `private/system-store/cs-absent/sv-false/mitm` | `rejected-checksum-mismatch` | ⚠️ **`exposed`** |",
		"make e2e FOCUS='public/strict/cs-absent/sv-false/mitm-trusted'\n```",
		"### ⚠️ Exposed (19)",
		"### 🔁 Retried (1)",
		"| cs-absent / sv-false | registered | ❌ **EXPOSED** (want mismatch) | ⚠️ EXPOSED | mismatch |",
		"| cs-correct / sv-true | no-cacerts | mismatch | mismatch | ⏭ skipped |",
		"#### Cells outside the standard matrix (5)",
		"| `private-bundle/strict/cs-correct/sv-unset/direct` | `registered` | `registered` | passed |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// The exposing variable is the one sh reads, not the legacy STRICT_VERIFY.
	if !strings.Contains(md, "(the documented cost of `system-store` or `CATTLE_AGENT_STRICT_VERIFY=false`)") || strings.Contains(md, "`STRICT_VERIFY=false`") {
		t.Error("the EXPOSED note does not name CATTLE_AGENT_STRICT_VERIFY=false as the exposing setting")
	}
	// Failures come before the exposed cells, which come before the full layout.
	f, e, a := strings.Index(md, "### ❌ Failures"), strings.Index(md, "### ⚠️ Exposed"), strings.Index(md, "All 149 cells")
	if !(f > 0 && f < e && e < a) {
		t.Errorf("section order failures=%d exposed=%d all=%d", f, e, a)
	}
	// Every table row has the column count of its header.
	cols := 0
	for _, l := range lines {
		if !strings.HasPrefix(l, "|") {
			cols = 0
			continue
		}
		n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("table row has %d pipes, header %d: %s", n, cols, l)
		}
	}
}

func TestMarkdownShowsExposedEvenWhenAllPass(t *testing.T) {
	r := synthRun(t, "", "v0.15.0")
	var cells []CellResult
	for _, c := range r.Cells {
		if c.Status == StatusFailed {
			c.Observed, c.Status, c.Evidence = c.Expected, StatusPassed, synthEvidence(c.Expected)
		}
		cells = append(cells, c)
	}
	r.Cells = cells
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	if !strings.Contains(md, "⚠️ 18 exposed") || !strings.Contains(md, "> **⚠️ 18 cells EXPOSED**") || !strings.Contains(md, "### ⚠️ Exposed (18)") {
		t.Error("expected exposures are not shown loudly")
	}
	if strings.Contains(md, "Failures") || strings.Contains(md, "fails this run") {
		t.Error("a run with no failure shows a failures section")
	}
	r.Cells = r.Cells[:4] // no mitm-trusted exposure in these
	b.Reset()
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "0 exposed") || !strings.Contains(b.String(), "> No cell exposed") {
		t.Errorf("zero exposed is not stated:\n%s", b.String())
	}
}

func TestSummaryTable(t *testing.T) {
	r := synthRun(t, "", "v0.15.0")
	var b bytes.Buffer
	if err := SummaryTable(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if lines[0] != "agenttls run run-v0-15-0: system-agent v0.15.0, backend emulator, scenario scenarios/full.yaml" {
		t.Errorf("line 1: %q", lines[0])
	}
	if lines[1] != "144 cells: 3 FAILED, 139 passed, 2 skipped; 18 EXPOSED (17 expected by the oracle, 1 not); 1 retried" {
		t.Errorf("line 2: %q", lines[1])
	}
	if !strings.HasPrefix(lines[3], "STATUS") {
		t.Fatalf("line 4 is not the table header: %q", lines[3])
	}
	// Failures first, each with evidence and its rerun command on its own aligned line.
	if !strings.HasPrefix(lines[4], "FAILED ") || !strings.Contains(lines[4], "private/strict/cs-wrong/sv-false/tamper") {
		t.Errorf("first row is not the first failure: %q", lines[4])
	}
	detailCol := strings.Index(lines[3], "DETAIL")
	rerun := -1
	for i, l := range lines[4:9] {
		if strings.Contains(l, "rerun: make e2e FOCUS='private/strict/cs-wrong/sv-false/tamper'") {
			rerun = i
			if strings.Index(l, "rerun:") != detailCol {
				t.Errorf("rerun line not aligned to DETAIL column: %q", l)
			}
		}
	}
	if rerun < 0 {
		t.Errorf("no rerun line for the first failure:\n%s", strings.Join(lines[:10], "\n"))
	}
	lastFailed, firstPass := -1, -1
	rows := 0
	for i, l := range lines[4:] {
		switch {
		case strings.HasPrefix(l, "FAILED"):
			lastFailed = i
			rows++
		case strings.HasPrefix(l, "pass") && firstPass < 0:
			firstPass = i
			rows++
		case strings.HasPrefix(l, "pass"), strings.HasPrefix(l, "SKIPPED"):
			rows++
		}
	}
	if lastFailed > firstPass {
		t.Error("a failure is listed after a passing cell")
	}
	if rows != 144 {
		t.Errorf("%d cell rows, want 144", rows)
	}
	if !strings.Contains(out, "\npass EXPOSED    private/strict/cs-absent/sv-false/mitm-trusted ") {
		t.Error("expected exposed cells are not marked in the table")
	}
	if !strings.Contains(out, "attempts: 2") {
		t.Error("retried cell not marked")
	}
	for _, l := range lines {
		if strings.TrimRight(l, " ") != l {
			t.Errorf("trailing spaces: %q", l)
			break
		}
	}
}

// A skipped cell observed nothing: a placeholder in its observed field must not show anywhere.
func TestSkippedPlaceholdersRenderAsSkipped(t *testing.T) {
	r := synthRun(t, "", "v0.15.0")
	c := findCell(t, r, "public/system-store/cs-correct/sv-true/tamper")
	c.Observed, c.Expected = verdict.Exposed, verdict.Unexpected
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := r.Counts(); n.Exposed != 18 || n.Skipped != 2 {
		t.Errorf("a skipped placeholder counted: %+v", n)
	}
	var md, tbl, x, h bytes.Buffer
	if err := WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if err := SummaryTable(&tbl, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteJUnit(&x, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&h, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| cs-correct / sv-true | no-cacerts | mismatch | mismatch | ⏭ skipped |") {
		t.Error("markdown grid does not show the cell as skipped")
	}
	for _, l := range strings.Split(tbl.String(), "\n") {
		if strings.Contains(l, c.ID) && (!strings.HasPrefix(l, "SKIPPED ") || strings.Contains(l, "exposed")) {
			t.Errorf("terminal row %q", l)
		}
	}
	if i := strings.Index(x.String(), `name="`+c.ID+`"`); i < 0 || strings.Contains(x.String()[i:i+600], `name="observed"`) {
		t.Error("junit carries an observed verdict for a skipped cell")
	}
	if !strings.Contains(h.String(), `class="tile v-skipped" href="cells/public_system-store_cs-correct_sv-true_tamper/transcript.txt"`) {
		t.Error("html tile of the skipped cell is not plain skipped")
	}
}
