package report

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/agenttls/agenttls/harness/verdict"
)

// WriteMarkdown writes the run summary as GitHub-flavoured Markdown, fit for
// $GITHUB_STEP_SUMMARY: a header with the versions and counts (the exposed count always shown),
// the failures with their rerun commands, the exposed cells, any retried cells, then every
// cell laid out per (CA kind, mode).
func WriteMarkdown(w io.Writer, r *Results) error {
	if r == nil {
		return fmt.Errorf("write markdown: nil Results")
	}
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	n := r.Counts()
	cells := sortedCells(r.Cells)

	p("## agenttls `%s`: %s\n\n", oneLine(r.RunID, 80), headline(n))
	if r.Interrupted {
		p("> **Interrupted:** the run was stopped before it ended; cells that were running then failed for that reason.\n\n")
	}
	p("| | |\n|---|---|\n")
	if r.SystemAgentVersion != "" {
		p("| system-agent | %s |\n", mdCode(r.SystemAgentVersion, 60))
	}
	if r.RancherVersion != "" {
		p("| Rancher | %s |\n", mdCode(r.RancherVersion, 60))
	}
	script := mdCode(shortSHA(r.ScriptSHA256), 20)
	if r.ScriptProfile != "" {
		script += " profile " + mdCode(r.ScriptProfile, 40)
	}
	if r.ScriptSource != "" {
		script += " from " + mdCode(r.ScriptSource, 120)
	}
	p("| install script | %s |\n", script)
	p("| backend | %s |\n", mdText(r.Backend, 40))
	scen := mdText(orDash(r.Scenario), 80)
	if r.Shard != "" {
		scen += " (shard " + mdText(r.Shard, 20) + ")"
	}
	p("| scenario | %s |\n", scen)
	when := "-"
	if !r.Started.IsZero() {
		when = r.Started.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	p("| run | %s, started %s, took %s |\n", mdCode(r.RunID, 80), when, humanDuration(runDuration(r)))
	if r.ToolVersion != "" {
		p("| agenttls | %s |\n", mdCode(r.ToolVersion, 60))
	}
	p("\n")

	if n.Exposed > 0 {
		p("> **⚠️ %d %s EXPOSED**: the node registered through an attacker's proxy. ", n.Exposed, plural(n.Exposed, "cell", "cells"))
		p("%d %s what the oracle expects for the settings (the documented cost of `system-store` or `CATTLE_AGENT_STRICT_VERIFY=false`)", n.ExposedExpected, plural(n.ExposedExpected, "is", "are"))
		if un := n.Exposed - n.ExposedExpected; un > 0 {
			p("; **%d %s not, and fail%s this run**", un, plural(un, "is", "are"), plural(un, "s", ""))
		}
		p(".\n\n")
	} else {
		p("> No cell exposed: no node registered through an attacker's proxy.\n\n")
	}

	if n.Failed > 0 {
		p("### ❌ Failures (%d)\n\n", n.Failed)
		p("| cell | expected | observed | evidence | rerun |\n|---|---|---|---|---|\n")
		var reruns []string
		for _, c := range cells {
			if c.Status != StatusFailed {
				continue
			}
			obs := mdCode(string(c.Observed), 40)
			if c.IsExposed() {
				obs = "⚠️ **" + obs + "**"
			}
			if c.Retried() {
				obs += fmt.Sprintf(" (%d attempts)", c.Attempts)
			}
			p("| %s | %s | %s | %s | %s |\n", mdCode(c.ID, 100), mdCode(string(c.Expected), 40), obs,
				mdCode(evidenceText(c.Evidence, 160), 160), mdCode(orDash(c.Rerun), 200))
			if c.Rerun != "" {
				reruns = append(reruns, oneLine(c.Rerun, 400))
			}
		}
		p("\n")
		if len(reruns) > 0 {
			p("<details><summary>Rerun the %d failed %s</summary>\n\n```sh\n%s\n```\n\n</details>\n\n",
				len(reruns), plural(len(reruns), "cell", "cells"), strings.Join(reruns, "\n"))
		}
	}

	if n.Exposed > 0 {
		p("### ⚠️ Exposed (%d)\n\n", n.Exposed)
		p("| cell | expected | status | why the oracle expects it / evidence |\n|---|---|---|---|\n")
		for _, c := range cells {
			if !c.IsExposed() {
				continue
			}
			why := mdText(c.Reason, 160)
			if c.Expected != verdict.Exposed {
				why = mdCode(evidenceText(c.Evidence, 160), 160)
			}
			p("| %s | %s | %s | %s |\n", mdCode(c.ID, 100), mdCode(string(c.Expected), 40), statusText(c), orDash(why))
		}
		p("\n")
	}

	if n.Retried > 0 {
		p("### 🔁 Retried (%d)\n\n| cell | attempts | status | observed |\n|---|---|---|---|\n", n.Retried)
		for _, c := range cells {
			if c.Retried() {
				p("| %s | %d | %s | %s |\n", mdCode(c.ID, 100), c.Attempts, statusText(c), mdCode(string(c.Observed), 40))
			}
		}
		p("\n")
	}

	writeMarkdownCells(p, cells)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

// writeMarkdownCells lays out every cell: one table per (CA kind, mode) on the standard grid
// (rows checksum x strict-verify, columns network path), then the cells outside it.
func writeMarkdownCells(p func(string, ...any), cells []CellResult) {
	if len(cells) == 0 {
		p("No cells.\n")
		return
	}
	g := layoutGrid(cells)
	p("<details><summary>All %d cells</summary>\n\n", len(cells))
	p("Each entry is the observed verdict; ❌ marks a failed cell (with the expected verdict), ⚠️ an exposed one, ⏭ a skipped one.\n\n")
	for _, rk := range g.Rows {
		p("#### ca `%s`, mode `%s`\n\n", rk.CA, rk.Mode)
		p("| checksum / strict-verify |")
		for _, path := range g.Paths {
			p(" %s |", path)
		}
		p("\n|---|%s\n", strings.Repeat("---|", len(g.Paths)))
		for _, ck := range g.Cols {
			p("| cs-%s / sv-%s |", ck.Checksum, ck.StrictVerify)
			for _, path := range g.Paths {
				c, ok := g.cell(rk, ck, path)
				if !ok {
					p(" |")
					continue
				}
				p(" %s |", gridEntry(c))
			}
			p("\n")
		}
		p("\n")
	}
	if len(g.Other) > 0 {
		p("#### Cells outside the standard matrix (%d)\n\n| cell | expected | observed | status |\n|---|---|---|---|\n", len(g.Other))
		for _, c := range g.Other {
			p("| %s | %s | %s | %s |\n", mdCode(c.ID, 100), mdCode(string(c.Expected), 40), mdCode(verdictOrSkipped(c), 40), statusText(c))
		}
		p("\n")
	}
	p("</details>\n")
}

// gridEntry is one compact Markdown grid entry.
func gridEntry(c CellResult) string {
	switch {
	case c.Status == StatusSkipped:
		return "⏭ skipped"
	case c.Status == StatusFailed:
		return fmt.Sprintf("❌ **%s** (want %s)", shortVerdict(c.Observed), shortVerdict(c.Expected))
	case c.IsExposed():
		return "⚠️ " + shortVerdict(c.Observed)
	}
	s := shortVerdict(c.Observed)
	if c.Retried() {
		s += " 🔁"
	}
	return s
}

func statusText(c CellResult) string {
	switch c.Status {
	case StatusFailed:
		return "❌ failed"
	case StatusSkipped:
		return "⏭ skipped"
	case StatusPassed:
		return "passed"
	}
	return string(c.Status)
}

// headline is the one-line count of a run.
func headline(n Counts) string {
	var parts []string
	if n.Failed > 0 {
		parts = append(parts, fmt.Sprintf("❌ %d failed", n.Failed))
	}
	parts = append(parts, fmt.Sprintf("%d passed", n.Passed))
	if n.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", n.Skipped))
	}
	exp := fmt.Sprintf("⚠️ %d exposed", n.Exposed)
	if n.Exposed == 0 {
		exp = "0 exposed"
	}
	parts = append(parts, exp)
	return fmt.Sprintf("%d %s: %s", n.Total, plural(n.Total, "cell", "cells"), strings.Join(parts, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// SummaryTable writes a plain-text table for terminals (the end of the main job's log):
// a header with versions and counts, then failed cells first, each with its evidence and
// rerun command, then exposed and retried cells, then the rest.
func SummaryTable(w io.Writer, r *Results) error {
	if r == nil {
		return fmt.Errorf("summary table: nil Results")
	}
	n := r.Counts()
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "agenttls run %s: %s, backend %s", oneLine(r.RunID, 80), runLabel(r), orDash(r.Backend))
	if r.Scenario != "" {
		fmt.Fprintf(bw, ", scenario %s", oneLine(r.Scenario, 80))
	}
	if r.Shard != "" {
		fmt.Fprintf(bw, ", shard %s", oneLine(r.Shard, 20))
	}
	if r.Interrupted {
		fmt.Fprintf(bw, " (INTERRUPTED)")
	}
	fmt.Fprintf(bw, "\n%d %s: %d FAILED, %d passed, %d skipped", n.Total, plural(n.Total, "cell", "cells"), n.Failed, n.Passed, n.Skipped)
	if n.Exposed > 0 {
		fmt.Fprintf(bw, "; %d EXPOSED (%d expected by the oracle, %d not)", n.Exposed, n.ExposedExpected, n.Exposed-n.ExposedExpected)
	} else {
		fmt.Fprintf(bw, "; 0 exposed")
	}
	if n.Retried > 0 {
		fmt.Fprintf(bw, "; %d retried", n.Retried)
	}
	fmt.Fprintf(bw, "\n\n")

	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "STATUS\tCELL\tEXPECTED\tOBSERVED\tDETAIL\n")
	cells := sortedCells(r.Cells)
	groups := []func(CellResult) bool{
		func(c CellResult) bool { return c.Status == StatusFailed },
		func(c CellResult) bool { return c.Status != StatusFailed && c.IsExposed() },
		func(c CellResult) bool { return c.Status == StatusPassed && !c.IsExposed() && c.Retried() },
		func(c CellResult) bool { return c.Status == StatusPassed && !c.IsExposed() && !c.Retried() },
		func(c CellResult) bool { return c.Status == StatusSkipped && !c.IsExposed() },
	}
	for _, in := range groups {
		for _, c := range cells {
			if !in(c) {
				continue
			}
			status := strings.ToUpper(string(c.Status))
			if c.Status == StatusPassed {
				status = "pass"
			}
			if c.IsExposed() {
				status += " EXPOSED"
			}
			var detail []string
			switch c.Status {
			case StatusFailed:
				detail = append(detail, "evidence: "+evidenceText(c.Evidence, 120))
				if c.Message != "" {
					detail = append(detail, "message: "+oneLine(c.Message, 120))
				}
				if c.Transcript != "" {
					detail = append(detail, "transcript: "+c.Transcript)
				}
				detail = append(detail, "rerun: "+orDash(oneLine(c.Rerun, 300)))
			case StatusSkipped:
				detail = append(detail, oneLine(c.Message, 120))
			}
			if c.Retried() {
				detail = append(detail, fmt.Sprintf("attempts: %d", c.Attempts))
			}
			if len(detail) == 0 {
				detail = []string{""}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", status, c.ID, c.Expected, orDash(verdictOrSkipped(c)), detail[0])
			for _, d := range detail[1:] {
				fmt.Fprintf(tw, "\t\t\t\t%s\n", d)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("summary table: %w", err)
	}
	for _, l := range strings.SplitAfter(table.String(), "\n") {
		if l != "" {
			bw.WriteString(strings.TrimRight(l, " \n") + "\n")
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("summary table: %w", err)
	}
	return nil
}
