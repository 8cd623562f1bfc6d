package main

import (
	"strings"
	"testing"
)

// list reads the scenario and shard as run does: flag, else environment, else the default.
func TestListTakesTheEnvironmentAsRunDoes(t *testing.T) {
	r := cli(t, "list")
	if r.code != 0 || !strings.Contains(r.stdout, "144 cell(s)") {
		t.Fatalf("default: exit %d\n%.300s%s", r.code, r.stdout, r.stderr)
	}
	t.Setenv("AGENTTLS_SCENARIO", "../../scenarios/smoke.yaml") // from cmd/agenttls, as the test runs
	t.Setenv("AGENTTLS_SHARD", "1/3")
	if r := cli(t, "list"); r.code != 0 || !strings.Contains(r.stdout, "2 cell(s)") || !strings.Contains(r.stdout, "smoke.yaml (shard 1/3)") {
		t.Errorf("AGENTTLS_SCENARIO and AGENTTLS_SHARD: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, "list", "-scenario", "../../scenarios/remedies.yaml", "-shard", "1/1"); r.code != 0 || !strings.Contains(r.stdout, "remedies.yaml") {
		t.Errorf("flags win: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, "list", "-shard", "200/200"); r.code != exitBadInput || !strings.Contains(r.stderr, "holds none") {
		t.Errorf("empty shard: exit %d\n%s", r.code, r.stderr)
	}
}
