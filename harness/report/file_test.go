package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/verdict"
)

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := synthRun(t, dir, "v0.15.0")
	r.Cells = append(r.Cells, extraCells()...)
	if err := Write(dir, r); err != nil {
		t.Fatal(err)
	}
	got, err := Read(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Started.Equal(r.Started) || !got.Finished.Equal(r.Finished) {
		t.Errorf("times changed: %v..%v, want %v..%v", got.Started, got.Finished, r.Started, r.Finished)
	}
	got.Started, got.Finished = r.Started, r.Finished
	want := *r
	want.Cells = sortedCells(r.Cells)
	if !reflect.DeepEqual(got, &want) {
		for i := range want.Cells {
			if !reflect.DeepEqual(got.Cells[i], want.Cells[i]) {
				t.Fatalf("cell %d differs after round trip:\n got %+v\nwant %+v", i, got.Cells[i], want.Cells[i])
			}
		}
		t.Fatalf("results differ after round trip:\n got %+v\nwant %+v", *got, want)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteIsStableAndInMatrixOrder(t *testing.T) {
	r := synthRun(t, "", "v0.15.0")
	r.Cells = append(r.Cells, extraCells()...)
	a, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	shuffled := *r
	shuffled.Cells = append([]CellResult(nil), r.Cells...)
	rand.New(rand.NewSource(1)).Shuffle(len(shuffled.Cells), func(i, j int) {
		shuffled.Cells[i], shuffled.Cells[j] = shuffled.Cells[j], shuffled.Cells[i]
	})
	b, err := Marshal(&shuffled)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same run written from differently ordered cells gives different bytes")
	}
	if shuffled.Cells[0].ID == sortedCells(r.Cells)[0].ID && shuffled.Cells[1].ID == sortedCells(r.Cells)[1].ID {
		t.Log("shuffle left the head in place; order check still holds")
	}
	// Matrix order, not alphabetical: private before public, strict before system-store,
	// direct before mitm before mitm-trusted before tamper before tamper-garbage.
	var doc struct {
		Cells []struct{ ID string } `json:"cells"`
	}
	if err := json.Unmarshal(a, &doc); err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, c := range doc.Cells {
		pos[c.ID] = i
	}
	order := []string{
		"private/strict/cs-absent/sv-unset/direct",
		"private/strict/cs-absent/sv-unset/mitm",
		"private/strict/cs-absent/sv-unset/mitm-trusted",
		"private/strict/cs-absent/sv-unset/tamper",
		"private/strict/cs-absent/sv-unset/tamper-garbage",
		"private/strict/cs-absent/sv-true/direct",
		"private/system-store/cs-absent/sv-unset/direct",
		"public/strict/cs-absent/sv-unset/direct",
		"private-bundle/strict/cs-correct/sv-unset/direct",
	}
	for i := 1; i < len(order); i++ {
		if pos[order[i-1]] >= pos[order[i]] {
			t.Errorf("%s (at %d) should come before %s (at %d)", order[i-1], pos[order[i-1]], order[i], pos[order[i]])
		}
	}
	if !bytes.Contains(a, []byte("\n  \"runId\": \"run-v0-15-0\",\n")) {
		t.Error("results.json is not indented with two spaces")
	}
	if r.Schema != SchemaVersion || r.Cells[0].ID != "private/strict/cs-absent/sv-unset/direct" {
		t.Error("Marshal modified its input")
	}
}

func TestWriteStampsSchemaAndRefusesInvalid(t *testing.T) {
	dir := t.TempDir()
	r := synthRun(t, "", "v0.15.0")
	r.Schema = ""
	if err := Write(dir, r); err != nil {
		t.Fatal(err)
	}
	if r.Schema != "" {
		t.Error("Write modified the caller's Results")
	}
	got, err := Read(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if got.Schema != SchemaVersion {
		t.Errorf("schema %q, want %q", got.Schema, SchemaVersion)
	}

	bad := synthRun(t, "", "v0.15.0")
	bad.RunID = ""
	dir2 := t.TempDir()
	err = Write(dir2, bad)
	if err == nil || !strings.Contains(err.Error(), "runId: required") {
		t.Fatalf("Write of a run without runId: %v, want an error naming runId", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir2, ResultsFile)); !os.IsNotExist(statErr) {
		t.Error("Write left a results file for invalid results")
	}
	other := synthRun(t, "", "v0.15.0")
	other.Schema = "agenttls.results/v0"
	if err := Write(t.TempDir(), other); err == nil || !strings.Contains(err.Error(), "agenttls.results/v0") {
		t.Fatalf("Write with a foreign schema: %v", err)
	}
}

func writeRaw(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), ResultsFile)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadTruncatedOrNotJSON(t *testing.T) {
	full, err := Marshal(synthRun(t, "", "v0.15.0"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"truncated":      full[:len(full)/2],
		"cut at the end": full[:len(full)-3],
		"empty":          nil,
		"html":           []byte("<html><body>502 Bad Gateway</body></html>"),
	} {
		t.Run(name, func(t *testing.T) {
			p := writeRaw(t, data)
			_, err := Read(p)
			if err == nil {
				t.Fatal("Read accepted it")
			}
			want := "results file " + p + " is truncated or not JSON: "
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q\nwant prefix %q", err, want)
			}
			if !errors.Is(err, ErrNotJSON) {
				t.Error("error does not wrap ErrNotJSON")
			}
		})
	}
	p := writeRaw(t, []byte(`[1,2,3]`))
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), "is not an agenttls results file") || !errors.Is(err, ErrInvalid) {
		t.Errorf("JSON array: %v", err)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "nope.json")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want an error wrapping ErrNotExist", err)
	}
}

func TestReadWrongSchema(t *testing.T) {
	full, err := Marshal(synthRun(t, "", "v0.15.0"))
	if err != nil {
		t.Fatal(err)
	}
	// A v2 file may change types too: the version must be reported, not a decode error.
	var doc map[string]any
	if err := json.Unmarshal(full, &doc); err != nil {
		t.Fatal(err)
	}
	doc["schema"] = "agenttls.results/v2"
	doc["cells"] = map[string]any{"list": doc["cells"]}
	v2, _ := json.Marshal(doc)
	p := writeRaw(t, v2)
	_, err = Read(p)
	want := `results file ` + p + ` was written by schema "agenttls.results/v2"; this agenttls reads "agenttls.results/v1": re-run with the matching agenttls version`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	if !errors.Is(err, ErrSchemaVersion) {
		t.Error("error does not wrap ErrSchemaVersion")
	}

	noSchema := bytes.Replace(full, []byte(`"schema": "agenttls.results/v1",`), nil, 1)
	if _, err := Read(writeRaw(t, noSchema)); err == nil || !strings.Contains(err.Error(), "has no schema field") {
		t.Errorf("file without schema: %v", err)
	}
}

func TestReadMissingRequiredFields(t *testing.T) {
	full, err := Marshal(synthRun(t, "", "v0.15.0"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(full, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "runId")
	delete(doc, "backend")
	cells := doc["cells"].([]any)
	delete(cells[3].(map[string]any), "status")
	delete(cells[7].(map[string]any), "params")
	cells[9].(map[string]any)["observed"] = "registerd"
	data, _ := json.Marshal(doc)
	p := writeRaw(t, data)
	_, err = Read(p)
	if err == nil {
		t.Fatal("Read accepted a file with missing fields")
	}
	for _, want := range []string{
		"results file " + p + ": ",
		"runId: required",
		"backend: required",
		"cells[3] (private/strict/cs-absent/sv-unset/tamper).status: required",
		"cells[7] (private/strict/cs-absent/sv-true/tamper).params: required",
		`cells[9] (private/strict/cs-absent/sv-false/mitm).observed: unknown verdict "registerd"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if !errors.Is(err, ErrInvalid) {
		t.Error("error does not wrap ErrInvalid")
	}
	doc2 := map[string]any{}
	_ = json.Unmarshal(full, &doc2)
	delete(doc2, "cells")
	data, _ = json.Marshal(doc2)
	if _, err := Read(writeRaw(t, data)); err == nil || !strings.Contains(err.Error(), "cells: required") {
		t.Errorf("file without cells: %v", err)
	}
}

func TestValidateInconsistentCells(t *testing.T) {
	cases := map[string]struct {
		mutate func(r *Results)
		want   string
	}{
		"passed but differs": {func(r *Results) { r.Cells[0].Observed = verdict.Exposed }, "status: passed, but observed exposed is not expected registered"},
		"params mismatch":    {func(r *Results) { r.Cells[0].Params.Path = "mitm" }, "params: describe cell private/strict/cs-absent/sv-unset/mitm, not private/strict/cs-absent/sv-unset/direct"},
		"duplicate":          {func(r *Results) { r.Cells[1] = r.Cells[0] }, "cells[1] (private/strict/cs-absent/sv-unset/direct): duplicate of cells[0]"},
		"bad id":             {func(r *Results) { r.Cells[0].ID = "private/strict/cs-maybe/sv-unset/direct" }, `unknown checksum value "maybe"`},
		"failure expected":   {func(r *Results) { r.Cells[0].Expected, r.Cells[0].Observed = verdict.Timeout, verdict.Timeout }, `"timeout" can never be expected, so the cell cannot pass`},
		"passed without exp": {func(r *Results) { r.Cells[0].Expected = "" }, "expected: required for a passed cell"},
		"bad status":         {func(r *Results) { r.Cells[0].Status = "flaky" }, `"flaky" is not passed, failed or skipped`},
		"no observed":        {func(r *Results) { r.Cells[0].Observed = "" }, "observed: required for a passed cell"},
		"no versions":        {func(r *Results) { r.SystemAgentVersion, r.ScriptSHA256 = "", "" }, "systemAgentVersion: required"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := synthRun(t, "", "v0.15.0")
			tc.mutate(r)
			err := r.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	// A skipped cell needs no observed verdict; a failed one may observe the expected verdict
	// (failed for another reason, e.g. missing evidence).
	r := synthRun(t, "", "v0.15.0")
	r.Cells[0].Status, r.Cells[0].Message = StatusFailed, "registration recorded but node left containers behind"
	// A cell that broke before the oracle was asked has no expectation; a skipped one may carry
	// placeholders. Neither may cost the run its results file.
	r.Cells[1].Status, r.Cells[1].Expected, r.Cells[1].Observed, r.Cells[1].Message = StatusFailed, "", verdict.Unexpected, "node did not start"
	r.Cells[2].Status, r.Cells[2].Expected, r.Cells[2].Observed = StatusSkipped, verdict.Unexpected, verdict.Unexpected
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateCapsTheProblemList(t *testing.T) {
	r := synthRun(t, "", "v0.15.0")
	for i := range r.Cells {
		r.Cells[i].Status = ""
	}
	err := r.Validate()
	if err == nil || !strings.Contains(err.Error(), "144 problem(s)") || !strings.Contains(err.Error(), "and 132 more") {
		t.Fatalf("Validate: %v", err)
	}
}

// The committed fixture pins the v1 format: if a change to the Go types stops it from reading,
// the change is incompatible and needs a new schema version (see SCHEMA.md).
func TestReadCommittedV1Fixture(t *testing.T) {
	r, err := Read(filepath.Join("testdata", "v1-small.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.RunID != "fixture-1" || len(r.Cells) != 3 {
		t.Fatalf("run %q with %d cells", r.RunID, len(r.Cells))
	}
	c := r.Cells[1]
	if c.ID != "private/strict/cs-absent/sv-false/mitm-trusted" || c.Observed != verdict.Exposed || c.Status != StatusFailed ||
		c.Evidence.Source != "proxy" || c.Duration.Milliseconds() != 1250 || c.Attempts != 2 || c.Timings["script"] != "1.1s" {
		t.Errorf("cell decoded as %+v", c)
	}
	if r.Config["harness.parallel"] != "2" || r.Cells[2].Status != StatusSkipped {
		t.Errorf("config %v, cell 2 %+v", r.Config, r.Cells[2])
	}
	// Unknown fields from a newer v1 writer are ignored.
	data, _ := os.ReadFile(filepath.Join("testdata", "v1-small.json"))
	data = bytes.Replace(data, []byte(`"runId"`), []byte(`"futureField": {"x": 1}, "runId"`), 1)
	if _, err := Read(writeRaw(t, data)); err != nil {
		t.Errorf("a v1 file with an unknown field: %v", err)
	}
}

func TestReadRefusesWhatIsNotARegularFile(t *testing.T) {
	if _, err := Read("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero as a results file: %v", err)
	}
}
