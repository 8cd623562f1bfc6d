package report

import (
	"bufio"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/verdict"
)

// SweepTable lays out several runs side by side (typically one per system-agent or Rancher
// version): one row per cell, one column per run, each entry the observed verdict.
type SweepTable struct {
	// Runs are the columns, in the order given to Sweep.
	Runs []SweepRun
	// Rows are the cells of all runs, in matrix order (matrix.Sort).
	Rows []SweepRow
}

// SweepRun is one column of a sweep.
type SweepRun struct {
	// Label is the versions under test, made unique with the run ID when two runs share them.
	Label              string
	RunID              string
	RancherVersion     string
	SystemAgentVersion string
	ScriptProfile      string
	Counts             Counts
}

// SweepRow is one cell across the runs.
type SweepRow struct {
	ID     string
	Params matrix.Cell
	// Entries has one entry per run, in column order.
	Entries []SweepEntry
	// Moves: the observed verdict is not the same in every run that ran the cell.
	Moves bool
	// ExpectedMoves: the oracle's expectation is not the same in every run that has the cell.
	ExpectedMoves bool
}

// SweepEntry is one cell in one run.
type SweepEntry struct {
	// Present is false when the run does not have the cell.
	Present            bool
	Status             Status
	Expected, Observed verdict.Verdict
	// Changed: the observed verdict differs from the one in the nearest earlier run that ran
	// the cell.
	Changed bool
}

// Sweep builds the table of runs, in the order given (put them in version order). Nil entries
// are ignored. An interrupted run is refused, as Diff refuses it: its unrun cells would count as
// differing from the oracle.
func Sweep(results []*Results) (*SweepTable, error) {
	if err := refuseInterrupted("sweep", results...); err != nil {
		return nil, err
	}
	t := &SweepTable{}
	var runs []*Results
	labels := map[string]int{}
	for _, r := range results {
		if r == nil {
			continue
		}
		runs = append(runs, r)
		labels[versionLabel(r)]++
	}
	byID := map[string]CellResult{}
	for _, r := range runs {
		label := versionLabel(r)
		if labels[label] > 1 {
			label += " (" + r.RunID + ")"
		}
		t.Runs = append(t.Runs, SweepRun{
			Label: label, RunID: r.RunID, RancherVersion: r.RancherVersion,
			SystemAgentVersion: r.SystemAgentVersion, ScriptProfile: r.ScriptProfile, Counts: r.Counts(),
		})
		for _, c := range r.Cells {
			if _, ok := byID[c.ID]; !ok {
				byID[c.ID] = c
			}
		}
	}
	all := make([]CellResult, 0, len(byID))
	for _, c := range byID {
		all = append(all, c)
	}
	indexes := make([]map[string]CellResult, len(runs))
	for i, r := range runs {
		indexes[i] = index(r.Cells)
	}
	for _, c := range sortedCells(all) {
		row := SweepRow{ID: c.ID, Params: cellParams(c)}
		var prevObs verdict.Verdict
		var firstExp verdict.Verdict
		seenObs := map[verdict.Verdict]bool{}
		for i := range runs {
			rc, ok := indexes[i][c.ID]
			e := SweepEntry{Present: ok}
			if ok {
				e.Status, e.Expected, e.Observed = rc.Status, rc.Expected, rc.Observed
				if firstExp == "" {
					firstExp = rc.Expected
				} else if rc.Expected != firstExp {
					row.ExpectedMoves = true
				}
				if rc.Status != StatusSkipped && rc.Observed != "" {
					if prevObs != "" && rc.Observed != prevObs {
						e.Changed = true
					}
					prevObs = rc.Observed
					seenObs[rc.Observed] = true
				}
			}
			row.Entries = append(row.Entries, e)
		}
		row.Moves = len(seenObs) > 1
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// Moving returns the rows whose observed verdict moves across the runs.
func (t *SweepTable) Moving() []SweepRow {
	var out []SweepRow
	for _, r := range t.Rows {
		if r.Moves {
			out = append(out, r)
		}
	}
	return out
}

func (t *SweepTable) headline() string {
	return fmt.Sprintf("%d of %d cells change verdict across %d runs", len(t.Moving()), len(t.Rows), len(t.Runs))
}

// sweepText is one entry in a few characters of Markdown.
func sweepText(e SweepEntry) string {
	switch {
	case !e.Present:
		return "·"
	case e.Status == StatusSkipped:
		return "⏭ skipped"
	}
	s := shortVerdict(e.Observed)
	if e.Changed {
		s = "**" + s + "**"
	}
	if e.Observed == verdict.Exposed {
		s = "⚠️ " + s
	}
	if e.Status == StatusFailed {
		s = "❌ " + s + " (want " + shortVerdict(e.Expected) + ")"
	}
	return s
}

// WriteMarkdown writes the sweep: the moving cells first, then every cell in a collapsed
// section.
func (t *SweepTable) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p("## agenttls version sweep: %s\n\n", t.headline())
	p("| run | versions | script profile | cells |\n|---|---|---|---|\n")
	for _, r := range t.Runs {
		p("| %s | %s | %s | %s |\n", mdCode(r.RunID, 80), mdText(r.Label, 80), mdCode(r.ScriptProfile, 40), countsLine(r.Counts))
	}
	p("\nEach entry is the observed verdict; **bold** marks a change from the previous run, ❌ a failed cell, ⚠️ an exposed one, · a run without the cell. ")
	p("Short names: fatal = fatal-strict-no-checksum, mismatch = rejected-checksum-mismatch, no-cacerts = rejected-no-cacerts, not-x509 = rejected-not-x509, untrusted = rejected-untrusted.\n\n")
	table := func(rows []SweepRow) {
		p("| cell |")
		for _, r := range t.Runs {
			p(" %s |", mdText(r.Label, 60))
		}
		p("\n|---|%s\n", strings.Repeat("---|", len(t.Runs)))
		for _, row := range rows {
			p("| %s |", mdCode(row.ID, 100))
			for _, e := range row.Entries {
				p(" %s |", sweepText(e))
			}
			p("\n")
		}
		p("\n")
	}
	moving := t.Moving()
	if len(moving) > 0 {
		p("### Cells whose verdict moves (%d)\n\n", len(moving))
		table(moving)
	} else {
		p("No cell changes verdict across these runs.\n\n")
	}
	p("<details><summary>All %d cells</summary>\n\n", len(t.Rows))
	table(t.Rows)
	p("</details>\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write sweep markdown: %w", err)
	}
	return nil
}

const sweepTmpl = `{{define "sweep"}}{{template "head" .}}<body>
<h1>agenttls version sweep</h1>
<p><b>{{.Headline}}</b></p>
<table class="list"><tr><th>run</th><th>versions</th><th>script profile</th><th>cells</th></tr>
{{range .T.Runs}}<tr><td class="mono">{{.RunID}}</td><td>{{.Label}}</td><td>{{or .ScriptProfile "-"}}</td><td>{{call $.CountsOf .Counts}}</td></tr>
{{end}}</table>
{{template "legend" .}}
<p class="small">A row is highlighted when the cell's observed verdict moves across the runs; an orange bar marks the run where it changed; ≠ marks a failed cell (observed is not the oracle's verdict), ⚠ an exposed one. A thick rule between two columns marks a change of script era (profile). The legend counts entries over all runs.</p>
<label><input type="checkbox" id="onlymoving"{{if .OnlyMoving}} checked{{end}}> show only the {{.MovingCount}} cells that move</label>
<table class="list" id="sweep" style="margin-top:8px"><tr><th>cell</th>{{range .Cols}}<th{{if .EraStart}} class="era"{{end}}>{{.Label}}<br><span class="small">{{or .Profile "-"}}</span></th>{{end}}</tr>
{{range .Rows}}<tr class="{{if .Moves}}moving{{else}}still{{end}}"><td class="mono id">{{.ID}}</td>{{range .Entries}}<td class="{{if .Changed}}changed{{end}}{{if .EraStart}} era{{end}}">{{if .Present}}<span class="chip v-{{.Chip.Verdict}}{{if .Exposed}} m-exposed{{end}}{{if .Failed}} m-differs{{end}}" title="{{.Title}}">{{.Chip.Text}}{{if .Failed}} <b class="mk ne">≠</b>{{end}}{{if .Exposed}} <b class="mk warn">⚠</b>{{end}}</span>{{if .Failed}} <span class="small">want {{.Want}}</span>{{end}}{{else}}<span class="note">not in run</span>{{end}}</td>{{end}}</tr>
{{end}}</table>
<script>{{.JS}}</script>
</body></html>
{{end}}`

const sweepJS = `
(function(){
  var box=document.getElementById('onlymoving'), t=document.getElementById('sweep');
  function apply(){t.querySelectorAll('tr.still').forEach(function(r){r.style.display=box.checked?'none':'';});}
  box.addEventListener('change',apply); apply();
  document.body.setAttribute('data-ready','1');
})();
`

type sweepCellView struct {
	Present, Changed, Exposed, Failed, EraStart bool
	Chip                                        htmlChip
	Title, Want                                 string
}

// sweepColView is one column header: the versions and the script era (profile); EraStart
// marks the first column of a new era.
type sweepColView struct {
	Label, Profile string
	EraStart       bool
}

type sweepRowView struct {
	ID      string
	Moves   bool
	Entries []sweepCellView
}

// WriteHTML writes the sweep as one self-contained HTML page: every cell, moving rows
// highlighted, with a switch to show only those.
func (t *SweepTable) WriteHTML(w io.Writer) error {
	counts := map[string]int{}
	cols := make([]sweepColView, len(t.Runs))
	for i, r := range t.Runs {
		cols[i] = sweepColView{Label: r.Label, Profile: r.ScriptProfile,
			EraStart: i > 0 && r.ScriptProfile != t.Runs[i-1].ScriptProfile}
	}
	var rows []sweepRowView
	for _, r := range t.Rows {
		rv := sweepRowView{ID: r.ID, Moves: r.Moves}
		for i, e := range r.Entries {
			cv := sweepCellView{Present: e.Present, Changed: e.Changed, Exposed: e.Status != StatusSkipped && e.Observed == verdict.Exposed,
				Failed: e.Status == StatusFailed, EraStart: i < len(cols) && cols[i].EraStart, Want: shortVerdict(e.Expected)}
			if e.Present {
				cv.Chip = chipFor(e.Observed, e.Status == StatusSkipped)
				if cv.Chip.Verdict != "skipped" {
					cv.Chip.Text = shortVerdict(e.Observed)
				}
				counts[cv.Chip.Verdict]++
				cv.Title = fmt.Sprintf("%s in %s: %s, observed %s, expected %s", r.ID, t.Runs[i].Label, e.Status, orDash(string(e.Observed)), e.Expected)
			}
			rv.Entries = append(rv.Entries, cv)
		}
		rows = append(rows, rv)
	}
	var legend []legendEntry
	for _, v := range verdictColours {
		legend = append(legend, legendEntry{Name: v.Name, Count: counts[v.Name]})
	}
	moving := len(t.Moving())
	page := struct {
		Title, Headline string
		CSS             template.CSS
		JS              template.JS
		T               *SweepTable
		Cols            []sweepColView
		Rows            []sweepRowView
		Legend          []legendEntry
		PathKey         []string
		MovingCount     int
		OnlyMoving      bool
		CountsOf        func(Counts) string
	}{
		Title: "agenttls version sweep", Headline: t.headline(),
		CSS: template.CSS(baseCSS + verdictCSS()), JS: template.JS(sweepJS),
		T: t, Cols: cols, Rows: rows, Legend: legend, MovingCount: moving, OnlyMoving: moving > 0,
		CountsOf: countsLine,
	}
	if err := pageTmpl.ExecuteTemplate(w, "sweep", page); err != nil {
		return fmt.Errorf("write sweep html: %w", err)
	}
	return nil
}
