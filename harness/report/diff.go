package report

import (
	"bufio"
	"errors"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/agenttls/agenttls/harness/matrix"
)

// DiffOption configures Diff.
type DiffOption func(*diffOptions) error

type diffOptions struct{ partial bool }

// AllowPartial lets Diff compare two runs that cover different cells, on the cells they share;
// the cells only in one run are listed in the result instead of failing the diff.
func AllowPartial() DiffOption {
	return func(o *diffOptions) error { o.partial = true; return nil }
}

// RunInfo identifies one side of a diff.
type RunInfo struct {
	RunID              string
	Backend            string
	RancherVersion     string
	SystemAgentVersion string
	ScriptProfile      string
	ScriptSHA256       string
	Scenario           string
	Counts             Counts
}

func runInfo(r *Results) RunInfo {
	return RunInfo{
		RunID: r.RunID, Backend: r.Backend, RancherVersion: r.RancherVersion,
		SystemAgentVersion: r.SystemAgentVersion, ScriptProfile: r.ScriptProfile,
		ScriptSHA256: r.ScriptSHA256, Scenario: r.Scenario, Counts: r.Counts(),
	}
}

// CellChange is one cell as it was in the old run and is in the new one.
type CellChange struct {
	ID       string
	Params   matrix.Cell
	Old, New CellResult
}

// DiffResult is what changed between two runs, cell by cell, grouped by kind.
//
// Every compared cell is in exactly one of NewlyFailing, NewlyPassing, OracleMoved, Other or
// the Unchanged count, by its status; NewlyExposed is a view across them (a cell whose observed
// verdict became exposed is there whatever its status, and also in its status group).
type DiffResult struct {
	Old, New RunInfo
	// Partial is set when AllowPartial let runs of different matrices be compared; OnlyOld and
	// OnlyNew list the cell IDs (matrix order) that only one run has.
	Partial          bool
	OnlyOld, OnlyNew []string
	// Compared is the number of cells present in both runs.
	Compared int
	// NewlyFailing: passed in the old run, failed in the new one.
	NewlyFailing []CellChange
	// NewlyPassing: failed in the old run, passed in the new one.
	NewlyPassing []CellChange
	// NewlyExposed: the observed verdict became exposed.
	NewlyExposed []CellChange
	// OracleMoved: passed in both runs with different verdicts: the expectation moved with the
	// version (for example a new script era) and the node followed it.
	OracleMoved []CellChange
	// Other: any other change: a cell started or stopped being skipped, or a cell that fails in
	// both runs now fails differently.
	Other []CellChange
	// Unchanged counts cells with the same status, expected and observed verdicts;
	// UnchangedFailing of them fail in both runs.
	Unchanged, UnchangedFailing int
}

// Regressed reports whether the new run is worse: a cell newly failing or newly exposed. Use it
// for the exit code of a version-bump check.
func (d *DiffResult) Regressed() bool {
	return len(d.NewlyFailing) > 0 || len(d.NewlyExposed) > 0
}

// refuseInterrupted fails, naming op, when one of runs (nil ones aside) was interrupted: its
// cells that were running failed for the interruption, so comparing it proves nothing about them.
func refuseInterrupted(op string, runs ...*Results) error {
	for _, r := range runs {
		if r != nil && r.Interrupted {
			return fmt.Errorf("%s: run %s was interrupted: the cells that were running failed for that reason, not for the script's; run it again to completion before comparing", op, r.RunID)
		}
	}
	return nil
}

// Diff compares two runs cell by cell. It fails when the runs were written by different
// schemas, and when they cover different cells unless AllowPartial is given.
func Diff(old, new *Results, opts ...DiffOption) (*DiffResult, error) {
	var o diffOptions
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("diff: %w", err)
		}
	}
	if old == nil || new == nil {
		return nil, errors.New("diff: need two results, got nil")
	}
	if old.Schema != new.Schema {
		return nil, fmt.Errorf("diff: old run %s has schema %q but new run %s has %q: re-run the older matrix with this agenttls before comparing",
			old.RunID, old.Schema, new.RunID, new.Schema)
	}
	if err := refuseInterrupted("diff", old, new); err != nil {
		return nil, err
	}
	oldCells, newCells := index(old.Cells), index(new.Cells)
	d := &DiffResult{Old: runInfo(old), New: runInfo(new)}
	for _, c := range sortedCells(old.Cells) {
		if _, ok := newCells[c.ID]; !ok {
			d.OnlyOld = append(d.OnlyOld, c.ID)
		}
	}
	for _, c := range sortedCells(new.Cells) {
		if _, ok := oldCells[c.ID]; !ok {
			d.OnlyNew = append(d.OnlyNew, c.ID)
		}
	}
	if len(d.OnlyOld)+len(d.OnlyNew) > 0 {
		shared := len(old.Cells) - len(d.OnlyOld)
		if !o.partial {
			return nil, fmt.Errorf("diff: the runs cover different matrices: %d cells only in old run %s%s, %d only in new run %s%s: compare runs of the same scenario, or allow a partial diff of the %d cells they share",
				len(d.OnlyOld), old.RunID, someIDs(d.OnlyOld), len(d.OnlyNew), new.RunID, someIDs(d.OnlyNew), shared)
		}
		if shared == 0 {
			return nil, fmt.Errorf("diff: runs %s and %s have no cell in common: nothing to compare", old.RunID, new.RunID)
		}
		d.Partial = true
	}
	for _, nc := range sortedCells(new.Cells) {
		oc, ok := oldCells[nc.ID]
		if !ok {
			continue
		}
		d.Compared++
		ch := CellChange{ID: nc.ID, Params: cellParams(nc), Old: oc, New: nc}
		if nc.IsExposed() && !oc.IsExposed() {
			d.NewlyExposed = append(d.NewlyExposed, ch)
		}
		switch {
		case oc.Status == StatusPassed && nc.Status == StatusFailed:
			d.NewlyFailing = append(d.NewlyFailing, ch)
		case oc.Status == StatusFailed && nc.Status == StatusPassed:
			d.NewlyPassing = append(d.NewlyPassing, ch)
		case oc.Status == nc.Status && oc.Expected == nc.Expected && oc.Observed == nc.Observed:
			d.Unchanged++
			if nc.Status == StatusFailed {
				d.UnchangedFailing++
			}
		case oc.Status == StatusPassed && nc.Status == StatusPassed:
			d.OracleMoved = append(d.OracleMoved, ch)
		default:
			d.Other = append(d.Other, ch)
		}
	}
	return d, nil
}

func index(cells []CellResult) map[string]CellResult {
	m := make(map[string]CellResult, len(cells))
	for _, c := range cells {
		m[c.ID] = c
	}
	return m
}

// someIDs names up to three IDs for an error message.
func someIDs(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	const max = 3
	s := ids
	if len(s) > max {
		s = s[:max]
	}
	out := " (" + strings.Join(s, ", ")
	if len(ids) > max {
		out += ", …"
	}
	return out + ")"
}

// cellState is a cell's status and verdicts in a few words, e.g. "failed: exposed (want
// rejected-untrusted)".
func cellState(c CellResult) string {
	switch {
	case c.Status == StatusSkipped:
		return "skipped"
	case c.Observed == c.Expected:
		return string(c.Status) + ": " + string(c.Observed)
	}
	return fmt.Sprintf("%s: %s (want %s)", c.Status, orDash(string(c.Observed)), c.Expected)
}

// stateNote is what a verdict chip does not say: the status, and the expected verdict when the
// observed one differs.
func stateNote(c CellResult) string {
	switch {
	case c.Status == StatusSkipped:
		return ""
	case c.Differs():
		return fmt.Sprintf("%s, want %s", c.Status, c.Expected)
	}
	return string(c.Status)
}

func countsLine(n Counts) string {
	return fmt.Sprintf("%d cells: %d passed, %d failed, %d skipped, %d exposed", n.Total, n.Passed, n.Failed, n.Skipped, n.Exposed)
}

func (d *DiffResult) headline() string {
	if !d.Regressed() {
		return "no regression"
	}
	var parts []string
	if n := len(d.NewlyFailing); n > 0 {
		parts = append(parts, fmt.Sprintf("%d newly failing", n))
	}
	if n := len(d.NewlyExposed); n > 0 {
		parts = append(parts, fmt.Sprintf("%d newly exposed", n))
	}
	return "REGRESSED: " + strings.Join(parts, ", ")
}

func (d *DiffResult) tallyLine() string {
	return fmt.Sprintf("%d compared: %d newly failing, %d newly exposed, %d newly passing, %d verdicts moved with the oracle, %d other changes, %d unchanged (%d failing in both)",
		d.Compared, len(d.NewlyFailing), len(d.NewlyExposed), len(d.NewlyPassing), len(d.OracleMoved), len(d.Other), d.Unchanged, d.UnchangedFailing)
}

// WriteMarkdown writes the diff as GitHub-flavoured Markdown.
func (d *DiffResult) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	icon := "✅"
	if d.Regressed() {
		icon = "❌"
	}
	p("## agenttls diff: %s %s\n\n", icon, d.headline())
	p("| | old | new |\n|---|---|---|\n")
	p("| run | %s | %s |\n", mdCode(d.Old.RunID, 80), mdCode(d.New.RunID, 80))
	if d.Old.SystemAgentVersion != "" || d.New.SystemAgentVersion != "" {
		p("| system-agent | %s | %s |\n", mdCode(d.Old.SystemAgentVersion, 60), mdCode(d.New.SystemAgentVersion, 60))
	}
	if d.Old.RancherVersion != "" || d.New.RancherVersion != "" {
		p("| Rancher | %s | %s |\n", mdCode(d.Old.RancherVersion, 60), mdCode(d.New.RancherVersion, 60))
	}
	p("| script profile | %s | %s |\n", mdCode(d.Old.ScriptProfile, 40), mdCode(d.New.ScriptProfile, 40))
	p("| install.sh sha256 | %s | %s |\n", mdCode(shortSHA(d.Old.ScriptSHA256), 20), mdCode(shortSHA(d.New.ScriptSHA256), 20))
	p("| backend | %s | %s |\n", mdText(d.Old.Backend, 40), mdText(d.New.Backend, 40))
	p("| scenario | %s | %s |\n", mdText(orDash(d.Old.Scenario), 60), mdText(orDash(d.New.Scenario), 60))
	p("| cells | %s | %s |\n\n", countsLine(d.Old.Counts), countsLine(d.New.Counts))
	if d.Partial {
		p("> **Partial diff**: only the cells both runs have are compared; %d only in the old run%s, %d only in the new run%s.\n\n",
			len(d.OnlyOld), mdText(someIDs(d.OnlyOld), 300), len(d.OnlyNew), mdText(someIDs(d.OnlyNew), 300))
	}
	p("%s.\n\n", d.tallyLine())

	if len(d.NewlyFailing) > 0 {
		p("### ❌ Newly failing (%d)\n\n| cell | old | new observed | new expected | evidence | rerun |\n|---|---|---|---|---|---|\n", len(d.NewlyFailing))
		for _, c := range d.NewlyFailing {
			p("| %s | %s | %s | %s | %s | %s |\n", mdCode(c.ID, 100), mdText(cellState(c.Old), 80), mdCode(string(c.New.Observed), 40),
				mdCode(string(c.New.Expected), 40), mdCode(evidenceText(c.New.Evidence, 140), 140), mdCode(orDash(c.New.Rerun), 200))
		}
		p("\n")
	}
	if len(d.NewlyExposed) > 0 {
		p("### ⚠️ Newly exposed (%d)\n\n| cell | old | new | oracle's reason (new) |\n|---|---|---|---|\n", len(d.NewlyExposed))
		for _, c := range d.NewlyExposed {
			p("| %s | %s | %s | %s |\n", mdCode(c.ID, 100), mdText(cellState(c.Old), 80), mdText(cellState(c.New), 80), mdText(orDash(c.New.Reason), 160))
		}
		p("\n")
	}
	if len(d.NewlyPassing) > 0 {
		p("### ✅ Newly passing (%d)\n\n| cell | old | new |\n|---|---|---|\n", len(d.NewlyPassing))
		for _, c := range d.NewlyPassing {
			p("| %s | %s | %s |\n", mdCode(c.ID, 100), mdText(cellState(c.Old), 80), mdText(cellState(c.New), 80))
		}
		p("\n")
	}
	if len(d.OracleMoved) > 0 {
		p("### ↔️ Verdict changed, both pass: the oracle moved (%d)\n\n| cell | old verdict | new verdict | oracle's reason (new) |\n|---|---|---|---|\n", len(d.OracleMoved))
		for _, c := range d.OracleMoved {
			p("| %s | %s | %s | %s |\n", mdCode(c.ID, 100), mdCode(string(c.Old.Observed), 40), mdCode(string(c.New.Observed), 40), mdText(orDash(c.New.Reason), 160))
		}
		p("\n")
	}
	if len(d.Other) > 0 {
		p("### Other changes (%d)\n\n| cell | old | new |\n|---|---|---|\n", len(d.Other))
		for _, c := range d.Other {
			p("| %s | %s | %s |\n", mdCode(c.ID, 100), mdText(cellState(c.Old), 80), mdText(cellState(c.New), 80))
		}
		p("\n")
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write diff markdown: %w", err)
	}
	return nil
}

const diffTmpl = `{{define "diff"}}{{template "head" .}}<body>
<h1>agenttls diff: {{if .D.Regressed}}<span style="color:#c92a2a">✗ {{.Headline}}</span>{{else}}<span style="color:#2b8a3e">✓ {{.Headline}}</span>{{end}}</h1>
<table class="list" style="margin:8px 0"><tr><th></th><th>old</th><th>new</th></tr>
<tr><th>run</th><td class="mono">{{.D.Old.RunID}}</td><td class="mono">{{.D.New.RunID}}</td></tr>
<tr><th>system-agent</th><td>{{or .D.Old.SystemAgentVersion "-"}}</td><td>{{or .D.New.SystemAgentVersion "-"}}</td></tr>
{{if or .D.Old.RancherVersion .D.New.RancherVersion}}<tr><th>Rancher</th><td>{{or .D.Old.RancherVersion "-"}}</td><td>{{or .D.New.RancherVersion "-"}}</td></tr>{{end}}
<tr><th>script profile</th><td>{{or .D.Old.ScriptProfile "-"}}</td><td>{{or .D.New.ScriptProfile "-"}}</td></tr>
<tr><th>backend</th><td>{{.D.Old.Backend}}</td><td>{{.D.New.Backend}}</td></tr>
<tr><th>scenario</th><td>{{or .D.Old.Scenario "-"}}</td><td>{{or .D.New.Scenario "-"}}</td></tr>
<tr><th>cells</th><td>{{.OldCounts}}</td><td>{{.NewCounts}}</td></tr>
</table>
{{if .D.Partial}}<div class="banner">Partial diff: only the {{.D.Compared}} cells both runs have are compared; {{len .D.OnlyOld}} only in the old run, {{len .D.OnlyNew}} only in the new run.</div>{{end}}
<p>{{.Tally}}.</p>
{{range .Groups}}{{if .Changes}}<h2>{{.Title}} ({{len .Changes}})</h2>
<table class="list"><tr><th>cell</th><th>old</th><th>new</th><th>{{.Extra}}</th></tr>
{{range .Changes}}<tr><td class="mono">{{.ID}}</td><td>{{template "chip" .OldChip}} <span class="small">{{.OldState}}</span></td><td>{{template "chip" .NewChip}} <span class="small">{{.NewState}}</span></td><td class="mono">{{.Extra}}</td></tr>
{{end}}</table>{{end}}{{end}}
{{if .D.Partial}}<h2>Not compared</h2>
<details><summary>{{len .D.OnlyOld}} cells only in the old run</summary><pre>{{range .D.OnlyOld}}{{.}}
{{end}}</pre></details>
<details><summary>{{len .D.OnlyNew}} cells only in the new run</summary><pre>{{range .D.OnlyNew}}{{.}}
{{end}}</pre></details>{{end}}
</body></html>
{{end}}`

type diffRow struct {
	ID, OldState, NewState, Extra string
	OldChip, NewChip              htmlChip
}

type diffGroup struct {
	Title, Extra string
	Changes      []diffRow
}

// WriteHTML writes the diff as one self-contained HTML page.
func (d *DiffResult) WriteHTML(w io.Writer) error {
	rows := func(cs []CellChange, extra func(CellChange) string) []diffRow {
		var out []diffRow
		for _, c := range cs {
			out = append(out, diffRow{
				ID: c.ID, OldState: stateNote(c.Old), NewState: stateNote(c.New), Extra: extra(c),
				OldChip: chipFor(c.Old.Observed, c.Old.Status == StatusSkipped),
				NewChip: chipFor(c.New.Observed, c.New.Status == StatusSkipped),
			})
		}
		return out
	}
	evidence := func(c CellChange) string { return evidenceText(c.New.Evidence, 300) }
	reason := func(c CellChange) string { return orDash(oneLine(c.New.Reason, 300)) }
	page := struct {
		Title, Headline, Tally, OldCounts, NewCounts string
		CSS                                          template.CSS
		D                                            *DiffResult
		Groups                                       []diffGroup
	}{
		Title: "agenttls diff " + d.Old.RunID + " → " + d.New.RunID, Headline: d.headline(), Tally: d.tallyLine(),
		OldCounts: countsLine(d.Old.Counts), NewCounts: countsLine(d.New.Counts),
		CSS: template.CSS(baseCSS + verdictCSS()), D: d,
		Groups: []diffGroup{
			{"✗ Newly failing", "new evidence", rows(d.NewlyFailing, evidence)},
			{"⚠ Newly exposed", "oracle's reason (new)", rows(d.NewlyExposed, reason)},
			{"✓ Newly passing", "new evidence", rows(d.NewlyPassing, evidence)},
			{"↔ Verdict changed, both pass: the oracle moved", "oracle's reason (new)", rows(d.OracleMoved, reason)},
			{"Other changes", "new evidence", rows(d.Other, evidence)},
		},
	}
	if err := pageTmpl.ExecuteTemplate(w, "diff", page); err != nil {
		return fmt.Errorf("write diff html: %w", err)
	}
	return nil
}
