package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/agenttls/agenttls/harness/bounded"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/verdict"
)

// File names of a run's artifacts, all in one directory beside each other. Transcript paths in
// results.json are relative to that directory.
const (
	ResultsFile = "results.json"
	JUnitFile   = "junit.xml"
	SummaryFile = "summary.md"
	HTMLFile    = "report.html"
)

// Error kinds returned (wrapped) by Read, so callers can tell them apart with errors.Is.
var (
	// ErrNotJSON: the file is empty, truncated, or not JSON at all.
	ErrNotJSON = errors.New("not a complete JSON document")
	// ErrSchemaVersion: the file was written by another schema version.
	ErrSchemaVersion = errors.New("schema version mismatch")
	// ErrInvalid: the file is JSON of the right version but misses required fields or holds
	// values the schema does not allow.
	ErrInvalid = errors.New("invalid results")
)

// kindError carries a readable message and unwraps to both an error kind and its cause.
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// Write writes r as dir/results.json: indented, cells in matrix order, map keys sorted, so two
// writes of the same run give the same bytes. An empty r.Schema is written as SchemaVersion; r
// itself is not modified. Write refuses a Results that Read would refuse, so every file it
// writes can be read back. The file is written to a temporary name and renamed into place, so
// an interrupted write never leaves a truncated results.json.
func Write(dir string, r *Results) error {
	data, err := Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: create directory %s: %w", dir, err)
	}
	return writeFileAtomic(filepath.Join(dir, ResultsFile), data)
}

// Marshal returns the bytes Write would write: r validated, stamped with SchemaVersion when
// its Schema is empty, cells in matrix order, indented.
func Marshal(r *Results) ([]byte, error) {
	if r == nil {
		return nil, errors.New("write results: nil Results")
	}
	c := *r
	if c.Schema == "" {
		c.Schema = SchemaVersion
	}
	if c.Schema != SchemaVersion {
		return nil, fmt.Errorf("write results: Results has schema %q but this agenttls writes %q: leave Schema empty to stamp the current version", c.Schema, SchemaVersion)
	}
	c.Cells = sortedCells(r.Cells)
	if c.Cells == nil {
		c.Cells = []CellResult{}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("write results: refusing to write a file that cannot be read back: %w", err)
	}
	data, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write results: encode JSON: %w", err)
	}
	return append(data, '\n'), nil
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Read reads and validates a results file. Its errors name the file and say what to do; they
// wrap ErrNotJSON, ErrSchemaVersion or ErrInvalid.
func Read(path string) (*Results, error) {
	data, err := bounded.ReadFile(path, maxResultsBytes, "results file")
	if err != nil {
		return nil, err
	}
	return Unmarshal(path, data)
}

// maxResultsBytes bounds a results file: a full run's is about 200 KiB.
const maxResultsBytes = 256 << 20

// Unmarshal decodes and validates the bytes of a results file; name is used in errors only.
func Unmarshal(name string, data []byte) (*Results, error) {
	// Probe the schema first: a file of another version may not even decode into Results.
	var probe struct {
		Schema *string `json:"schema"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		var syn *json.SyntaxError
		if len(bytes.TrimSpace(data)) == 0 || errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) {
			hint := "was the run interrupted while writing it?"
			if t := bytes.TrimSpace(data); len(t) > 0 && t[0] != '{' && t[0] != '[' {
				hint = "it is not a results file at all: give the results.json a run wrote"
			}
			return nil, &kindError{
				msg:  fmt.Sprintf("results file %s is truncated or not JSON: %v (%s)", name, err, hint),
				kind: ErrNotJSON, cause: err,
			}
		}
		return nil, &kindError{
			msg:  fmt.Sprintf("results file %s is not an agenttls results file: %v", name, err),
			kind: ErrInvalid, cause: err,
		}
	}
	if probe.Schema == nil || *probe.Schema == "" {
		return nil, &kindError{
			msg:  fmt.Sprintf("results file %s has no schema field: it is not an agenttls results file (this agenttls reads %q)", name, SchemaVersion),
			kind: ErrInvalid,
		}
	}
	if *probe.Schema != SchemaVersion {
		return nil, &kindError{
			msg:  fmt.Sprintf("results file %s was written by schema %q; this agenttls reads %q: re-run with the matching agenttls version", name, *probe.Schema, SchemaVersion),
			kind: ErrSchemaVersion,
		}
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, &kindError{
			msg:  fmt.Sprintf("results file %s does not match schema %s: %v", name, SchemaVersion, err),
			kind: ErrInvalid, cause: err,
		}
	}
	if err := r.Validate(); err != nil {
		return nil, &kindError{msg: fmt.Sprintf("results file %s: %v", name, err), kind: ErrInvalid, cause: err}
	}
	return &r, nil
}

// Validate checks what every reader relies on: the required run fields, and for every cell an
// ID that matches its parameters, a known status and verdicts, and a passed status only when
// the observed verdict is the expected one. It lists every problem it finds (up to a limit).
func (r *Results) Validate() error {
	var p problems
	if r.Schema == "" {
		p.add("schema: required")
	} else if r.Schema != SchemaVersion {
		p.add(fmt.Sprintf("schema: %q, want %q", r.Schema, SchemaVersion))
	}
	if r.RunID == "" {
		p.add("runId: required")
	}
	if r.Backend == "" {
		p.add("backend: required")
	}
	if r.SystemAgentVersion == "" && r.RancherVersion == "" && r.ScriptSHA256 == "" {
		p.add("systemAgentVersion: required (or rancherVersion, or scriptSha256 for a script given as a file or URL): what was under test")
	}
	if r.Cells == nil {
		p.add("cells: required (an empty list is allowed)")
	}
	seen := make(map[string]int, len(r.Cells))
	for i, c := range r.Cells {
		at := fmt.Sprintf("cells[%d]", i)
		if c.ID == "" {
			p.add(at + ".id: required")
			continue
		}
		at += " (" + c.ID + ")"
		if j, dup := seen[c.ID]; dup {
			p.add(fmt.Sprintf("%s: duplicate of cells[%d]", at, j))
		}
		seen[c.ID] = i
		if _, err := matrix.ParseID(c.ID); err != nil {
			p.add(fmt.Sprintf("%s.id: %v", at, err))
		} else if c.Params.CA == "" {
			p.add(at + ".params: required")
		} else if got := c.Params.ID(); got != c.ID {
			p.add(fmt.Sprintf("%s.params: describe cell %s, not %s", at, got, c.ID))
		}
		switch c.Status {
		case StatusPassed, StatusFailed, StatusSkipped:
		case "":
			p.add(at + ".status: required")
		default:
			p.add(fmt.Sprintf("%s.status: %q is not passed, failed or skipped", at, c.Status))
		}
		// A cell that failed or was skipped before the oracle was asked may lack an expectation
		// (or carry a placeholder); a passed cell may not.
		if c.Expected == "" {
			if c.Status == StatusPassed {
				p.add(at + ".expected: required for a passed cell")
			}
		} else if _, err := verdict.Parse(string(c.Expected)); err != nil {
			p.add(fmt.Sprintf("%s.expected: %v", at, err))
		} else if c.Expected.IsFailureClass() && c.Status == StatusPassed {
			p.add(fmt.Sprintf("%s.expected: %q can never be expected, so the cell cannot pass", at, c.Expected))
		}
		if c.Observed == "" {
			if c.Status == StatusPassed || c.Status == StatusFailed {
				p.add(fmt.Sprintf("%s.observed: required for a %s cell", at, c.Status))
			}
		} else if _, err := verdict.Parse(string(c.Observed)); err != nil {
			p.add(fmt.Sprintf("%s.observed: %v", at, err))
		}
		if c.Status == StatusPassed && c.Observed != "" && c.Observed != c.Expected {
			p.add(fmt.Sprintf("%s.status: passed, but observed %s is not expected %s", at, c.Observed, c.Expected))
		}
		if c.Attempts < 0 {
			p.add(fmt.Sprintf("%s.attempts: %d is negative", at, c.Attempts))
		}
	}
	return p.err()
}

// problems collects validation findings into one error that lists them all.
type problems struct{ list []string }

const maxProblems = 12

func (p *problems) add(s string) { p.list = append(p.list, s) }

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	shown := p.list
	more := ""
	if len(shown) > maxProblems {
		more = fmt.Sprintf("; and %d more", len(shown)-maxProblems)
		shown = shown[:maxProblems]
	}
	return fmt.Errorf("%w: %d problem(s): %s%s", ErrInvalid, len(p.list), strings.Join(shown, "; "), more)
}

// sortedCells returns a copy of cells in matrix order (matrix.Sort), ties broken by ID.
func sortedCells(cells []CellResult) []CellResult {
	if cells == nil {
		return nil
	}
	out := append([]CellResult(nil), cells...)
	rank := matrixRank(out)
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rank[out[i].ID], rank[out[j].ID]
		if ri != rj {
			return ri < rj
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// matrixRank maps each cell ID to its position in matrix order, as matrix.Sort defines it. The
// parameters are taken from the ID when it parses, so the order holds even for sparse params.
func matrixRank(cells []CellResult) map[string]int {
	params := make([]matrix.Cell, 0, len(cells))
	for _, c := range cells {
		params = append(params, cellParams(c))
	}
	matrix.Sort(params)
	rank := make(map[string]int, len(params))
	for i, p := range params {
		if _, ok := rank[p.ID()]; !ok {
			rank[p.ID()] = i
		}
	}
	// IDs that do not parse keep their own ID as key via cellParams' fallback below.
	for _, c := range cells {
		if _, ok := rank[c.ID]; !ok {
			rank[c.ID] = len(params)
		}
	}
	return rank
}

// cellParams returns the cell's parameters, parsed from its ID when possible.
func cellParams(c CellResult) matrix.Cell {
	if p, err := matrix.ParseID(c.ID); err == nil {
		p.Note = c.Params.Note
		return p
	}
	return c.Params
}
