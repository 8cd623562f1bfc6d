package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agenttls/agenttls/harness/verdict"
)

// JUnit view: one testsuite, one testcase per cell. CI systems key test history on the name, so
// the name is the cell ID alone (no labels, no versions) and the classname is a constant; the
// labels, verdicts and evidence ride in properties. Only failed cells carry detail, trimmed
// (the full record is results.json), and passing cells carry no output at all.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string           `xml:"name,attr"`
	Tests      int              `xml:"tests,attr"`
	Failures   int              `xml:"failures,attr"`
	Errors     int              `xml:"errors,attr"`
	Skipped    int              `xml:"skipped,attr"`
	Time       string           `xml:"time,attr"`
	Timestamp  string           `xml:"timestamp,attr,omitempty"`
	Properties *junitProperties `xml:"properties,omitempty"`
	Cases      []junitCase      `xml:"testcase"`
}

type junitProperties struct {
	List []junitProperty `xml:"property"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name       string           `xml:"name,attr"`
	Classname  string           `xml:"classname,attr"`
	Time       string           `xml:"time,attr"`
	Properties *junitProperties `xml:"properties,omitempty"`
	Failure    *junitFailure    `xml:"failure,omitempty"`
	Skipped    *junitSkipped    `xml:"skipped,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

// JUnitClassname is the classname of every testcase.
const JUnitClassname = "agenttls"

// Limits on what a failure carries; the full text is in results.json and the transcript.
const (
	junitFieldMax   = 400
	junitFailureMax = 2000
)

// WriteJUnit writes r as JUnit XML.
func WriteJUnit(w io.Writer, r *Results) error {
	if r == nil {
		return fmt.Errorf("write junit: nil Results")
	}
	n := r.Counts()
	suiteTime := runDuration(r)
	cells := append([]CellResult(nil), r.Cells...)
	sort.SliceStable(cells, func(i, j int) bool { return cells[i].ID < cells[j].ID })
	if suiteTime == 0 {
		for _, c := range cells {
			suiteTime += c.Duration
		}
	}
	suite := junitSuite{
		Name: JUnitClassname, Tests: n.Total, Failures: n.Failed, Skipped: n.Skipped,
		Time: seconds(suiteTime),
	}
	if !r.Started.IsZero() {
		suite.Timestamp = r.Started.UTC().Format(time.RFC3339)
	}
	suite.Properties = props(
		"runId", r.RunID, "toolVersion", r.ToolVersion, "backend", r.Backend,
		"rancherVersion", r.RancherVersion, "systemAgentVersion", r.SystemAgentVersion,
		"scriptSha256", r.ScriptSHA256, "scriptProfile", r.ScriptProfile,
		"scenario", r.Scenario, "shard", r.Shard,
		"exposed", strconv.Itoa(n.Exposed), "exposedExpected", strconv.Itoa(n.ExposedExpected),
	)
	for _, c := range cells {
		tc := junitCase{Name: c.ID, Classname: JUnitClassname, Time: seconds(c.Duration)}
		kv := []string{
			"labels", strings.Join(c.Labels, ","),
			"expected", string(c.Expected),
			"observed", string(observedUnlessSkipped(c)),
			"evidence", oneLine(c.Evidence.String(), junitFieldMax),
		}
		if c.Retried() {
			kv = append(kv, "attempts", strconv.Itoa(c.Attempts))
		}
		tc.Properties = props(kv...)
		switch c.Status {
		case StatusFailed:
			tc.Failure = &junitFailure{
				Message: failureHeadline(c),
				Type:    orDash(string(c.Observed)),
				Body:    failureBody(c),
			}
		case StatusSkipped:
			tc.Skipped = &junitSkipped{Message: oneLine(c.Message, junitFieldMax)}
		}
		suite.Cases = append(suite.Cases, tc)
	}
	doc := junitSuites{
		Name: JUnitClassname, Tests: n.Total, Failures: n.Failed, Skipped: n.Skipped,
		Time: suite.Time, Suites: []junitSuite{suite},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	return nil
}

// observedUnlessSkipped is the observed verdict of a cell that ran; a skipped cell observed
// nothing, whatever placeholder it carries.
func observedUnlessSkipped(c CellResult) verdict.Verdict {
	if c.Status == StatusSkipped {
		return ""
	}
	return c.Observed
}

// props builds properties from name/value pairs, leaving out empty values.
func props(kv ...string) *junitProperties {
	p := &junitProperties{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			p.List = append(p.List, junitProperty{Name: kv[i], Value: kv[i+1]})
		}
	}
	if len(p.List) == 0 {
		return nil
	}
	return p
}

// failureHeadline is the one-line failure message.
func failureHeadline(c CellResult) string {
	s := fmt.Sprintf("expected %s, observed %s", orDash(string(c.Expected)), orDash(string(c.Observed)))
	if c.Observed == c.Expected && c.Message != "" {
		s += ": " + oneLine(c.Message, 160)
	}
	if c.Retried() {
		s += fmt.Sprintf(" (after %d attempts)", c.Attempts)
	}
	return s
}

// failureBody is the trimmed detail of a failed cell: verdicts, evidence, where to look next
// (first, so trimming never drops them), then the free text.
func failureBody(c CellResult) string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	line("expected", string(c.Expected))
	line("observed", string(c.Observed))
	line("evidence", oneLine(c.Evidence.String(), junitFieldMax))
	line("transcript", c.Transcript)
	line("rerun", c.Rerun)
	if c.Retried() {
		line("attempts", strconv.Itoa(c.Attempts))
	}
	line("message", oneLine(c.Message, junitFieldMax))
	line("reason", oneLine(c.Reason, junitFieldMax))
	return cut(b.String(), junitFailureMax)
}
