package report

import "github.com/agenttls/agenttls/harness/verdict"

// Counts tallies a run's cells for report headers.
type Counts struct {
	Total, Passed, Failed, Skipped int
	// Exposed counts cells whose observed verdict is exposed, whatever the oracle expected;
	// ExposedExpected of them were expected (the documented cost of a setting), the rest fail.
	Exposed, ExposedExpected int
	// Differs counts cells that ran and whose observed verdict is not the expected one.
	Differs int
	// Retried counts cells that ran more than once.
	Retried int
}

// Counts tallies r's cells.
func (r *Results) Counts() Counts {
	var n Counts
	for _, c := range r.Cells {
		n.Total++
		switch c.Status {
		case StatusPassed:
			n.Passed++
		case StatusFailed:
			n.Failed++
		case StatusSkipped:
			n.Skipped++
		}
		if c.IsExposed() {
			n.Exposed++
			if c.Expected == verdict.Exposed {
				n.ExposedExpected++
			}
		}
		if c.Differs() {
			n.Differs++
		}
		if c.Retried() {
			n.Retried++
		}
	}
	return n
}

// Failed returns the failed cells in matrix order.
func (r *Results) Failed() []CellResult {
	var out []CellResult
	for _, c := range sortedCells(r.Cells) {
		if c.Status == StatusFailed {
			out = append(out, c)
		}
	}
	return out
}

// IsExposed reports whether the node registered through an attacker's proxy.
func (c CellResult) IsExposed() bool {
	return c.Status != StatusSkipped && c.Observed == verdict.Exposed
}

// Differs reports whether the cell ran and its observed verdict is not the oracle's.
func (c CellResult) Differs() bool {
	return c.Status != StatusSkipped && c.Observed != "" && c.Observed != c.Expected
}

// Retried reports whether the cell ran more than once.
func (c CellResult) Retried() bool { return c.Attempts > 1 }
