package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/verdict"
)

// cleanRun is a synthetic run with every injected failure turned into a pass.
func cleanRun(t *testing.T, sav string) *Results {
	r := synthRun(t, "", sav)
	for i, c := range r.Cells {
		if c.Status == StatusFailed {
			r.Cells[i].Observed, r.Cells[i].Status, r.Cells[i].Evidence, r.Cells[i].Message = c.Expected, StatusPassed, synthEvidence(c.Expected), ""
		}
	}
	return r
}

func setCell(t *testing.T, r *Results, id string, status Status, expected, observed verdict.Verdict) {
	c := findCell(t, r, id)
	c.Status, c.Expected, c.Observed = status, expected, observed
	c.Evidence = synthEvidence(observed)
}

const (
	idFail       = "private/strict/cs-absent/sv-unset/direct"           // registered -> untrusted
	idExposed    = "private/strict/cs-absent/sv-unset/mitm"             // mismatch -> exposed
	idFixed      = "private/strict/cs-absent/sv-true/direct"            // failed -> passed
	idMoved      = "public/system-store/cs-absent/sv-true/direct"       // fatal -> registered, both pass
	idMovedExp   = "public/system-store/cs-absent/sv-true/mitm-trusted" // fatal -> exposed, both pass
	idUnskipped  = "public/system-store/cs-correct/sv-true/tamper"      // skipped -> passed
	idStillFail  = "private/strict/cs-wrong/sv-true/direct"             // failed -> failed differently
	idSameFailed = "private/strict/cs-wrong/sv-unset/direct"            // failed the same way in both
)

func diffPair(t *testing.T) (*Results, *Results) {
	old, new := cleanRun(t, "v0.3.16"), cleanRun(t, "v0.15.0")
	old.ScriptProfile = "pre-strict"
	setCell(t, new, idFail, StatusFailed, verdict.Registered, verdict.RejectedUntrusted)
	setCell(t, new, idExposed, StatusFailed, verdict.RejectedChecksumMismatch, verdict.Exposed)
	setCell(t, old, idFixed, StatusFailed, verdict.Registered, verdict.Timeout)
	setCell(t, old, idMoved, StatusPassed, verdict.Registered, verdict.Registered)
	setCell(t, old, idMovedExp, StatusPassed, verdict.RejectedUntrusted, verdict.RejectedUntrusted)
	setCell(t, new, idMovedExp, StatusPassed, verdict.Exposed, verdict.Exposed)
	setCell(t, old, idUnskipped, StatusSkipped, verdict.RejectedChecksumMismatch, "")
	setCell(t, new, idUnskipped, StatusPassed, verdict.RejectedChecksumMismatch, verdict.RejectedChecksumMismatch)
	setCell(t, old, idStillFail, StatusFailed, verdict.RejectedChecksumMismatch, verdict.Timeout)
	setCell(t, new, idStillFail, StatusFailed, verdict.RejectedChecksumMismatch, verdict.Unexpected)
	setCell(t, old, idSameFailed, StatusFailed, verdict.RejectedChecksumMismatch, verdict.Timeout)
	setCell(t, new, idSameFailed, StatusFailed, verdict.RejectedChecksumMismatch, verdict.Timeout)
	return old, new
}

func ids(cs []CellChange) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestDiffGroupsChanges(t *testing.T) {
	dir := t.TempDir()
	old, new := diffPair(t)
	// Through real files, as the CLI would.
	oldDir, newDir := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	if err := Write(oldDir, old); err != nil {
		t.Fatal(err)
	}
	if err := Write(newDir, new); err != nil {
		t.Fatal(err)
	}
	o, err := Read(filepath.Join(oldDir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	n, err := Read(filepath.Join(newDir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Diff(o, n)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got []CellChange, want ...string) {
		t.Helper()
		if g := strings.Join(ids(got), ","); g != strings.Join(want, ",") {
			t.Errorf("%s = [%s], want [%s]", name, g, strings.Join(want, ","))
		}
	}
	check("NewlyFailing", d.NewlyFailing, idFail, idExposed)
	check("NewlyExposed", d.NewlyExposed, idExposed, idMovedExp)
	check("NewlyPassing", d.NewlyPassing, idFixed)
	check("OracleMoved", d.OracleMoved, idMoved, idMovedExp)
	check("Other", d.Other, idStillFail, idUnskipped)
	if d.Compared != 144 || d.Unchanged != 144-7 || d.UnchangedFailing != 1 {
		t.Errorf("compared %d, unchanged %d (%d failing)", d.Compared, d.Unchanged, d.UnchangedFailing)
	}
	if !d.Regressed() || d.Partial {
		t.Errorf("Regressed=%v Partial=%v", d.Regressed(), d.Partial)
	}
	if d.NewlyFailing[1].Old.Observed != verdict.RejectedChecksumMismatch || d.NewlyFailing[1].New.Observed != verdict.Exposed {
		t.Errorf("change carries old %s, new %s", d.NewlyFailing[1].Old.Observed, d.NewlyFailing[1].New.Observed)
	}

	// Reversed: the fixes become failures, the failures fixes; nothing newly exposed.
	back, err := Diff(n, o)
	if err != nil {
		t.Fatal(err)
	}
	check("reverse NewlyFailing", back.NewlyFailing, idFixed)
	check("reverse NewlyPassing", back.NewlyPassing, idFail, idExposed)
	check("reverse NewlyExposed", back.NewlyExposed)

	// Identical runs: no regression, everything unchanged.
	same, err := Diff(o, o)
	if err != nil {
		t.Fatal(err)
	}
	if same.Regressed() || same.Unchanged != 144 || len(same.OracleMoved)+len(same.Other) != 0 {
		t.Errorf("self-diff: %+v", same)
	}
}

func TestDiffRenderers(t *testing.T) {
	old, new := diffPair(t)
	d, err := Diff(old, new)
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := d.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	s := md.String()
	for _, want := range []string{
		"## agenttls diff: ❌ REGRESSED: 2 newly failing, 2 newly exposed\n",
		"| system-agent | `v0.3.16` | `v0.15.0` |",
		"| script profile | `pre-strict` | `strict` |",
		"144 compared: 2 newly failing, 2 newly exposed, 1 newly passing, 2 verdicts moved with the oracle, 2 other changes, 137 unchanged (1 failing in both).",
		"### ❌ Newly failing (2)",
		"| `private/strict/cs-absent/sv-unset/mitm` | passed: rejected-checksum-mismatch | `exposed` | `rejected-checksum-mismatch` |",
		"### ⚠️ Newly exposed (2)",
		"### ✅ Newly passing (1)\n\n| cell | old | new |\n|---|---|---|\n| `private/strict/cs-absent/sv-true/direct` | failed: timeout (want registered) | passed: registered |",
		"| `public/system-store/cs-absent/sv-true/direct` | `registered` | `fatal-strict-no-checksum` |",
		"| `public/system-store/cs-correct/sv-true/tamper` | skipped | passed: rejected-checksum-mismatch |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("diff markdown lacks %q", want)
		}
	}
	if strings.Index(s, "Newly failing") > strings.Index(s, "Newly passing") {
		t.Error("newly failing is not listed first")
	}
	var h bytes.Buffer
	if err := d.WriteHTML(&h); err != nil {
		t.Fatal(err)
	}
	nodes := parseHTML(t, h.Bytes())
	checkSelfContained(t, nodes)
	page := h.String()
	for _, want := range []string{"REGRESSED: 2 newly failing, 2 newly exposed", "Newly failing (2)", "Newly exposed (2)", "the oracle moved (2)", idFail, idMovedExp} {
		if !strings.Contains(page, want) {
			t.Errorf("diff html lacks %q", want)
		}
	}
	dir := demoDir(t)
	if err := os.WriteFile(filepath.Join(dir, "diff.html"), h.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	screenshot(t, filepath.Join(dir, "diff.html"))

	clean, err := Diff(old, old)
	if err != nil {
		t.Fatal(err)
	}
	md.Reset()
	if err := clean.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(md.String(), "## agenttls diff: ✅ no regression\n") {
		t.Errorf("clean diff header: %q", strings.SplitN(md.String(), "\n", 2)[0])
	}
}

func TestDiffRefusesDifferentMatrices(t *testing.T) {
	old, new := cleanRun(t, "v0.3.16"), cleanRun(t, "v0.15.0")
	new.Cells = append(new.Cells[10:], extraCells()...)
	_, err := Diff(old, new)
	if err == nil {
		t.Fatal("Diff compared runs of different matrices")
	}
	for _, want := range []string{
		"the runs cover different matrices",
		"10 cells only in old run run-v0-3-16 (private/strict/cs-absent/sv-unset/direct, private/strict/cs-absent/sv-unset/mitm, private/strict/cs-absent/sv-unset/mitm-trusted, …)",
		"5 only in new run run-v0-15-0 (private/strict/cs-absent/sv-unset/tamper-garbage,",
		"allow a partial diff of the 134 cells they share",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	d, err := Diff(old, new, AllowPartial())
	if err != nil {
		t.Fatal(err)
	}
	if !d.Partial || d.Compared != 134 || len(d.OnlyOld) != 10 || len(d.OnlyNew) != 5 || d.Unchanged != 134 {
		t.Errorf("partial diff: partial=%v compared=%d onlyOld=%d onlyNew=%d unchanged=%d", d.Partial, d.Compared, len(d.OnlyOld), len(d.OnlyNew), d.Unchanged)
	}
	var md bytes.Buffer
	if err := d.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "> **Partial diff**: only the cells both runs have are compared; 10 only in the old run") {
		t.Error("partial diff not stated in markdown")
	}
	new.Cells = extraCells()
	if _, err := Diff(old, new, AllowPartial()); err == nil || !strings.Contains(err.Error(), "no cell in common") {
		t.Errorf("disjoint runs: %v", err)
	}
}

func TestDiffRefusesOtherSchema(t *testing.T) {
	old, new := cleanRun(t, "v0.3.16"), cleanRun(t, "v0.15.0")
	new.Schema = "agenttls.results/v2"
	_, err := Diff(old, new, AllowPartial())
	if err == nil || !strings.Contains(err.Error(), `has schema "agenttls.results/v1" but new run run-v0-15-0 has "agenttls.results/v2"`) {
		t.Fatalf("Diff across schemas: %v", err)
	}
	if _, err := Diff(nil, new); err == nil {
		t.Error("Diff(nil, ...) did not fail")
	}
}
