//go:build e2e

// The conformance suite: one Ginkgo spec per matrix cell, labelled per axis value. It is the
// one place that reads flags and environment (-harness.*; see harness/config). Run it through
// `make conformance` (which runs `agenttls run`), or directly:
//
//	go tool ginkgo -p --procs 6 --label-filter='mode:strict && path:mitm' -tags e2e ./e2e -- -harness.sa-version=v0.15.0
package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/oracle"
	"github.com/agenttls/agenttls/harness/rancher"
	"github.com/agenttls/agenttls/harness/report"
	"github.com/agenttls/agenttls/harness/runner"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/testbed"
	"github.com/agenttls/agenttls/harness/verdict"
)

const flagPrefix = "harness."

var (
	cfg          = config.Default()
	cells        string // -harness.cells: comma-separated cell IDs run instead of the scenario's
	scenarioFlag string // -harness.scenario-name: names the selection in reports
	// The script agenttls run resolved and saved, so that every process runs those bytes:
	// -harness.script-saved (the file), -sha256, -version and -origin (where it came from).
	saved struct{ path, sha256, version, origin string }
)

func init() {
	// The harness labels and sweeps everything it creates, so it does not need Ryuk, whose image
	// cannot be pulled on a machine without a registry. A user who wants Ryuk sets the variable.
	if _, set := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !set {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	cfg.Bind(flag.CommandLine, flagPrefix)
	flag.StringVar(&cells, flagPrefix+"cells", "", "run exactly these cell IDs (comma-separated) instead of the scenario's cells")
	flag.StringVar(&scenarioFlag, flagPrefix+"scenario-name", "", "the name of the selection for reports (default: the scenario's)")
	flag.StringVar(&saved.path, flagPrefix+"script-saved", "", "run the install script agenttls run saved here (instead of resolving one)")
	flag.StringVar(&saved.sha256, flagPrefix+"script-sha256", "", "with -harness.script-saved: its sha256, checked")
	flag.StringVar(&saved.version, flagPrefix+"script-version", "", "with -harness.script-saved: its system-agent version, if any")
	flag.StringVar(&saved.origin, flagPrefix+"script-origin", "", "with -harness.script-saved: where it came from")
}

// suite is the state every spec of this process shares; set up in SynchronizedBeforeSuite.
type suite struct {
	desc     testbed.Description
	scenario *matrix.Scenario
	started  time.Time
	progress *os.File
	nodes    *runner.Nodes
	backend  runner.Backend
}

var st suite

func TestConformance(t *testing.T) {
	RegisterFailHandler(Fail)
	if err := cfg.Resolve(flag.CommandLine, flagPrefix, os.LookupEnv); err != nil {
		t.Fatalf("configuration: %v", err)
	}
	selected, scenario, err := selectCells()
	if err != nil {
		t.Fatalf("%v", err)
	}
	st.scenario = scenario
	Describe("agenttls", func() {
		for _, c := range selected {
			cellSpec(c)
		}
	})
	suiteCfg, repCfg := GinkgoConfiguration()
	if suiteCfg.Timeout < time.Hour {
		suiteCfg.Timeout = time.Hour
	}
	RunSpecs(t, "agenttls conformance", suiteCfg, repCfg)
}

// selectCells returns the cells of this run: the scenario's (or -harness.cells), then the shard.
func selectCells() ([]matrix.Cell, *matrix.Scenario, error) {
	var list []matrix.Cell
	scenario := &matrix.Scenario{Name: "cells", File: "-harness.cells"}
	if cells != "" {
		for _, id := range strings.Split(cells, ",") {
			c, err := matrix.ParseID(strings.TrimSpace(id))
			if err != nil {
				return nil, nil, err
			}
			list = append(list, c)
		}
		scenario.Cells = list
	} else {
		s, err := matrix.LoadScenario(cfg.Scenario)
		if err != nil {
			return nil, nil, err
		}
		scenario, list = s, s.Cells
	}
	i, n, _ := matrix.ParseShard(cfg.Shard)
	list, err := matrix.Shard(list, i, n)
	if cfg.Backend == config.BackendRancher {
		// One Rancher per CA kind switches agent-tls-mode between cell groups: keep each group
		// together so that it switches about once per group, not once per cell.
		slices.SortStableFunc(list, func(a, b matrix.Cell) int {
			return cmp.Or(cmp.Compare(a.CA, b.CA), cmp.Compare(a.Mode, b.Mode))
		})
	}
	return list, scenario, err
}

var _ = SynchronizedBeforeSuite(func(ctx SpecContext) []byte {
	// Process 1: the script under test, then the shared testbed for every cell of the run.
	s, err := loadScript(ctx)
	failOn(err, "install script")
	selected, _, err := selectCells()
	failOn(err, "cells")
	failOn(os.MkdirAll(cfg.Artifacts, 0o755), "artifacts folder")
	progress, err := os.OpenFile(progressPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	failOn(err, "progress file")
	defer progress.Close()
	opts := []testbed.Option{
		testbed.WithRunID(cfg.RunID), testbed.WithHostname(cfg.Hostname),
		testbed.WithPreamble(cfg.PreambleStyle), testbed.WithKeep(cfg.Keep),
		testbed.WithProgress(io.MultiWriter(progress, GinkgoWriter)),
		testbed.WithNodes(cfg.Nodes), testbed.WithArtifacts(cfg.Artifacts),
	}
	setupBound := cfg.SetupTimeout
	if cfg.Backend == config.BackendRancher {
		opts = append(opts, testbed.WithRancher(cfg.RancherImage, rancher.Intervals{
			Ping: cfg.WaitRancherPing, Ready: cfg.WaitRancherReady, Registration: cfg.WaitRancherRegistration,
			NodeRegistered: cfg.WaitNodeRegistered, Poll: 2 * time.Second,
		}))
		// Pulling and starting Rancher come on top of building images.
		setupBound += cfg.WaitRancherPing + cfg.WaitRancherReady + cfg.WaitRancherRegistration + 30*time.Minute
	}
	sctx, cancel := context.WithTimeout(ctx, setupBound)
	defer cancel()
	tb, err := testbed.Run(sctx, s, selected, opts...)
	DeferCleanup(func(ctx SpecContext) error { return tb.Terminate(ctx) }, NodeTimeout(2*time.Minute))
	if err != nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("the setup timeout (-setup-timeout %s, with the Rancher waits in the Rancher tier) ran out: raise it if this machine is slow or builds images for the first time: %w", cfg.SetupTimeout, err)
	}
	failOn(err, "testbed")
	b, err := json.Marshal(tb.Description)
	Expect(err).NotTo(HaveOccurred())
	return b
}, func(b []byte) {
	Expect(json.Unmarshal(b, &st.desc)).To(Succeed())
	st.started = time.Now()
	Expect(os.MkdirAll(cfg.Artifacts, 0o755)).To(Succeed(), "artifacts folder %s", cfg.Artifacts)
	f, err := os.OpenFile(progressPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	Expect(err).NotTo(HaveOccurred(), "progress file")
	st.progress = f
	DeferCleanup(f.Close)
	st.nodes = runner.NewNodes(&st.desc, cfg.FreshNodes, cfg.Keep)
	DeferCleanup(func(ctx SpecContext) error { return st.nodes.Close(ctx) }, NodeTimeout(2*time.Minute))
	if st.desc.Skip == "" {
		var err error
		st.backend, err = runner.NewBackend(&st.desc)
		Expect(err).NotTo(HaveOccurred(), "backend")
	}
}, NodeTimeout(3*time.Hour)) // bounded inside by the setup timeout (and the Rancher waits)

// failOn fails the spec with err's message alone (no struct dump), so setup errors read as
// the sentence they are.
func failOn(err error, what string) {
	if err != nil {
		Fail(what + ": " + err.Error())
	}
}

func loadScript(ctx context.Context) (*script.Script, error) {
	if saved.path != "" {
		return script.FromSaved(saved.path, saved.version, saved.origin, saved.sha256)
	}
	return script.Load(ctx, cfg.ScriptFile, cfg.ScriptURL, cfg.SystemAgentVersion)
}

func progressPath() string {
	if p := os.Getenv("AGENTTLS_PROGRESS"); p != "" {
		return p
	}
	return filepath.Join(cfg.Artifacts, "progress.log")
}

// expectation is the oracle's answer, or a deliberately wrong one for the -harness.flip-oracle
// self-test (which must make the suite fail and name the cell).
func expectation(c matrix.Cell) oracle.Expectation {
	e := runner.Expect(&st.desc, c)
	if cfg.FlipOracle == c.ID() {
		flipped := verdict.Registered
		if e.Verdict == verdict.Registered {
			flipped = verdict.RejectedUntrusted
		}
		e = oracle.Expectation{Verdict: flipped, Reason: "deliberately flipped by -harness.flip-oracle (self-test); the oracle said " + string(e.Verdict)}
	}
	return e
}

func cellSpec(c matrix.Cell) {
	It(c.ID(), Label(c.Labels()...), func(ctx SpecContext) {
		if st.desc.Skip != "" {
			// The tier cannot run here: every cell says so, with the reason, in every report.
			e := expectation(c)
			cr := report.CellResult{ID: c.ID(), Params: c, Labels: c.Labels(), Rerun: rerun(c), Status: report.StatusSkipped,
				Expected: e.Verdict, Reason: e.Reason, Observed: verdict.Unexpected, Message: cfg.Backend + " tier not run: " + st.desc.Skip}
			b, _ := json.Marshal(cr)
			AddReportEntry(entryName, string(b), ReportEntryVisibilityNever)
			fmt.Fprintln(st.progress, progressLine(cr))
			Skip(cr.Message)
		}
		res, err := runner.Run(ctx, &st.desc, st.nodes, c,
			runner.WithTimeout(cfg.CellTimeout), runner.WithArtifacts(cfg.Artifacts),
			runner.WithExpectation(expectation), runner.WithBackend(st.backend))
		cr := cellResult(c, res, err)
		b, _ := json.Marshal(cr)
		AddReportEntry(entryName, string(b), ReportEntryVisibilityNever)
		fmt.Fprintln(st.progress, progressLine(cr))
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Observed.Verdict).To(Equal(res.Expected.Verdict),
			"cell %s\n  expected %s: %s\n  observed %s: %s\n  transcript: %s\n  rerun: %s",
			c.ID(), res.Expected.Verdict, res.Expected.Reason, res.Observed.Verdict, res.Observed.Evidence,
			filepath.Join(cfg.Artifacts, res.Transcript), cr.Rerun)
	}, NodeTimeout(cfg.CellTimeout+time.Minute))
}

const entryName = "agenttls.cell"

// rerun is the command that runs cell c alone the way this run ran it: in the hermetic tier,
// -rerun-failed of this run's results with -cell, which takes the run's saved script, preamble,
// backend and nodes and writes into <artifacts>/rerun.
func rerun(c matrix.Cell) string {
	if cfg.Backend == config.BackendRancher {
		if cfg.RancherVersion != "" {
			return fmt.Sprintf("make e2e RANCHER_VERSION=%s CELL='%s'", cfg.RancherVersion, c.ID())
		}
		return fmt.Sprintf("make e2e ARGS='-backend rancher -rancher-image %s' CELL='%s'", cfg.RancherImage, c.ID())
	}
	results := filepath.Join(cfg.Artifacts, report.ResultsFile)
	if rel, err := filepath.Rel(cfg.ModuleRoot, results); err == nil && filepath.IsLocal(rel) {
		results = rel // make runs in the repository root
	}
	// ARGS is expanded by make, then split by the shell of make's recipe: $ doubled for make,
	// the path quoted for the recipe, the whole quoted for the shell it is pasted into.
	args := strings.ReplaceAll("-rerun-failed "+shellQuote(results), "$", "$$")
	return fmt.Sprintf("make conformance ARGS=%s CELL='%s'", shellQuote(args), c.ID())
}

// shellSafe is what a shell word may hold unquoted.
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

// shellQuote makes s one shell word: as it is when that is safe, else in single quotes.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func cellResult(c matrix.Cell, res *runner.Result, err error) report.CellResult {
	cr := report.CellResult{ID: c.ID(), Params: c, Labels: c.Labels(), Rerun: rerun(c), Status: report.StatusFailed}
	if res == nil {
		cr.Observed, cr.Message = verdict.Unexpected, err.Error()
		return cr
	}
	cr.Expected, cr.Reason = res.Expected.Verdict, res.Expected.Reason
	cr.Observed, cr.Evidence = res.Observed.Verdict, res.Observed.Evidence
	cr.Command, cr.Transcript, cr.Duration = res.Command, res.Transcript, res.Timings.Total
	cr.Timings = map[string]string{
		"node-start": res.Timings.NodeStart.String(), "script": res.Timings.Script.String(),
		"verdict": res.Timings.Verdict.String(), "evidence": res.Timings.Evidence.String(),
		"teardown": res.Timings.Teardown.String(), "first-failure": res.Timings.FirstFailure.String(),
	}
	switch {
	case err != nil:
		cr.Observed, cr.Message = verdict.Unexpected, err.Error()
	case cr.Observed == cr.Expected:
		cr.Status = report.StatusPassed
	default:
		cr.Message = fmt.Sprintf("expected %s, observed %s (%s)", cr.Expected, cr.Observed, res.Observed.Detail)
	}
	return cr
}

func progressLine(cr report.CellResult) string {
	mark := "PASS"
	switch cr.Status {
	case report.StatusPassed:
	case report.StatusSkipped:
		msg := cr.Message
		if len(msg) > 110 {
			msg = msg[:107] + "..."
		}
		return fmt.Sprintf("SKIP %-58s %s", cr.ID, msg)
	default:
		mark = "FAIL"
	}
	extra := ""
	if cr.Observed == verdict.Exposed {
		extra = "  [EXPOSED]"
	}
	return fmt.Sprintf("%s %-58s expected=%-27s observed=%-27s %5.1fs%s",
		mark, cr.ID, cr.Expected, cr.Observed, cr.Duration.Seconds(), extra)
}

// The reports: every process's cell entries, gathered once the whole suite is done.
var _ = ReportAfterSuite("agenttls reports", func(r Report) {
	res := &report.Results{
		Schema: report.SchemaVersion, RunID: st.desc.RunID, ToolVersion: toolVersion(),
		Backend: cfg.Backend, Started: r.StartTime, Finished: r.EndTime,
		RancherVersion: cfg.RancherVersion, SystemAgentVersion: scriptVersion(),
		ScriptSHA256: st.desc.ScriptSHA256, ScriptSource: st.desc.ScriptSource,
		ScriptProfile: st.desc.Profile.Name, Scenario: scenarioName(), Shard: cfg.Shard,
		Config: cfg.Redacted(),
	}
	for _, sr := range r.SpecReports {
		if sr.LeafNodeType != types.NodeTypeIt {
			continue
		}
		var cr report.CellResult
		found := false
		for _, e := range sr.ReportEntries {
			if e.Name == entryName {
				found = json.Unmarshal([]byte(e.StringRepresentation()), &cr) == nil
			}
		}
		if !found {
			c, err := matrix.ParseID(sr.LeafNodeText)
			if err != nil {
				continue
			}
			cr = report.CellResult{ID: c.ID(), Params: c, Labels: c.Labels(), Rerun: rerun(c), Status: report.StatusSkipped,
				Observed: verdict.Unexpected, Expected: verdict.Unexpected}
			switch {
			case sr.State.Is(types.SpecStateSkipped):
				cr.Message = "not selected (focus, label filter or an earlier failure)"
			default:
				cr.Status = report.StatusFailed
				cr.Message = fmt.Sprintf("did not run to a verdict: %s %s", sr.State, sr.Failure.Message)
			}
		}
		res.Cells = append(res.Cells, cr)
	}
	if res.RunID == "" {
		res.RunID = cfg.RunID
	}
	if len(res.Cells) == 0 {
		return
	}
	failOn(report.WriteAll(cfg.Artifacts, res, report.WithTranscripts(cfg.Artifacts)), "write reports to "+cfg.Artifacts)
})

// toolVersion is the agenttls version: AGENTTLS_VERSION when the runner sets it, else "dev".
func toolVersion() string {
	if v := os.Getenv("AGENTTLS_VERSION"); v != "" {
		return v
	}
	return "dev"
}

func scriptVersion() string {
	if st.desc.ScriptVersion != "" {
		return st.desc.ScriptVersion
	}
	return cfg.SystemAgentVersion
}

func scenarioName() string {
	if scenarioFlag != "" {
		return scenarioFlag
	}
	if st.scenario == nil {
		return ""
	}
	return st.scenario.Name
}
