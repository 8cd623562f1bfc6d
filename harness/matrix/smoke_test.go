package matrix_test

import (
	"path/filepath"
	"sort"
	"testing"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/oracle"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

// scenarios/smoke.yaml says it has one cell per verdict of the full matrix: it must, for the
// default script's era, or a smoke run passes without ever seeing a verdict the full run can
// produce.
func TestSmokeHasOneCellPerVerdictOfTheFullMatrix(t *testing.T) {
	profile, err := script.ParseProfile("strict+validate") // v0.15.0, the default script
	if err != nil {
		t.Fatal(err)
	}
	verdicts := func(name string) map[verdict.Verdict][]string {
		s, err := matrix.LoadScenario(filepath.Join("..", "..", "scenarios", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		out := map[verdict.Verdict][]string{}
		for _, c := range s.Cells {
			v := oracle.Expect(c, profile, oracle.Server{}).Verdict
			out[v] = append(out[v], c.ID())
		}
		return out
	}
	full, smoke := verdicts("full"), verdicts("smoke")
	for v := range full {
		if len(smoke[v]) != 1 {
			t.Errorf("the full matrix produces %s; smoke has %d cell(s) expecting it: %q", v, len(smoke[v]), smoke[v])
		}
	}
	for v, ids := range smoke {
		if _, ok := full[v]; !ok {
			t.Errorf("smoke expects %s (%q), which the full matrix never produces", v, ids)
		}
	}
	if t.Failed() {
		var names []string
		for v := range full {
			names = append(names, string(v))
		}
		sort.Strings(names)
		t.Logf("verdicts of the full matrix: %v", names)
	}
}
