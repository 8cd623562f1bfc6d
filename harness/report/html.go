package report

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/verdict"
)

// The HTML report is one file with inline CSS and JS and no external asset, so it can be
// attached to a CI run and opened anywhere.
//
// Layout: the standard matrix is a grid whose rows are CA kind x mode and whose columns are
// checksum x strict-verify (4 x 9). Each grid cell holds the network paths as a 2x2 block of
// tiles in a fixed position (direct, mitm / mitm-trusted, tamper), so the eye can run down a
// column of the same path across the whole grid: the interception paths sit in the top-right
// and bottom-left of every block. A 4x36 layout (paths as columns) was the alternative; it is
// wider than a screen and splits the checksum/strict-verify pairs that decide the script's
// branch, which the 2x2 block keeps together. Colour is the observed verdict; a red ring and a
// "≠" badge mark a verdict that differs from the oracle, and exposed tiles are striped and
// carry a warning sign. Cells outside the standard axes get their own section below the grid.
// Each tile opens a side panel with the cell's record and transcript (JS); without JS it links
// to the transcript file or, when transcripts are embedded, to the cell's entry in the list at
// the bottom.

// verdictColours is the palette, one colour per verdict (and "skipped"), with text colour.
var verdictColours = []struct {
	Name     string
	BG, Text string
}{
	{string(verdict.Registered), "#2b8a3e", "#fff"},
	{string(verdict.Exposed), "#c2255c", "#fff"},
	{string(verdict.FatalStrictNoChecksum), "#e8590c", "#fff"},
	{string(verdict.RejectedChecksumMismatch), "#7048e8", "#fff"},
	{string(verdict.RejectedNoCACerts), "#0b7285", "#fff"},
	{string(verdict.RejectedNotX509), "#8d5524", "#fff"},
	{string(verdict.RejectedUntrusted), "#1864ab", "#fff"},
	{string(verdict.Unexpected), "#212529", "#fff"},
	{string(verdict.Timeout), "#5c5f66", "#fff"},
	{"skipped", "#dee2e6", "#495057"},
}

func verdictCSS() string {
	var b strings.Builder
	for _, v := range verdictColours {
		fmt.Fprintf(&b, ".v-%s{background-color:%s;color:%s}\n", v.Name, v.BG, v.Text)
	}
	return b.String()
}

const baseCSS = `
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;padding:14px 16px;color:#212529;background:#f8f9fa}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
code,pre,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
a{color:#1864ab}
.meta{color:#495057;margin:2px 0}
.meta b{color:#212529}
.counts{display:flex;gap:10px;margin:12px 0;flex-wrap:wrap}
.count{border-radius:6px;padding:6px 14px;font-size:15px;background:#e9ecef}
.count b{font-size:20px;margin-right:4px}
.count.failed{background:#ffe3e3;color:#c92a2a}
.count.passed{background:#d3f9d8;color:#2b8a3e}
.count.exposed{background:repeating-linear-gradient(135deg,#c2255c 0 10px,#a61e4d 10px 20px);color:#fff;font-weight:600}
.count.exposed.none{background:#e9ecef;color:#495057;font-weight:normal}
.banner{margin:10px 0;padding:10px 14px;border-left:8px solid #c2255c;background:#fff0f6;color:#a61e4d}
.banner.bad{border-color:#e03131;background:#fff5f5;color:#c92a2a}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #dee2e6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5;font-weight:600}
table.list td{max-width:520px;overflow-wrap:anywhere}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin:8px 0 12px;font-size:12px}
.legend .sw{display:inline-block;width:26px;height:16px;border-radius:3px;vertical-align:middle;margin-right:4px;position:relative}
.grid th.ax{font-weight:normal;color:#495057;font-size:12px;text-align:center}
.grid th.rowh{white-space:nowrap;font-size:12px}
.grid td{padding:3px}
.tiles{display:grid;grid-template-columns:repeat(2,70px);gap:3px}
a.tile{display:block;position:relative;height:34px;border-radius:4px;padding:2px 3px;text-decoration:none;overflow:hidden;line-height:14px}
a.tile:hover,a.tile.sel{box-shadow:0 0 0 2px #212529}
a.tile .p{display:block;font-size:10px;opacity:.85;white-space:nowrap;overflow:hidden}
a.tile .v{display:block;font-size:11px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;letter-spacing:-.2px}
.tile.empty{height:34px;border:1px dashed #ced4da;border-radius:4px}
.m-exposed{background-image:repeating-linear-gradient(135deg,rgba(255,255,255,.0) 0 6px,rgba(255,212,59,.45) 6px 9px)}
.m-differs{outline:3px solid #f03e3e;outline-offset:1px}
.m-failed:not(.m-differs){outline:3px dashed #f03e3e;outline-offset:1px}
.marks{position:absolute;top:1px;right:2px;display:flex;gap:2px;font-size:11px;line-height:13px}
.marks b{display:inline-block;min-width:13px;text-align:center;border-radius:7px}
.marks .ne{background:#f03e3e;color:#fff}
.marks .warn{background:#ffd43b;color:#000}
.legend .marks{top:1px;right:1px}
.chip{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;font-weight:600;white-space:nowrap;position:relative}
details.cell{background:#fff;border:1px solid #dee2e6;border-radius:4px;margin:2px 0}
details.cell>summary{padding:3px 8px;cursor:pointer}
details.cell[open]>summary{border-bottom:1px solid #dee2e6}
.cd{padding:8px}
.cd table{width:100%;margin-bottom:8px}
.cd th{width:120px;white-space:nowrap}
.cd td{overflow-wrap:anywhere}
pre.tr{background:#212529;color:#e9ecef;padding:8px;overflow:auto;max-height:60vh;white-space:pre-wrap;overflow-wrap:anywhere;margin:0}
.note{color:#868e96;font-style:italic}
#panel{position:fixed;top:0;right:0;width:min(640px,46vw);height:100vh;background:#fff;border-left:2px solid #adb5bd;box-shadow:-4px 0 16px rgba(0,0,0,.15);overflow:auto;padding:12px 16px;z-index:10}
#panel[hidden]{display:none}
#panel .ptitle{font-weight:600;font-family:ui-monospace,"DejaVu Sans Mono",monospace;margin-right:40px;overflow-wrap:anywhere}
#panel button{position:absolute;top:8px;right:10px;font-size:18px;border:0;background:none;cursor:pointer}
tr.moving td{background:#fff9db}
td.changed{box-shadow:inset 3px 0 0 #f08c00}
#sweep td{white-space:nowrap;vertical-align:middle}
#sweep th.era,#sweep td.era{border-left:3px solid #495057}
.chip .mk{display:inline-block;min-width:14px;text-align:center;border-radius:7px;font-size:11px;line-height:14px;margin-left:2px}
.mk.ne{background:#f03e3e;color:#fff}
.mk.warn{background:#ffd43b;color:#000}
.small{font-size:12px;color:#495057}
.pathkey{display:inline-grid;grid-template-columns:repeat(2,auto);gap:1px 6px;font-size:10px;border:1px solid #ced4da;padding:2px 5px;border-radius:3px;vertical-align:middle;background:#fff}
`

const panelJS = `
(function(){
  var panel=document.getElementById('panel');
  if(!panel){return;}
  var body=panel.querySelector('.pbody'), title=panel.querySelector('.ptitle');
  function show(id,tile){
    var d=document.getElementById(id);
    if(!d){return false;}
    body.innerHTML='';
    var cd=d.querySelector('.cd');
    if(cd){body.appendChild(cd.cloneNode(true));}
    title.textContent=d.getAttribute('data-id');
    panel.hidden=false;
    document.querySelectorAll('.sel').forEach(function(t){t.classList.remove('sel');});
    if(tile){tile.classList.add('sel');}
    return true;
  }
  document.addEventListener('click',function(e){
    var t=e.target.closest('[data-cell]');
    if(!t||e.ctrlKey||e.metaKey||e.shiftKey){return;}
    if(show(t.getAttribute('data-cell'),t.classList.contains('tile')?t:null)){e.preventDefault();}
  });
  panel.querySelector('button').addEventListener('click',function(){panel.hidden=true;});
  document.addEventListener('keydown',function(e){if(e.key==='Escape'){panel.hidden=true;}});
  if(location.hash.length>1){show(decodeURIComponent(location.hash.slice(1)),null);}
  document.body.setAttribute('data-ready','1');
})();
`

var htmlFuncs = template.FuncMap{
	"short": func(v verdict.Verdict) string { return shortVerdict(v) },
}

// pageTmpl holds the templates of every HTML page of the package: the run report, the diff
// and the sweep, which share the head, legend and chip parts.
var pageTmpl = func() *template.Template {
	t := template.New("page").Funcs(htmlFuncs)
	for _, src := range []string{commonTmpl, reportTmpl, diffTmpl, sweepTmpl} {
		template.Must(t.Parse(src))
	}
	return t
}()

const commonTmpl = `{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title><style>{{.CSS}}</style></head>{{end}}
{{define "legend"}}<div class="legend"><b>Observed verdict:</b>
{{range .Legend}}<span><span class="sw v-{{.Name}}{{if eq .Name "exposed"}} m-exposed{{end}}"></span>{{.Name}}{{if .Count}} ({{.Count}}){{end}}</span>{{end}}
<span><span class="sw v-registered m-differs"><span class="marks"><b class="ne">≠</b></span></span>differs from the oracle</span>
<span><span class="sw v-exposed m-exposed"><span class="marks"><b class="warn">⚠</b></span></span>exposed: registered through an attacker's proxy</span>
{{if .PathKey}}<span>tile positions: <span class="pathkey">{{range .PathKey}}<span>{{.}}</span>{{end}}</span></span>{{end}}
</div>{{end}}
{{define "tile"}}{{if .}}<a class="tile {{.Class}}" href="{{.Href}}" data-cell="c-{{.Slug}}" title="{{.Title}}"><span class="p">{{.PathLabel}}</span><span class="v">{{.Short}}</span>{{if or .Differs .IsExposed}}<span class="marks">{{if .Differs}}<b class="ne">≠</b>{{end}}{{if .IsExposed}}<b class="warn">⚠</b>{{end}}</span>{{end}}</a>{{else}}<span class="tile empty"></span>{{end}}{{end}}
{{define "chip"}}<span class="chip v-{{.Verdict}}{{if eq .Verdict "exposed"}} m-exposed{{end}}">{{.Text}}</span>{{end}}
{{define "panel"}}<aside id="panel" hidden><button type="button" title="close (Esc)">✕</button><div class="ptitle"></div><div class="pbody"></div></aside>
<script>{{.JS}}</script>{{end}}`

const reportTmpl = `{{define "report"}}{{template "head" .}}<body>
<h1>agenttls run <span class="mono">{{.R.RunID}}</span></h1>
<div class="meta">{{if .R.SystemAgentVersion}}system-agent <b>{{.R.SystemAgentVersion}}</b> · {{end}}{{if .R.RancherVersion}}Rancher <b>{{.R.RancherVersion}}</b> · {{end}}backend <b>{{.R.Backend}}</b>{{if .R.ScriptProfile}} · script profile <b>{{.R.ScriptProfile}}</b>{{end}}{{if .R.ScriptSHA256}} · install.sh sha256 <span class="mono" title="{{.R.ScriptSHA256}}">{{.ShortSHA}}</span>{{end}}</div>
<div class="meta">scenario <b>{{or .R.Scenario "-"}}</b>{{if .R.Shard}} · shard <b>{{.R.Shard}}</b>{{end}} · started {{.Started}} · took {{.Took}}{{if .R.ToolVersion}} · agenttls {{.R.ToolVersion}}{{end}}{{if .R.ScriptSource}} · script from <span class="mono">{{.R.ScriptSource}}</span>{{end}}</div>
<div class="counts">
<span class="count"><b>{{.N.Total}}</b>cells</span>
<span class="count{{if .N.Failed}} failed{{end}}"><b>{{.N.Failed}}</b>failed</span>
<span class="count passed"><b>{{.N.Passed}}</b>passed</span>
<span class="count"><b>{{.N.Skipped}}</b>skipped</span>
<span class="count exposed{{if not .N.Exposed}} none{{end}}"><b>{{.N.Exposed}}</b>{{if .N.Exposed}}⚠ EXPOSED{{else}}exposed{{end}}</span>
{{if .N.Retried}}<span class="count"><b>{{.N.Retried}}</b>retried</span>{{end}}
</div>
{{if .R.Interrupted}}<div class="banner bad"><b>Interrupted:</b> the run was stopped before it ended; cells that were running then failed for that reason.</div>{{end}}{{if .N.Exposed}}<div class="banner{{if .ExposedUnexpected}} bad{{end}}"><b>⚠ {{.N.Exposed}} {{if eq .N.Exposed 1}}cell{{else}}cells{{end}} EXPOSED:</b> the node registered through an attacker's proxy. {{.N.ExposedExpected}} expected by the oracle (the documented cost of <code>system-store</code> or <code>CATTLE_AGENT_STRICT_VERIFY=false</code>){{if .ExposedUnexpected}}; <b>{{.ExposedUnexpected}} not expected, and failing</b>{{end}}.</div>{{end}}
{{if .Failed}}<h2>Failures ({{len .Failed}})</h2>
<table class="list"><tr><th>cell</th><th>expected</th><th>observed</th><th>evidence</th><th>rerun</th></tr>
{{range .Failed}}<tr><td><a class="mono" href="{{.Href}}" data-cell="c-{{.Slug}}">{{.ID}}</a></td><td>{{template "chip" .ExpChip}}</td><td>{{template "chip" .ObsChip}}{{if .Retried}} <span class="small">({{.Attempts}} attempts)</span>{{end}}</td><td class="mono">{{.EvidenceText}}</td><td><code>{{or .Rerun "-"}}</code></td></tr>
{{end}}</table>{{end}}
{{if .Grid.Rows}}<h2>Matrix</h2>
{{template "legend" .}}
<table class="grid">
<tr><th rowspan="2" colspan="2" class="ax">ca · mode ╲ checksum · strict-verify</th>{{range .ChecksumHeads}}<th colspan="{{.Span}}" class="ax">cs-<b>{{.Name}}</b></th>{{end}}</tr>
<tr>{{range .Grid.Cols}}<th class="ax">sv-{{.StrictVerify}}</th>{{end}}</tr>
{{range .GridRows}}<tr>{{if .CASpan}}<th rowspan="{{.CASpan}}" class="rowh">ca <b>{{.CA}}</b></th>{{end}}<th class="rowh">{{.Mode}}</th>
{{range .Cells}}<td><div class="tiles">{{range .}}{{template "tile" .}}{{end}}</div></td>{{end}}</tr>
{{end}}</table>{{end}}
{{if .Other}}<h2>Cells outside the standard matrix ({{len .Other}})</h2>
{{if not .Grid.Rows}}{{template "legend" .}}{{end}}
<table class="list"><tr><th></th><th>cell</th><th>expected</th><th>observed</th><th>note</th></tr>
{{range .Other}}<tr><td style="width:82px">{{template "tile" .}}</td><td class="mono">{{.ID}}</td><td>{{template "chip" .ExpChip}}</td><td>{{template "chip" .ObsChip}}</td><td>{{.Params.Note}}</td></tr>
{{end}}</table>{{end}}
{{if .Exposed}}<h2>Exposed ({{len .Exposed}})</h2>
<table class="list"><tr><th>cell</th><th>expected</th><th>status</th><th>oracle's reason</th><th>evidence</th></tr>
{{range .Exposed}}<tr><td><a class="mono" href="{{.Href}}" data-cell="c-{{.Slug}}">{{.ID}}</a></td><td>{{template "chip" .ExpChip}}</td><td>{{.Status}}</td><td>{{.Reason}}</td><td class="mono">{{.EvidenceText}}</td></tr>
{{end}}</table>{{end}}
<h2>All cells ({{len .All}})</h2>
<p class="small">Click a tile or a cell to open its record{{if .Embedded}} and transcript{{end}}.{{if not .Embedded}} Transcript links are relative to this file's directory.{{end}}</p>
{{range .All}}<details class="cell" id="c-{{.Slug}}" data-id="{{.ID}}"><summary>{{template "chip" .ObsChip}} <span class="mono">{{.ID}}</span> · {{.Status}}{{if .Differs}} · <b style="color:#c92a2a">≠ expected {{.Expected}}</b>{{end}}</summary>
<div class="cd"><table>
<tr><th>status</th><td>{{.Status}}{{if .Retried}} after {{.Attempts}} attempts{{end}}</td></tr>
<tr><th>expected</th><td>{{template "chip" .ExpChip}} {{.Reason}}</td></tr>
<tr><th>observed</th><td>{{template "chip" .ObsChip}}</td></tr>
<tr><th>evidence</th><td class="mono">{{.EvidenceText}}</td></tr>
{{if .Message}}<tr><th>message</th><td>{{.Message}}</td></tr>{{end}}
<tr><th>labels</th><td class="mono">{{.LabelText}}</td></tr>
{{if .Params.Note}}<tr><th>note</th><td>{{.Params.Note}}</td></tr>{{end}}
<tr><th>command</th><td class="mono">{{or .Command "-"}}</td></tr>
<tr><th>rerun</th><td class="mono">{{or .Rerun "-"}}</td></tr>
<tr><th>duration</th><td>{{.DurationText}}{{range .TimingList}} · {{.}}{{end}}</td></tr>
<tr><th>transcript</th><td>{{if .Transcript}}<a class="mono" href="{{.Transcript}}">{{.Transcript}}</a>{{else}}-{{end}}</td></tr>
</table>
{{if .TranscriptText}}<pre class="tr">{{.TranscriptText}}</pre>{{else if .TranscriptNote}}<p class="note">{{.TranscriptNote}}</p>{{end}}
</div></details>
{{end}}
{{template "panel" .}}
</body></html>
{{end}}`

// htmlCell is one cell prepared for the templates.
type htmlCell struct {
	CellResult
	Slug, Class, Short, PathLabel, Title, Href string
	Differs, IsExposed, Retried                bool
	EvidenceText, LabelText, DurationText      string
	TimingList                                 []string
	TranscriptText, TranscriptNote             string
	ExpChip, ObsChip                           htmlChip
}

type htmlChip struct{ Verdict, Text string }

type legendEntry struct {
	Name  string
	Count int
}

type checksumHead struct {
	Name string
	Span int
}

type gridRow struct {
	CA     matrix.CAKind
	CASpan int
	Mode   matrix.Mode
	Cells  [][]*htmlCell // per column, per path slot; nil = no cell
}

type reportPage struct {
	Title             string
	CSS               template.CSS
	JS                template.JS
	R                 *Results
	N                 Counts
	ExposedUnexpected int
	ShortSHA          string
	Started, Took     string
	Embedded          bool
	Legend            []legendEntry
	PathKey           []string
	Grid              gridLayout
	ChecksumHeads     []checksumHead
	GridRows          []gridRow
	Failed            []*htmlCell
	Exposed           []*htmlCell
	Other             []*htmlCell
	All               []*htmlCell
}

// chipFor is the chip of a verdict; a skipped cell shows "skipped" whatever its observed field
// holds, since nothing was observed.
func chipFor(v verdict.Verdict, skipped bool) htmlChip {
	switch {
	case skipped:
		return htmlChip{Verdict: "skipped", Text: "skipped"}
	case v == "":
		return htmlChip{Verdict: "skipped", Text: "-"}
	}
	return htmlChip{Verdict: string(v), Text: string(v)}
}

func newHTMLCell(c CellResult, o options) *htmlCell {
	p := cellParams(c)
	h := &htmlCell{
		CellResult: c,
		Slug:       slug(c.ID),
		Short:      shortVerdict(c.Observed),
		PathLabel:  pathLabel(p.Path),
		Differs:    c.Differs(),
		IsExposed:  c.IsExposed(),
		Retried:    c.Retried(),
		LabelText:  strings.Join(c.Labels, " "),
		ExpChip:    chipFor(c.Expected, false),
		ObsChip:    chipFor(c.Observed, c.Status == StatusSkipped),
	}
	h.EvidenceText = evidenceText(c.Evidence, 600)
	h.DurationText = humanDuration(c.Duration)
	keys := make([]string, 0, len(c.Timings))
	for k := range c.Timings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.TimingList = append(h.TimingList, k+" "+c.Timings[k])
	}
	classes := []string{"v-" + h.ObsChip.Verdict}
	if h.ObsChip.Verdict == "skipped" {
		h.Short = "skipped"
	}
	if h.IsExposed {
		classes = append(classes, "m-exposed")
	}
	if h.Differs {
		classes = append(classes, "m-differs")
	}
	if c.Status == StatusFailed {
		classes = append(classes, "m-failed")
	}
	h.Class = strings.Join(classes, " ")
	title := fmt.Sprintf("%s\n%s: observed %s, expected %s", c.ID, c.Status, orDash(string(c.Observed)), c.Expected)
	if c.Retried() {
		title += fmt.Sprintf(" (%d attempts)", c.Attempts)
	}
	if e := evidenceText(c.Evidence, 200); e != "-" {
		title += "\n" + e
	}
	h.Title = title
	if o.transcriptDir != "" {
		h.TranscriptText, h.TranscriptNote = readTranscript(o.transcriptDir, c.Transcript, o.transcriptMax)
	}
	// Without JS a tile goes to the transcript file; with embedded text, to the cell's entry.
	h.Href = "#c-" + h.Slug
	if o.transcriptDir == "" && c.Transcript != "" {
		h.Href = c.Transcript
	}
	return h
}

// slug makes an HTML id fragment from a cell ID.
func slug(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, id)
}

// WriteHTML writes r as one self-contained HTML page (inline CSS and JS, no external asset).
// With WithTranscripts the transcripts are embedded; otherwise tiles link to the transcript
// files by their paths relative to results.json, so write the page beside it.
func WriteHTML(w io.Writer, r *Results, opts ...Option) error {
	if r == nil {
		return fmt.Errorf("write html: nil Results")
	}
	o, err := applyOptions(opts)
	if err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	n := r.Counts()
	page := reportPage{
		Title:             "agenttls " + r.RunID + " · " + runLabel(r),
		CSS:               template.CSS(baseCSS + verdictCSS()),
		JS:                template.JS(panelJS),
		R:                 r,
		N:                 n,
		ExposedUnexpected: n.Exposed - n.ExposedExpected,
		ShortSHA:          shortSHA(r.ScriptSHA256),
		Started:           "-",
		Took:              humanDuration(runDuration(r)),
		Embedded:          o.transcriptDir != "",
	}
	if !r.Started.IsZero() {
		page.Started = r.Started.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	counts := map[string]int{}
	byID := map[string]*htmlCell{}
	for _, c := range sortedCells(r.Cells) {
		h := newHTMLCell(c, o)
		byID[c.ID] = h
		page.All = append(page.All, h)
		counts[h.ObsChip.Verdict]++
		if c.Status == StatusFailed {
			page.Failed = append(page.Failed, h)
		}
		if c.IsExposed() {
			page.Exposed = append(page.Exposed, h)
		}
	}
	for _, v := range verdictColours {
		page.Legend = append(page.Legend, legendEntry{Name: v.Name, Count: counts[v.Name]})
	}
	g := layoutGrid(r.Cells)
	page.Grid = g
	for _, p := range g.Paths {
		page.PathKey = append(page.PathKey, string(p))
	}
	for _, c := range g.Other {
		page.Other = append(page.Other, byID[c.ID])
	}
	for i := 0; i < len(g.Cols); {
		j := i
		for j < len(g.Cols) && g.Cols[j].Checksum == g.Cols[i].Checksum {
			j++
		}
		page.ChecksumHeads = append(page.ChecksumHeads, checksumHead{Name: string(g.Cols[i].Checksum), Span: j - i})
		i = j
	}
	for i, rk := range g.Rows {
		row := gridRow{CA: rk.CA, Mode: rk.Mode}
		if i == 0 || g.Rows[i-1].CA != rk.CA {
			for _, x := range g.Rows[i:] {
				if x.CA == rk.CA {
					row.CASpan++
				}
			}
		}
		for _, ck := range g.Cols {
			slots := make([]*htmlCell, len(g.Paths))
			for k, p := range g.Paths {
				if c, ok := g.cell(rk, ck, p); ok {
					slots[k] = byID[c.ID]
				}
			}
			row.Cells = append(row.Cells, slots)
		}
		page.GridRows = append(page.GridRows, row)
	}
	if err := pageTmpl.ExecuteTemplate(w, "report", page); err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	return nil
}

// pathLabel is the network path as a tile shows it (the tile is 70px wide).
func pathLabel(p matrix.Path) string {
	if p == matrix.PathMITMTrusted {
		return "mitm-tr"
	}
	return string(p)
}
