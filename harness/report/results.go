// Package report writes what a run found (results.json, JUnit, Markdown, HTML) and compares
// two runs. results.json is the source of truth; the other formats are views of it.
package report

import (
	"time"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/verdict"
)

// SchemaVersion is the results.json format version. Bump it on any incompatible change; readers
// refuse files of another major version with an error that names both.
const SchemaVersion = "agenttls.results/v1"

// Results is one run: who ran what against which versions, and every cell's outcome.
type Results struct {
	Schema      string    `json:"schema"`
	RunID       string    `json:"runId"`
	ToolVersion string    `json:"toolVersion"`
	Backend     string    `json:"backend"` // "emulator" (hermetic tier) or "rancher"
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	// Interrupted marks a run stopped by the user: cells that were running then have failed for
	// that reason, so the run proves nothing about them, and Diff and NewSweep refuse it.
	Interrupted bool `json:"interrupted,omitempty"`
	// Versions under test.
	RancherVersion     string `json:"rancherVersion,omitempty"`
	SystemAgentVersion string `json:"systemAgentVersion"`
	ScriptSHA256       string `json:"scriptSha256"`
	ScriptSource       string `json:"scriptSource"`
	ScriptProfile      string `json:"scriptProfile"`
	// Scenario is the scenario file the cells came from; Shard is "i/n" when sharded.
	Scenario string `json:"scenario"`
	Shard    string `json:"shard,omitempty"`
	// Config is the effective configuration of the run (flags, env and defaults resolved).
	Config map[string]string `json:"config"`
	Cells  []CellResult      `json:"cells"`
}

// Status of one cell: the observed verdict matched the oracle, did not, or the cell did not run.
type Status string

const (
	StatusPassed  Status = "passed"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
)

// CellResult is one cell's parameters, expectation, observation and artifacts.
type CellResult struct {
	ID       string            `json:"id"`
	Params   matrix.Cell       `json:"params"`
	Labels   []string          `json:"labels"`
	Expected verdict.Verdict   `json:"expected"`
	Reason   string            `json:"reason"` // the oracle's derivation
	Observed verdict.Verdict   `json:"observed"`
	Evidence verdict.Evidence  `json:"evidence"`
	Status   Status            `json:"status"`
	Message  string            `json:"message,omitempty"` // failure or skip reason
	Command  string            `json:"command"`           // what the node ran
	Duration time.Duration     `json:"durationNs"`
	Timings  map[string]string `json:"timings,omitempty"` // e.g. node-start, script, verdict
	// Transcript is the path of the cell's transcript, relative to the results file.
	Transcript string `json:"transcript"`
	// Rerun is the command that runs this cell alone.
	Rerun string `json:"rerun"`
	// Attempts is how many times the cell ran; 0 and 1 both mean once. A cell that was retried
	// is marked in every report, so a retry never turns a failure green silently.
	Attempts int `json:"attempts,omitempty"`
}
