package matrix

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFullScenarioIsTheDesignMatrix(t *testing.T) {
	s, err := LoadScenario(filepath.Join("..", "..", "scenarios", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Cells); got != 144 {
		t.Fatalf("full matrix has %d cells, want 2x2x3x3x4 = 144", got)
	}
	seen := map[string]bool{}
	perAxis := map[Axis]map[string]int{}
	for _, c := range s.Cells {
		if seen[c.ID()] {
			t.Fatalf("duplicate cell %s", c.ID())
		}
		seen[c.ID()] = true
		for _, a := range Required {
			if perAxis[a] == nil {
				perAxis[a] = map[string]int{}
			}
			perAxis[a][c.Get(a)]++
		}
	}
	want := map[Axis]int{AxisCA: 2, AxisMode: 2, AxisChecksum: 3, AxisStrictVerify: 3, AxisPath: 4}
	for a, n := range want {
		if len(perAxis[a]) != n {
			t.Errorf("axis %s has %d values in the full matrix, want %d: %v", a, len(perAxis[a]), n, perAxis[a])
		}
		for v, k := range perAxis[a] {
			if k != 144/n {
				t.Errorf("axis %s value %s appears %d times, want %d", a, v, k, 144/n)
			}
		}
	}
}

func TestEveryScenarioFileLoads(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "scenarios", "*.yaml"))
	if len(files) < 4 {
		t.Fatalf("found %d scenario files, want at least full, smoke, remedies, field-cases", len(files))
	}
	for _, f := range files {
		s, err := LoadScenario(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, c := range s.Cells {
			back, err := ParseID(c.ID())
			if err != nil {
				t.Errorf("%s: %v", f, err)
			}
			back.Note = c.Note
			if back.ID() != c.ID() || back.At() != c.At() {
				t.Errorf("%s: ID round trip %s -> %s", f, c.ID(), back.ID())
			}
		}
	}
}

// okCell is a valid cell in YAML flow style.
const okCell = "{ca: private, mode: strict, checksum: absent, strict-verify: unset, path: direct}"

func TestScenarioTextFields(t *testing.T) {
	doc := "name: \"42\"\ndescription: |\n  several\n  lines\ncells:\n  - {ca: private, mode: strict, checksum: absent, strict-verify: unset, path: direct, note: ' a note '}\n"
	s, err := ParseScenario("ok.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "42" || s.Description != "several\nlines" || len(s.Cells) != 1 || s.Cells[0].Note != "a note" {
		t.Errorf("name %q, description %q, cells %+v", s.Name, s.Description, s.Cells)
	}
}

func TestScenarioErrorsNameFileLineAndAllowedValues(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"unknown value", "cells:\n  - {ca: private, mode: strict, checksum: maybe, strict-verify: unset, path: direct}\n",
			[]string{"bad.yaml:2", `unknown checksum value "maybe"`, "absent, correct, wrong, empty"}},
		{"unknown axis", "matrices:\n  - ca: [private]\n    colour: [blue]\n",
			[]string{"bad.yaml:3", `unknown axis "colour"`, "strict-verify"}},
		{"unknown key", "name: x\nmatrix:\n  ca: [private]\n", []string{"bad.yaml:2", `unknown key "matrix"`, "matrices"}},
		{"missing axis", "cells:\n  - {ca: private, mode: strict}\n", []string{"bad.yaml:2", "missing axis checksum, strict-verify, path"}},
		{"duplicate", "cells:\n  - {ca: private, mode: strict, checksum: wrong, strict-verify: unset, path: direct}\n  - {ca: private, mode: strict, checksum: wrong, strict-verify: unset, path: direct}\n",
			[]string{"bad.yaml:3", "already selected on line 2"}},
		{"empty", "name: nothing\n", []string{"bad.yaml", "selects no cells"}},
		{"not yaml", "cells: [\n", []string{"bad.yaml", "not valid YAML"}},
		{"empty axis", "matrices:\n  - {ca: [], mode: strict, checksum: wrong, strict-verify: unset, path: direct}\n", []string{"bad.yaml:2", "axis ca has no values"}},
		{"axis twice in a cell", "cells:\n  - {ca: private, ca: public, mode: strict, checksum: wrong, strict-verify: unset, path: direct}\n",
			[]string{"bad.yaml:2", "axis ca given twice in one cell"}},
		{"second document", "cells:\n  - {ca: private, mode: strict, checksum: wrong, strict-verify: unset, path: direct}\n---\ncells: []\n",
			[]string{"bad.yaml:3", "second YAML document"}},
		{"empty file", "", []string{"bad.yaml is empty"}},
		{"comments only", "# nothing here\n", []string{"bad.yaml"}},
		{"cells twice", "cells:\n  - " + okCell + "\nname: x\ncells:\n  - {ca: public, mode: strict, checksum: wrong, strict-verify: unset, path: direct}\n",
			[]string{"bad.yaml:4", "key cells given twice in one scenario (first on line 1)"}},
		{"matrices twice", "matrices:\n  - {ca: [private], mode: strict, checksum: wrong, strict-verify: unset, path: [direct]}\nmatrices:\n  - {ca: [public], mode: strict, checksum: wrong, strict-verify: unset, path: [direct]}\n",
			[]string{"bad.yaml:3", "key matrices given twice in one scenario (first on line 1)"}},
		{"name twice", "name: a\ndescription: d\nname: b\ncells:\n  - " + okCell + "\n",
			[]string{"bad.yaml:3", "key name given twice in one scenario"}},
		{"note twice in a cell", "cells:\n  - {ca: private, mode: strict, checksum: wrong, strict-verify: unset, path: direct,\n     note: a, note: b}\n",
			[]string{"bad.yaml:3", "key note given twice in one cell (first on line 3)"}},
		{"axis twice in a matrix", "matrices:\n  - ca: [private]\n    mode: strict\n    checksum: wrong\n    strict-verify: unset\n    path: direct\n    ca: [public]\n",
			[]string{"bad.yaml:7", "axis ca given twice in one matrix (first on line 2)"}},
		{"name a list", "name: [a, b]\ncells:\n  - " + okCell + "\n", []string{"bad.yaml:1", "name: want a string, got a list"}},
		{"name a number", "name: 42\ncells:\n  - " + okCell + "\n", []string{"bad.yaml:1", "name: want a string, got a number (42)", "quote it"}},
		{"description a mapping", "description:\n  what: smoke\ncells:\n  - " + okCell + "\n", []string{"bad.yaml:2", "description: want a string, got a mapping"}},
		{"description a boolean", "description: true\ncells:\n  - " + okCell + "\n", []string{"bad.yaml:1", "description: want a string, got a boolean (true)"}},
		{"note a list", "cells:\n  - {ca: private, mode: strict, checksum: wrong, strict-verify: unset, path: direct,\n     note: [a, b]}\n",
			[]string{"bad.yaml:3", "note: want a string, got a list"}},
		{"note empty", "cells:\n  - ca: private\n    mode: strict\n    checksum: wrong\n    strict-verify: unset\n    path: direct\n    note:\n",
			[]string{"bad.yaml:7", "note: want a string, got nothing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScenario("bad.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatal("accepted a bad scenario")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadScenarioMissingFile(t *testing.T) {
	_, err := LoadScenario(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("want a not-exist error, got %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestShardsPartitionTheCells(t *testing.T) {
	s, err := LoadScenario(filepath.Join("..", "..", "scenarios", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	seen := map[string]int{}
	for i := 1; i <= n; i++ {
		part, err := Shard(s.Cells, i, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(part) < len(s.Cells)/n || len(part) > len(s.Cells)/n+1 {
			t.Errorf("shard %d/%d has %d cells", i, n, len(part))
		}
		again, _ := Shard(s.Cells, i, n)
		for k := range part {
			if part[k].ID() != again[k].ID() {
				t.Fatalf("shard %d/%d is not deterministic", i, n)
			}
			seen[part[k].ID()]++
		}
	}
	if len(seen) != len(s.Cells) {
		t.Fatalf("shards cover %d cells, want %d", len(seen), len(s.Cells))
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("cell %s is in %d shards", id, k)
		}
	}
}

func TestParseShard(t *testing.T) {
	good := map[string][2]int{"": {1, 1}, "1/1": {1, 1}, "2/4": {2, 4}, "3/3": {3, 3}, "10/12": {10, 12}}
	for s, want := range good {
		i, n, err := ParseShard(s)
		if err != nil || i != want[0] || n != want[1] {
			t.Errorf("ParseShard(%q) = %d, %d, %v; want %d/%d", s, i, n, err, want[0], want[1])
		}
	}
	bad := []string{
		"0/3", "4/3", "1/0", "x", "1", "/", "1/", "/3", "1/3/", "1/3/5",
		"1/3x", "1/3 ", " 1/3", "1 /3", "1/ 3", "02/2", "1/03", "+1/3", "-1/3", "1/+3",
		"1.0/3", "1/99999999999999999999", "１/3",
	}
	for _, s := range bad {
		_, _, err := ParseShard(s)
		if err == nil {
			t.Errorf("ParseShard(%q) accepted", s)
			continue
		}
		for _, w := range []string{fmt.Sprintf("%q", s), "i/n", "1 <= i <= n"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseShard(%q): error %q lacks %q", s, err, w)
			}
		}
	}
}

func TestLabelsAndIDs(t *testing.T) {
	c := Cell{CA: CAPublic, Mode: ModeSystemStore, Checksum: ChecksumAbsent, StrictVerify: StrictTrueUpper, Path: PathMITMTrusted, StrictVerifyAt: AtCurl}
	if got, want := c.ID(), "public/system-store/cs-absent/sv-TRUE/mitm-trusted/at-curl"; got != want {
		t.Errorf("ID %q, want %q", got, want)
	}
	want := []string{"ca:public", "mode:system-store", "checksum:absent", "strict-verify:uppercase-true", "path:mitm-trusted", "strict-verify-at:curl"}
	if got := strings.Join(c.Labels(), " "); got != strings.Join(want, " ") {
		t.Errorf("labels %q, want %q", got, want)
	}
	if _, err := ParseID("private/strict/cs-absent/sv-maybe/direct"); err == nil || !strings.Contains(err.Error(), "strict-verify") {
		t.Errorf("ParseID accepted an unknown value: %v", err)
	}
}

func TestLoadScenarioRefusesWhatIsNotARegularFile(t *testing.T) {
	if _, err := LoadScenario("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero as a scenario: %v", err)
	}
}
