// Package bench measures the hermetic tier against its targets (DESIGN.md):
//
//   - the full matrix (144 cells) on 2 cores: under 60 s wall, images already built;
//   - per-cell harness overhead: under 50% of the script's own run time;
//   - a rejected-untrusted cell is decided within 2 s of the script's first failed check;
//
// Run with `make bench`. Targets are reported, not asserted: timings belong here, not in tests.
package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/report"
	"github.com/agenttls/agenttls/harness/verdict"
)

// BenchmarkFullMatrix runs `agenttls run` on the full matrix once per iteration (use
// -benchtime 1x). AGENTTLS_BENCH_PROCS=4,6,8 compares process counts; AGENTTLS_BENCH_SCENARIO
// picks another scenario.
func BenchmarkFullMatrix(b *testing.B) {
	root, bin := prepare(b)
	scenario := envOr("AGENTTLS_BENCH_SCENARIO", "scenarios/full.yaml")
	procs := strings.Split(envOr("AGENTTLS_BENCH_PROCS", ""), ",")
	for _, p := range procs {
		name := "procs=default"
		if p != "" {
			name = "procs=" + p
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				args := []string{"run", "-scenario", scenario, "-artifacts", dir}
				if p != "" {
					args = append(args, "-procs", p)
				}
				start := time.Now()
				out, err := run(root, bin, args...)
				wall := time.Since(start)
				if err != nil {
					b.Fatalf("agenttls run: %v\n%s", err, tail(out, 40))
				}
				r, err := report.Read(filepath.Join(dir, "results.json"))
				if err != nil {
					b.Fatal(err)
				}
				measure(b, r, wall)
			}
		})
	}
}

// BenchmarkUntrustedDecision runs scenarios/untrusted.yaml: cells whose connection check fails
// and would be retried for hours. It reports how long after curl's first failure the verdict
// was proven, and how long stopping the script then took.
func BenchmarkUntrustedDecision(b *testing.B) {
	root, bin := prepare(b)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		out, err := run(root, bin, "run", "-scenario", "scenarios/untrusted.yaml", "-artifacts", dir)
		if err != nil {
			b.Fatalf("agenttls run: %v\n%s", err, tail(out, 40))
		}
		r, err := report.Read(filepath.Join(dir, "results.json"))
		if err != nil {
			b.Fatal(err)
		}
		var decide, stop []float64
		for _, c := range r.Cells {
			if c.Observed != verdict.RejectedUntrusted {
				b.Fatalf("cell %s: %s, want rejected-untrusted", c.ID, c.Observed)
			}
			v, f := dur(c.Timings["verdict"]), dur(c.Timings["first-failure"])
			if v == 0 || f == 0 {
				b.Fatalf("cell %s was not decided on a failed check (verdict %s, first failure %s)", c.ID, c.Timings["verdict"], c.Timings["first-failure"])
			}
			decide = append(decide, v-f)
			stop = append(stop, dur(c.Timings["script"])-v)
		}
		b.ReportMetric(float64(len(r.Cells)), "cells")
		b.ReportMetric(maxOf(decide), "decide-after-failure-max-s")
		b.ReportMetric(maxOf(stop), "stop-after-decision-max-s")
		b.Logf("%d rejected-untrusted cells: decided %.3f s (max %.3f s) after curl's first failure, script stopped %.2f s (max %.2f s) after the decision; target: decided within 2 s of the first failed check",
			len(r.Cells), mean(decide), maxOf(decide), mean(stop), maxOf(stop))
	}
}

// prepare builds agenttls and the images (the targets are "images already built").
func prepare(b *testing.B) (root, bin string) {
	root, err := config.FindModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin = filepath.Join(b.TempDir(), "agenttls")
	build := exec.Command("go", "build", "-o", bin, "./cmd/agenttls")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build agenttls: %v\n%s", err, out)
	}
	if out, err := run(root, bin, "images"); err != nil {
		b.Fatalf("agenttls images: %v\n%s", err, out)
	}
	return root, bin
}

func measure(b *testing.B, r *report.Results, wall time.Duration) {
	var script, total, overhead, untrustedStop []float64
	for _, c := range r.Cells {
		s := dur(c.Timings["script"])
		script = append(script, s)
		total = append(total, c.Duration.Seconds())
		overhead = append(overhead, c.Duration.Seconds()-s)
		if c.Observed == verdict.RejectedUntrusted {
			untrustedStop = append(untrustedStop, s)
		}
	}
	suite := r.Finished.Sub(r.Started).Seconds()
	b.ReportMetric(float64(len(r.Cells)), "cells")
	b.ReportMetric(wall.Seconds(), "wall-s")
	b.ReportMetric(suite, "suite-s")
	b.ReportMetric(mean(script), "script-s/cell")
	b.ReportMetric(mean(overhead), "overhead-s/cell")
	b.ReportMetric(100*sum(overhead)/sum(script), "overhead-%")
	b.ReportMetric(pct(untrustedStop, 0.95), "untrusted-script-p95-s")
	b.Logf("%d cells (%d failed) in %.1f s wall (suite %.1f s; target < 60 s)", len(r.Cells), len(r.Failed()), wall.Seconds(), suite)
	b.Logf("per cell: script %.2f s mean, harness overhead %.2f s mean = %.0f%% of the script's time (target < 50%%)",
		mean(script), mean(overhead), 100*sum(overhead)/sum(script))
	b.Logf("rejected-untrusted (%d cells): the command ended %.2f s after it started (p95 %.2f s, max %.2f s); see BenchmarkUntrustedDecision for the decision time",
		len(untrustedStop), mean(untrustedStop), pct(untrustedStop, 0.95), maxOf(untrustedStop))
}

func run(dir, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func dur(s string) float64 {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0
	}
	return d.Seconds()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return sum(v) / float64(len(v))
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		if x > m {
			m = x
		}
	}
	return m
}

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[int(p*float64(len(s)-1))]
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
