package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/dockerx/dockertest"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/report"
)

// TestShardedRunsMergeIntoTheUnshardedRun runs the smoke scenario for real with the built CLI,
// once whole and once as shards 1/3, 2/3 and 3/3 (as three CI runners would), merges the shards
// with `agenttls report merge`, and checks that the merged run is the unsharded one: the same
// cells, the same verdicts, and a diff that finds nothing. Needs Docker; skipped under -short.
func TestShardedRunsMergeIntoTheUnshardedRun(t *testing.T) {
	dockertest.Require(t)
	root, err := config.FindModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "agenttls")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build agenttls: %v\n%s", err, out)
	}
	exe := func(args ...string) cliOut {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = root
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("agenttls %v: %v", args, err)
		}
		return cliOut{code, out.String(), errb.String()}
	}
	const scenario = "scenarios/smoke.yaml"
	base := t.TempDir()
	run := func(name, shard string) *report.Results {
		t.Helper()
		dir := filepath.Join(base, name)
		args := []string{"run", "-scenario", scenario, "-artifacts", dir, "-run-id", dockertest.RunID(t), "-procs", "3"}
		if shard != "" {
			args = append(args, "-shard", shard)
		}
		start := time.Now()
		r := exe(args...)
		if r.code != 0 {
			t.Fatalf("agenttls %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		res, err := report.Read(filepath.Join(dir, report.ResultsFile))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d cells in %s", name, len(res.Cells), time.Since(start).Round(time.Second))
		return res
	}

	full := run("full", "")
	cells := loadCells(t, scenario)
	var parts []string
	seen := map[string]string{}
	for i := 1; i <= 3; i++ {
		shard := fmt.Sprintf("%d/3", i)
		res := run("shard-"+strconv.Itoa(i), shard)
		want, err := matrix.Shard(cells, i, 3)
		if err != nil {
			t.Fatal(err)
		}
		if res.Shard != shard || len(res.Cells) != len(want) {
			t.Errorf("shard %s: %d cells (shard field %q), want %d", shard, len(res.Cells), res.Shard, len(want))
		}
		for _, c := range res.Cells {
			if other, dup := seen[c.ID]; dup {
				t.Errorf("cell %s ran in shard %s and in shard %s", c.ID, other, shard)
			}
			seen[c.ID] = shard
		}
		parts = append(parts, filepath.Join(base, "shard-"+strconv.Itoa(i), report.ResultsFile))
	}

	merged := filepath.Join(base, "merged")
	if r := exe(append([]string{"report", "merge", "-o", merged}, parts...)...); r.code != 0 || !strings.Contains(r.stdout, "3 part(s), complete: 6 cells (6 passed") {
		t.Fatalf("merge: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	m, err := report.Read(filepath.Join(merged, report.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(r *report.Results) []string {
		var out []string
		for _, c := range r.Cells {
			out = append(out, c.ID)
		}
		return out
	}
	if !slices.Equal(ids(m), ids(full)) || m.Shard != "" {
		t.Fatalf("merged cells %q (shard %q)\nunsharded cells %q", ids(m), m.Shard, ids(full))
	}
	for i, c := range m.Cells {
		if c.Observed != full.Cells[i].Observed || c.Expected != full.Cells[i].Expected {
			t.Errorf("%s: merged %s/%s, unsharded %s/%s", c.ID, c.Observed, c.Expected, full.Cells[i].Observed, full.Cells[i].Expected)
		}
		if _, err := os.Stat(filepath.Join(merged, c.Transcript)); err != nil {
			t.Errorf("%s: merged report lacks its transcript: %v", c.ID, err)
		}
	}
	if r := exe("report", "diff", filepath.Join(base, "full"), merged); r.code != 0 || !strings.Contains(r.stdout, "6 compared") || !strings.Contains(r.stdout, "6 unchanged") {
		t.Errorf("diff unsharded vs merged: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
