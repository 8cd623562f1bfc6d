package report

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/verdict"
)

// Independent of the writer's types: what a CI JUnit consumer would read.
type xSuites struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Suites   []struct {
		Name     string  `xml:"name,attr"`
		Tests    int     `xml:"tests,attr"`
		Failures int     `xml:"failures,attr"`
		Skipped  int     `xml:"skipped,attr"`
		Props    []xProp `xml:"properties>property"`
		Cases    []struct {
			Name      string  `xml:"name,attr"`
			Classname string  `xml:"classname,attr"`
			Time      string  `xml:"time,attr"`
			Props     []xProp `xml:"properties>property"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			SystemOut *string `xml:"system-out"`
			SystemErr *string `xml:"system-err"`
			Inner     []struct {
				XMLName xml.Name
			} `xml:",any"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type xProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

func propMap(ps []xProp) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		m[p.Name] = p.Value
	}
	return m
}

func TestJUnit(t *testing.T) {
	dir := t.TempDir()
	r := synthRun(t, dir, "v0.15.0")
	r.Cells = append(r.Cells, extraCells()...)
	// Evidence straight from a terminal: colour codes, a NUL and a bell are not valid XML.
	bad := findCell(t, r, "private/system-store/cs-absent/sv-false/mitm")
	bad.Evidence.Line = "\x1b[31mcurl: (60) <cert> & \"quote\"\x00\a done\x1b[0m"
	if err := WriteAll(dir, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, JUnitFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(xml.Header)) {
		t.Error("no XML header")
	}
	var doc xSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit.xml does not parse: %v", err)
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("%d testsuites, want 1", len(doc.Suites))
	}
	s := doc.Suites[0]
	n := r.Counts()
	if s.Tests != 149 || s.Failures != n.Failed || s.Skipped != n.Skipped || doc.Tests != 149 || doc.Failures != 3 {
		t.Errorf("suite counts tests=%d failures=%d skipped=%d (root %d/%d), want 149/%d/%d", s.Tests, s.Failures, s.Skipped, doc.Tests, doc.Failures, n.Failed, n.Skipped)
	}
	sp := propMap(s.Props)
	if sp["systemAgentVersion"] != "v0.15.0" || sp["runId"] != r.RunID || sp["exposed"] == "" {
		t.Errorf("suite properties %v", sp)
	}
	if len(s.Cases) != len(r.Cells) {
		t.Fatalf("%d testcases, want %d", len(s.Cases), len(r.Cells))
	}
	names := make([]string, len(s.Cases))
	byID := map[string]CellResult{}
	for _, c := range r.Cells {
		byID[c.ID] = c
	}
	for i, tc := range s.Cases {
		names[i] = tc.Name
		c, ok := byID[tc.Name]
		if !ok {
			t.Fatalf("testcase name %q is not a cell ID", tc.Name)
		}
		if strings.Contains(tc.Name, "v0.") || strings.Contains(tc.Name, "ca:") || strings.ContainsAny(tc.Name, "[] ") {
			t.Errorf("testcase name %q carries versions or labels", tc.Name)
		}
		if tc.Classname != "agenttls" {
			t.Errorf("%s: classname %q", tc.Name, tc.Classname)
		}
		p := propMap(tc.Props)
		if p["labels"] != strings.Join(c.Labels, ",") || p["expected"] != string(c.Expected) || p["observed"] != string(c.Observed) {
			t.Errorf("%s: properties %v", tc.Name, p)
		}
		if tc.SystemOut != nil || tc.SystemErr != nil {
			t.Errorf("%s: has system-out/err: no timelines in this JUnit", tc.Name)
		}
		switch c.Status {
		case StatusPassed:
			if tc.Failure != nil || tc.Skipped != nil {
				t.Errorf("%s: passing cell has failure/skipped", tc.Name)
			}
			for _, in := range tc.Inner {
				if in.XMLName.Local != "properties" {
					t.Errorf("%s: passing cell carries <%s>", tc.Name, in.XMLName.Local)
				}
			}
		case StatusFailed:
			if tc.Failure == nil {
				t.Fatalf("%s: failed cell without failure element", tc.Name)
			}
			wantMsg := "expected " + string(c.Expected) + ", observed " + string(c.Observed)
			if !strings.HasPrefix(tc.Failure.Message, wantMsg) {
				t.Errorf("%s: failure message %q, want prefix %q", tc.Name, tc.Failure.Message, wantMsg)
			}
			for _, want := range []string{"expected: " + string(c.Expected), "observed: " + string(c.Observed), "evidence: ", "transcript: " + c.Transcript, "rerun: " + c.Rerun} {
				if !strings.Contains(tc.Failure.Body, want) {
					t.Errorf("%s: failure body lacks %q:\n%s", tc.Name, want, tc.Failure.Body)
				}
			}
			if len(tc.Failure.Body) > junitFailureMax*4 {
				t.Errorf("%s: failure body of %d bytes is not trimmed", tc.Name, len(tc.Failure.Body))
			}
		case StatusSkipped:
			if tc.Skipped == nil || tc.Failure != nil || tc.Skipped.Message == "" {
				t.Errorf("%s: skipped cell rendered as %+v", tc.Name, tc)
			}
		}
	}
	if !sort.StringsAreSorted(names) {
		t.Error("testcases are not sorted by name")
	}
	tc := s.Cases[sort.SearchStrings(names, "private/system-store/cs-absent/sv-false/mitm")]
	ev := propMap(tc.Props)["evidence"]
	if ev != `proxy: curl: (60) <cert> & "quote" done` {
		t.Errorf("evidence property %q: want control characters and colour codes removed", ev)
	}
}

func TestJUnitTrimsLongFailures(t *testing.T) {
	r := synthRun(t, "", "v0.15.0")
	c := findCell(t, r, "private/strict/cs-wrong/sv-false/tamper")
	c.Evidence = verdict.Evidence{Source: "stderr", Line: strings.Repeat("x", 10000)}
	c.Message = strings.Repeat("m", 10000)
	c.Reason = strings.Repeat("r", 10000)
	var b bytes.Buffer
	if err := WriteJUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var doc xSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range doc.Suites[0].Cases {
		if tc.Name != c.ID {
			continue
		}
		if n := len([]rune(tc.Failure.Body)); n > junitFailureMax {
			t.Errorf("failure body has %d characters, want at most %d", n, junitFailureMax)
		}
		if !strings.Contains(tc.Failure.Body, "rerun: "+c.Rerun) || !strings.Contains(tc.Failure.Body, "transcript: ") {
			t.Error("trimming dropped the transcript path or rerun command")
		}
		if ev := propMap(tc.Props)["evidence"]; len([]rune(ev)) > junitFieldMax {
			t.Errorf("evidence property has %d characters", len([]rune(ev)))
		}
		return
	}
	t.Fatal("cell not found in JUnit")
}
