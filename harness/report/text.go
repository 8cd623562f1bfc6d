package report

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/verdict"
)

// ansiCSI matches terminal colour and cursor sequences that scripts print.
var ansiCSI = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// clean removes terminal escapes and control characters (keeping newlines and tabs when
// multiline) so text is safe in XML, Markdown and HTML and readable everywhere.
func clean(s string, multiline bool) string {
	s = ansiCSI.ReplaceAllString(s, "")
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			if multiline {
				return r
			}
			return ' '
		case r == '\r':
			return -1
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xFFFE || r == 0xFFFF:
			return -1
		}
		return r
	}, s)
}

// oneLine is clean text on one line, cut to at most n runes with an ellipsis.
func oneLine(s string, n int) string {
	return cut(strings.TrimSpace(clean(s, false)), n)
}

// cut shortens s to at most n runes, marking the cut with an ellipsis.
func cut(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// evidenceText is the evidence in one line, or "-" when there is none.
func evidenceText(e verdict.Evidence, n int) string {
	s := oneLine(e.String(), n)
	if s == "" {
		return "-"
	}
	return s
}

// shortVerdict is a compact verdict name for tiles and grids.
func shortVerdict(v verdict.Verdict) string {
	switch v {
	case verdict.Registered:
		return "registered"
	case verdict.Exposed:
		return "EXPOSED"
	case verdict.FatalStrictNoChecksum:
		return "fatal"
	case verdict.RejectedChecksumMismatch:
		return "mismatch"
	case verdict.RejectedNoCACerts:
		return "no-cacerts"
	case verdict.RejectedNotX509:
		return "not-x509"
	case verdict.RejectedUntrusted:
		return "untrusted"
	case verdict.Unexpected:
		return "unexpected"
	case verdict.Timeout:
		return "timeout"
	case "":
		return "-"
	}
	return string(v)
}

// verdictOrSkipped is the observed verdict, or "skipped" for a cell that did not run.
func verdictOrSkipped(c CellResult) string {
	if c.Status == StatusSkipped {
		return "skipped"
	}
	return string(c.Observed)
}

// seconds formats a duration for JUnit's time attribute.
func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// humanDuration rounds a duration for people.
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// runDuration is Finished-Started when both are set.
func runDuration(r *Results) time.Duration {
	if r.Started.IsZero() || r.Finished.IsZero() {
		return 0
	}
	return r.Finished.Sub(r.Started)
}

// orDash returns s, or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortSHA shortens a hex digest for headers.
func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// runLabel names a run by the versions it tested, e.g. "system-agent v0.15.0" or
// "rancher v2.12.3 / system-agent v0.3.16".
func runLabel(r *Results) string {
	var parts []string
	if r.RancherVersion != "" {
		parts = append(parts, "rancher "+r.RancherVersion)
	}
	if r.SystemAgentVersion != "" {
		parts = append(parts, "system-agent "+r.SystemAgentVersion)
	}
	if len(parts) == 0 && r.ScriptSHA256 != "" {
		parts = append(parts, scriptLabel(r))
	}
	if len(parts) == 0 {
		return r.RunID
	}
	return strings.Join(parts, " / ")
}

// versionLabel is the shortest label that tells runs of a sweep apart: the versions alone.
func versionLabel(r *Results) string {
	switch {
	case r.RancherVersion != "" && r.SystemAgentVersion != "":
		return r.RancherVersion + " / " + r.SystemAgentVersion
	case r.RancherVersion != "":
		return r.RancherVersion
	case r.SystemAgentVersion != "":
		return r.SystemAgentVersion
	case r.ScriptSHA256 != "":
		return scriptLabel(r)
	}
	return r.RunID
}

// scriptLabel names a script that has no version (a file or URL) by its hash.
func scriptLabel(r *Results) string {
	return "install.sh " + r.ScriptSHA256[:min(12, len(r.ScriptSHA256))]
}

// Markdown helpers. GitHub tables need '|' escaped even inside code spans, and a line break
// ends a row.

func mdText(s string, n int) string {
	s = oneLine(s, n)
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "|", `\|`)
	for _, ch := range []string{"*", "_", "`", "<", ">", "[", "]"} {
		s = strings.ReplaceAll(s, ch, `\`+ch)
	}
	return s
}

func mdCode(s string, n int) string {
	s = oneLine(s, n)
	if s == "" {
		return "-"
	}
	s = strings.ReplaceAll(s, "|", `\|`)
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// Standard grid: the default 144-cell matrix of DESIGN.md. The HTML grid and the Markdown
// per-(CA, mode) tables lay these axes out; cells with any other value (tamper-garbage,
// TRUE, private-bundle, a non-default strict-verify placement) go to a separate section.
var (
	gridCAs       = []matrix.CAKind{matrix.CAPrivate, matrix.CAPublic}
	gridModes     = []matrix.Mode{matrix.ModeStrict, matrix.ModeSystemStore}
	gridChecksums = []matrix.Checksum{matrix.ChecksumAbsent, matrix.ChecksumCorrect, matrix.ChecksumWrong}
	gridStricts   = []matrix.StrictVerify{matrix.StrictUnset, matrix.StrictTrue, matrix.StrictFalse}
	gridPaths     = []matrix.Path{matrix.PathDirect, matrix.PathMITM, matrix.PathMITMTrusted, matrix.PathTamper}
)

func in[T comparable](v T, set []T) bool {
	for _, x := range set {
		if x == v {
			return true
		}
	}
	return false
}

// onGrid reports whether a cell lies on the standard grid.
func onGrid(p matrix.Cell) bool {
	return in(p.CA, gridCAs) && in(p.Mode, gridModes) && in(p.Checksum, gridChecksums) &&
		in(p.StrictVerify, gridStricts) && in(p.Path, gridPaths) && p.At() == matrix.AtSh
}

type gridRowKey struct {
	CA   matrix.CAKind
	Mode matrix.Mode
}

type gridColKey struct {
	Checksum     matrix.Checksum
	StrictVerify matrix.StrictVerify
}

// gridLayout splits cells (in matrix order) into those on the standard grid, keyed by row,
// column and path, and the others. Rows and columns with no cell at all are left out, so a
// subset (a smoke scenario) shows a small grid; paths are the standard paths present.
type gridLayout struct {
	Rows  []gridRowKey
	Cols  []gridColKey
	Paths []matrix.Path
	At    map[gridRowKey]map[gridColKey]map[matrix.Path]CellResult
	Other []CellResult
}

func layoutGrid(cells []CellResult) gridLayout {
	g := gridLayout{At: map[gridRowKey]map[gridColKey]map[matrix.Path]CellResult{}}
	rows := map[gridRowKey]bool{}
	cols := map[gridColKey]bool{}
	paths := map[matrix.Path]bool{}
	for _, c := range sortedCells(cells) {
		p := cellParams(c)
		if !onGrid(p) {
			g.Other = append(g.Other, c)
			continue
		}
		rk, ck := gridRowKey{p.CA, p.Mode}, gridColKey{p.Checksum, p.StrictVerify}
		rows[rk], cols[ck], paths[p.Path] = true, true, true
		if g.At[rk] == nil {
			g.At[rk] = map[gridColKey]map[matrix.Path]CellResult{}
		}
		if g.At[rk][ck] == nil {
			g.At[rk][ck] = map[matrix.Path]CellResult{}
		}
		g.At[rk][ck][p.Path] = c
	}
	for _, ca := range gridCAs {
		for _, m := range gridModes {
			if k := (gridRowKey{ca, m}); rows[k] {
				g.Rows = append(g.Rows, k)
			}
		}
	}
	for _, cs := range gridChecksums {
		for _, sv := range gridStricts {
			if k := (gridColKey{cs, sv}); cols[k] {
				g.Cols = append(g.Cols, k)
			}
		}
	}
	for _, p := range gridPaths {
		if paths[p] {
			g.Paths = append(g.Paths, p)
		}
	}
	return g
}

// cell returns the result at (row, col, path) and whether there is one.
func (g gridLayout) cell(r gridRowKey, c gridColKey, p matrix.Path) (CellResult, bool) {
	x, ok := g.At[r][c][p]
	return x, ok
}
