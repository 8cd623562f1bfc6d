package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/dockerx/dockertest"
	"github.com/agenttls/agenttls/harness/images"
	"github.com/agenttls/agenttls/harness/report"
	"github.com/agenttls/agenttls/harness/sweep"
	"github.com/agenttls/agenttls/harness/verdict"
)

// These tests run the built agenttls binary the way a user does: the suite's self-tests (a
// deliberately wrong expectation must fail and name its cell), a clean run leaves nothing, an
// interrupted run leaves nothing, and bad input is refused before anything starts.

var agenttlsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agenttls-bin-")
	if err != nil {
		panic(err)
	}
	agenttlsBin = filepath.Join(dir, "agenttls")
	out, err := exec.Command("go", "build", "-o", agenttlsBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build agenttls: %v\n%s", err, out)
		os.Exit(1)
	}
	code := func() int { defer os.RemoveAll(dir); dockertest.Main(m); return 0 }()
	os.Exit(code)
}

type runOut struct {
	code   int
	output string
}

// hideDocker, given as an env entry, runs agenttls in a mount namespace where /run (and so the
// Docker socket) is an empty tmpfs: a machine with no Docker daemon. Needs root, as CI is.
const hideDocker = "AGENTTLS_TEST_HIDE_DOCKER=1"

func agenttls(t *testing.T, env []string, args ...string) runOut {
	t.Helper()
	root, err := config.FindModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return agenttlsIn(t, root, env, args...)
}

// agenttlsIn runs agenttls in the working directory dir.
func agenttlsIn(t *testing.T, dir string, env []string, args ...string) runOut {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	name := agenttlsBin
	for _, e := range env {
		if e == hideDocker {
			args = append([]string{"-m", "sh", "-c", `mount -t tmpfs none /run && unset DOCKER_HOST && exec "$0" "$@"`, agenttlsBin}, args...)
			name = "unshare"
		}
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("agenttls %v: %v", args, err)
	}
	output := out.String()
	// A suite that broke: its log goes with the output, since the test's folder is removed.
	if m := fullLog.FindStringSubmatch(output); m != nil {
		if log, err := os.ReadFile(m[1]); err == nil {
			output += "\n--- " + m[1] + " (last 6000 bytes) ---\n" + string(log[max(0, len(log)-6000):])
		}
	}
	return runOut{code, output}
}

// fullLog finds the suite's log that agenttls names when the suite wrote no results.
var fullLog = regexp.MustCompile(`(?m)^full log: (\S+)$`)

// readRun reads the results.json a run wrote into dir.
func readRun(t *testing.T, dir string) *report.Results {
	t.Helper()
	res, err := report.Read(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// leftovers lists what Docker still holds of run id.
func leftovers(t *testing.T, cli client.APIClient, id string) []string {
	t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", sweep.LabelRunID+"="+id))
	var left []string
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		left = append(left, "container "+strings.Join(c.Names, ","))
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		left = append(left, "network "+n.Name)
	}
	is, err := cli.ImageList(ctx, image.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range is {
		left = append(left, "image "+strings.Join(i.RepoTags, ","))
	}
	return left
}

func TestSmokeRunPassesAndLeavesNothing(t *testing.T) {
	cli := dockertest.Require(t)
	id := dockertest.RunID(t)
	dir := t.TempDir()
	r := agenttls(t, nil, "run", "-scenario", "scenarios/smoke.yaml", "-artifacts", dir, "-run-id", id, "-procs", "3")
	if r.code != 0 {
		t.Fatalf("smoke run exit %d:\n%s", r.code, r.output)
	}
	res := readRun(t, dir)
	c := res.Counts()
	if c.Total != 6 || c.Passed != 6 {
		t.Fatalf("smoke: %+v\n%s", c, r.output)
	}
	// Every verdict the smoke scenario names was observed for real.
	seen := map[verdict.Verdict]bool{}
	for _, cell := range res.Cells {
		seen[cell.Observed] = true
		if _, err := os.Stat(filepath.Join(dir, cell.Transcript)); err != nil {
			t.Errorf("cell %s: transcript: %v", cell.ID, err)
		}
	}
	for _, v := range []verdict.Verdict{verdict.Registered, verdict.FatalStrictNoChecksum, verdict.RejectedChecksumMismatch, verdict.RejectedNoCACerts, verdict.Exposed} {
		if !seen[v] {
			t.Errorf("smoke run observed no %s cell", v)
		}
	}
	for _, f := range []string{"junit.xml", "summary.md", "report.html"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("report %s: %v", f, err)
		}
	}
	if !strings.Contains(r.output, "[6/6]") {
		t.Errorf("no per-cell progress in the output:\n%s", r.output)
	}
	if left := leftovers(t, cli, id); len(left) > 0 {
		t.Errorf("run %s left: %v", id, left)
	}
}

func TestFlippedOracleFailsAndNamesTheCell(t *testing.T) {
	cli := dockertest.Require(t)
	id := dockertest.RunID(t)
	dir := t.TempDir()
	flipped := "public/strict/cs-absent/sv-unset/direct"
	other := "private/strict/cs-correct/sv-unset/direct"
	r := agenttls(t, nil, "run", "-cell", flipped+","+other, "-flip-oracle", flipped, "-artifacts", dir, "-run-id", id, "-procs", "2")
	if r.code == 0 {
		t.Fatalf("a deliberately wrong expectation did not fail the run:\n%s", r.output)
	}
	res := readRun(t, dir)
	failed := res.Failed()
	if len(failed) != 1 || failed[0].ID != flipped {
		t.Fatalf("want exactly %s failed, got %+v", flipped, failed)
	}
	if failed[0].Observed != verdict.FatalStrictNoChecksum {
		t.Errorf("the flipped cell's observation changed: %s", failed[0].Observed)
	}
	if !strings.Contains(r.output, "FAIL "+flipped) || !strings.Contains(r.output, "CELL='"+flipped+"'") {
		t.Errorf("the output does not name the failing cell and its rerun command:\n%s", r.output)
	}
	if left := leftovers(t, cli, id); len(left) > 0 {
		t.Errorf("run %s left: %v", id, left)
	}
}

func TestInterruptedRunLeavesNothing(t *testing.T) {
	cli := dockertest.Require(t)
	root, _ := config.FindModuleRoot()
	id := dockertest.RunID(t)
	dir := t.TempDir()
	cmd := exec.Command(agenttlsBin, "run", "-artifacts", dir, "-run-id", id, "-procs", "3")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once cells are running (containers of the run exist and some cells finished).
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, "progress.log"))
		if strings.Count(string(b), "PASS ")+strings.Count(string(b), "FAIL ") >= 3 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(leftovers(t, cli, id)) == 0 {
		t.Fatalf("nothing of run %s was running when the test meant to interrupt it:\n%s", id, out.String())
	}
	// A second run into the folder of a run going on is refused; the first's reports stay.
	second := dockertest.RunID(t)
	if r := agenttls(t, nil, "run", "-artifacts", dir, "-run-id", second, "-cell", "private/strict/cs-correct/sv-unset/direct"); r.code != exitBadInput ||
		!strings.Contains(r.output, "in use by run "+id) {
		t.Errorf("a second run into the folder of run %s: exit %d:\n%s", id, r.code, r.output)
	}
	if _, err := os.Stat(filepath.Join(dir, "progress.log")); err != nil {
		t.Errorf("the second run touched the first's folder: %v", err)
	}
	if left := leftovers(t, cli, second); len(left) > 0 {
		t.Errorf("the refused run left: %v", left)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Errorf("interrupted run: %v, want exit 130\n%s", err, out.String())
	}
	if left := leftovers(t, cli, id); len(left) > 0 {
		t.Errorf("interrupted run %s left: %v\n%s", id, left, out.String())
	}
	// Whatever the suite wrote of the run says it was interrupted, and is not compared.
	if res, err := report.Read(filepath.Join(dir, "results.json")); err == nil {
		if !res.Interrupted {
			t.Errorf("results.json of the interrupted run is not marked interrupted")
		}
		for _, c := range res.Cells {
			if c.Status != report.StatusPassed && !strings.Contains(c.Message, "interrupted") {
				t.Errorf("%s (%s) does not say the run was interrupted: %q", c.ID, c.Status, c.Message)
			}
		}
		if _, err := report.Diff(res, res); err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Errorf("diff of an interrupted run: %v", err)
		}
	}
	if !strings.Contains(out.String(), "interrupted") {
		t.Errorf("no word of the interruption:\n%s", out.String())
	}
}

func TestBadInputIsRefusedBeforeAnythingStarts(t *testing.T) {
	cli := dockertest.Require(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("cells:\n  - {ca: private, mode: lenient, checksum: absent, strict-verify: unset, path: direct}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(t.TempDir(), "ro")
	if err := os.WriteFile(readOnly, nil, 0o444); err != nil { // a file where a folder must go
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"unknown version", nil, []string{"-sa-version", "v0.3.999"}, []string{"v0.3.999", "v0.3.4", "v0.15.0"}},
		{"not a version", nil, []string{"-sa-version", "latest"}, []string{"latest"}},
		{"malformed scenario", nil, []string{"-scenario", bad}, []string{bad + ":2", `unknown mode value "lenient"`, "strict, system-store"}},
		{"missing scenario", nil, []string{"-scenario", "scenarios/nope.yaml"}, []string{"nope.yaml"}},
		{"unknown cell", nil, []string{"-cell", "private/strict/cs-maybe/sv-unset/direct"}, []string{`unknown checksum value "maybe"`}},
		{"unwritable artifacts", nil, []string{"-artifacts", filepath.Join(readOnly, "sub")}, []string{"artifacts folder", "-artifacts"}},
		{"no docker", []string{hideDocker}, nil, []string{"docker daemon unreachable", "DOCKER_HOST"}},
		{"unknown flag", nil, []string{"-colour"}, []string{"-colour"}},
		{"bad label filter", nil, []string{"-label-filter", "mode:strict &&"}, []string{"-label-filter"}},
		{"label filter selects nothing", nil, []string{"-label-filter", "mode:lenient"}, []string{"selects none"}},
		{"docker host that does not answer", []string{"DOCKER_HOST=tcp://127.0.0.1:1"}, nil, []string{"DOCKER_HOST=tcp://127.0.0.1:1", "does not answer"}},
		{"cell given twice", nil, []string{"-cell", "private/strict/cs-correct/sv-unset/direct,private/strict/cs-correct/sv-unset/direct"}, []string{"given twice"}},
		{"empty shard", nil, []string{"-cell", "private/strict/cs-correct/sv-unset/direct", "-shard", "2/2"}, []string{"shard 2/2", "holds none"}},
		{"no processes", nil, []string{"-procs", "0"}, []string{"-procs 0"}},
		{"bad run id", nil, []string{"-run-id", "Run 1/x"}, []string{"-run-id", "lower-case"}},
		{"version and script file", nil, []string{"-sa-version", "v0.3.4", "-script-file", "/etc/hostname"}, []string{"sa-version v0.3.4", "give one of them"}},
		{"bool env that is no bool", []string{"AGENTTLS_KEEP=yes"}, nil, []string{"AGENTTLS_KEEP", "true or false"}},
		{"scenario as an argument", nil, []string{"scenarios/smoke.yaml"}, []string{"unexpected arguments", "flags only"}},
		{"hostname that is no DNS name", nil, []string{"-hostname", "bad host;id"}, []string{"hostname", "DNS name"}},
		{"hostname that is an address", nil, []string{"-hostname", "10.1.2.3"}, []string{"not an IP address"}},
		{"script file that never ends", nil, []string{"-script-file", "/dev/zero"}, []string{"not a regular file"}},
		{"flipped cell not selected", nil, []string{"-cell", "private/strict/cs-correct/sv-unset/direct", "-flip-oracle", "public/strict/cs-absent/sv-unset/direct"}, []string{"-flip-oracle", "not among"}},
		{"label with capitals", nil, []string{"-label-filter", "strict-verify:TRUE"}, []string{"uppercase-true", "without regard to case"}},
		{"shard with trailing junk", nil, []string{"-shard", "1/3x"}, []string{"1/3x"}},
		{"artifacts among the sources", nil, []string{"-artifacts", "harness"}, []string{"harness/", "own files"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := dockertest.RunID(t)
			args := append([]string{"run", "-run-id", id, "-artifacts", t.TempDir()}, tc.args...)
			r := agenttls(t, tc.env, args...)
			if r.code != exitBadInput {
				t.Fatalf("exit %d, want %d (refused):\n%s", r.code, exitBadInput, r.output)
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(r.output), strings.ToLower(w)) {
					t.Errorf("output lacks %q:\n%s", w, r.output)
				}
			}
			if strings.Contains(r.output, "panic") || strings.Contains(r.output, "goroutine ") {
				t.Errorf("a panic instead of an error:\n%s", r.output)
			}
			if left := leftovers(t, cli, id); len(left) > 0 {
				t.Errorf("bad input left: %v", left)
			}
		})
	}
}

// The Rancher tier's whole code path (admin API login, server-url, custom cluster, Rancher's
// nodeCommand, mode switches, k3d-managed nodes, the machine check) with the emulator standing in
// for the rancher/rancher image: one cell's expectation is flipped, so one cell fails, and the
// run must still remove every k3d node and container it made.
func TestRancherTierWithStandInFailsTheFlippedCellAndLeavesNothing(t *testing.T) {
	cli := dockertest.Require(t)
	id := dockertest.RunID(t)
	dir := t.TempDir()
	flipped := "public/strict/cs-absent/sv-unset/direct"
	registered := "private/strict/cs-absent/sv-unset/direct"
	switched := "private/system-store/cs-absent/sv-false/mitm"
	r := agenttls(t, nil, "run", "-backend", "rancher", "-rancher-image", config.RancherImageEmulator, "-nodes", "k3d",
		"-cell", flipped+","+registered+","+switched, "-flip-oracle", flipped, "-artifacts", dir, "-run-id", id, "-procs", "2")
	if r.code != 1 {
		t.Fatalf("Rancher tier with a flipped cell: exit %d, want 1:\n%s", r.code, r.output)
	}
	res := readRun(t, dir)
	if res.Backend != config.BackendRancher {
		t.Errorf("results.json backend %q, want %q", res.Backend, config.BackendRancher)
	}
	byID := map[string]report.CellResult{}
	for _, c := range res.Cells {
		byID[c.ID] = c
	}
	if c := byID[flipped]; c.Status != report.StatusFailed || c.Observed != verdict.FatalStrictNoChecksum {
		t.Errorf("flipped cell: status %s observed %s, want failed with %s observed", c.Status, c.Observed, verdict.FatalStrictNoChecksum)
	}
	if c := byID[registered]; c.Status != report.StatusPassed || c.Observed != verdict.Registered {
		t.Errorf("%s: status %s observed %s (%s), want passed and registered", registered, c.Status, c.Observed, c.Message)
	}
	if c := byID[switched]; c.Status != report.StatusPassed {
		t.Errorf("%s (needs agent-tls-mode switched to system-store): status %s observed %s (%s)", switched, c.Status, c.Observed, c.Message)
	}
	// The registration command the node ran is the one Rancher rendered (its shape, not ours).
	if c := byID[registered]; !strings.Contains(c.Command, "--token") || !strings.Contains(c.Command, "system-agent-install.sh") {
		t.Errorf("%s ran %q: not a nodeCommand", registered, c.Command)
	}
	if !strings.Contains(r.output, "FAIL "+flipped) {
		t.Errorf("the output does not name the failing cell:\n%s", r.output)
	}
	if left := leftovers(t, cli, id); len(left) > 0 {
		t.Errorf("Rancher-tier run %s left: %v", id, left)
	}
}

// A Rancher image that cannot be had: every cell is reported skipped with the reason and the
// oracle's expectation, never silently; under -fail-on-skip (what `make e2e` and the gate use)
// the run fails with exit 3, and nothing is left running either way.
func TestRancherTierWithoutImageIsSkippedWithReason(t *testing.T) {
	cli := dockertest.Require(t)
	const img = "agenttls/no-such-rancher:v0.0.0"
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"reported", nil, 0},
		{"fail-on-skip", []string{"-fail-on-skip"}, exitSkipped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := dockertest.RunID(t)
			dir := t.TempDir()
			args := append([]string{"run", "-backend", "rancher", "-rancher-image", img, "-scenario", "scenarios/smoke.yaml",
				"-artifacts", dir, "-run-id", id, "-procs", "2"}, tc.args...)
			r := agenttls(t, nil, args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", r.code, tc.code, r.output)
			}
			res := readRun(t, dir)
			if n := res.Counts(); n.Total != 6 || n.Skipped != 6 {
				t.Fatalf("counts %+v, want all 6 cells skipped", n)
			}
			for _, c := range res.Cells {
				if !strings.Contains(c.Message, img) || c.Expected == "" {
					t.Errorf("%s: skipped without the image in its reason or without the expectation: %q / %q", c.ID, c.Message, c.Expected)
				}
			}
			if !strings.Contains(r.output, "SKIP") || !strings.Contains(r.output, img) {
				t.Errorf("the output does not show the skips and their reason:\n%s", r.output)
			}
			if tc.code == exitSkipped && !strings.Contains(r.output, "-fail-on-skip") {
				t.Errorf("the failure does not say why:\n%s", r.output)
			}
			if left := leftovers(t, cli, id); len(left) > 0 {
				t.Errorf("run %s left: %v", id, left)
			}
		})
	}
}

// -label-filter selects the cells that run, not only the count the progress shows.
func TestLabelFilterRunsOnlyTheSelectedCells(t *testing.T) {
	cli := dockertest.Require(t)
	id := dockertest.RunID(t)
	dir := t.TempDir()
	r := agenttls(t, nil, "run", "-scenario", "scenarios/smoke.yaml", "-label-filter", "ca:private && !path:mitm",
		"-artifacts", dir, "-run-id", id, "-procs", "2")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output)
	}
	res := readRun(t, dir)
	if len(res.Cells) != 2 {
		t.Fatalf("%d cells ran, want the 2 private direct cells of the smoke set:\n%s", len(res.Cells), r.output)
	}
	for _, c := range res.Cells {
		if c.Params.CA != "private" || c.Params.Path != "direct" {
			t.Errorf("cell %s ran, but the filter excludes it", c.ID)
		}
	}
	if strings.Contains(r.output, "[3/") {
		t.Errorf("progress counted past the selection:\n%s", r.output)
	}
	if left := leftovers(t, cli, id); len(left) > 0 {
		t.Errorf("run %s left: %v", id, left)
	}
}

// A script given as a file has no version: the run is identified by the script's hash.
func TestScriptFileRunWritesItsResults(t *testing.T) {
	dockertest.Require(t)
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/rancher/system-agent@v0.15.0").Output()
	if err != nil {
		t.Fatalf("go mod download: %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download -json: %v %s", err, out)
	}
	// A relative path is the working directory's, as with any command: run from cmd/ here.
	root, _ := config.FindModuleRoot()
	copied := filepath.Join(t.TempDir(), "my-install.sh")
	body, err := os.ReadFile(filepath.Join(mod.Dir, "install.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copied, body, 0o644); err != nil {
		t.Fatal(err)
	}
	wd := filepath.Join(root, "cmd")
	rel, err := filepath.Rel(wd, copied)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cell := "private/strict/cs-correct/sv-unset/direct"
	// The expectation is flipped, so that there is a failure to rerun below.
	r := agenttlsIn(t, wd, nil, "run", "-script-file", rel, "-cell", cell, "-flip-oracle", cell, "-artifacts", dir, "-run-id", dockertest.RunID(t), "-procs", "1")
	if r.code != exitRegression {
		t.Fatalf("exit %d, want %d:\n%s", r.code, exitRegression, r.output)
	}
	res := readRun(t, dir)
	if res.SystemAgentVersion != "" || len(res.ScriptSHA256) != 64 || res.ScriptSource != "file "+copied {
		t.Errorf("a file's run: version %q, sha %q, source %q", res.SystemAgentVersion, res.ScriptSHA256, res.ScriptSource)
	}
	// The run's folder keeps the script it ran, and the cell's rerun command reruns it as the
	// run ran it (-rerun-failed of the run with -cell).
	if saved, err := os.ReadFile(filepath.Join(dir, "install.sh")); err != nil || !bytes.Equal(saved, body) {
		t.Errorf("the run's install.sh is not the script it ran (%v)", err)
	}
	if c := res.Cells[0]; !strings.Contains(c.Rerun, "-rerun-failed "+filepath.Join(dir, "results.json")) || !strings.Contains(c.Rerun, "CELL='"+cell+"'") {
		t.Errorf("rerun command %q does not rerun the cell from this run", c.Rerun)
	}
	if c := res.Counts(); c.Failed != 1 || res.Cells[0].Observed != verdict.Registered {
		t.Errorf("counts %+v, observed %s", c, res.Cells[0].Observed)
	}
	// The file changes afterwards; a rerun still runs what the run ran (its saved copy).
	if err := os.WriteFile(copied, append(body, "\n# edited\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	r = agenttls(t, []string{"ARTIFACTS="}, "run", "-rerun-failed", dir, "-cell", cell, "-run-id", dockertest.RunID(t), "-procs", "1")
	if r.code != 0 {
		t.Fatalf("rerun: exit %d:\n%s", r.code, r.output)
	}
	if r := agenttls(t, nil, "run", "-rerun-failed", dir, "-cell", "public/strict/cs-absent/sv-unset/direct", "-run-id", dockertest.RunID(t)); r.code != exitBadInput ||
		!strings.Contains(r.output, "not a cell of the run") {
		t.Errorf("rerun of a cell the run did not have: exit %d:\n%s", r.code, r.output)
	}
	again := readRun(t, filepath.Join(dir, "rerun"))
	if again.ScriptSHA256 != res.ScriptSHA256 || !strings.HasPrefix(again.ScriptSource, res.ScriptSource+" (as run "+res.RunID+" saved it)") {
		t.Errorf("the rerun ran sha %s from %q, the run %s from %q", again.ScriptSHA256, again.ScriptSource, res.ScriptSHA256, res.ScriptSource)
	}
}

// -rerun-failed reruns the failed cells with the failed run's script; bad input given later
// does not destroy the reports of that run; a run without failures has nothing to rerun.
func TestRerunFailedRunsAsTheRunRan(t *testing.T) {
	dockertest.Require(t)
	first, second := t.TempDir(), t.TempDir()
	cell := "public/strict/cs-absent/sv-unset/direct" // registered with v0.3.4, fatal from v0.3.11 on
	r := agenttls(t, nil, "run", "-sa-version", "v0.3.4", "-cell", cell+",private/strict/cs-correct/sv-unset/direct", "-flip-oracle", cell,
		"-artifacts", first, "-run-id", dockertest.RunID(t), "-procs", "2")
	if r.code != 1 {
		t.Fatalf("flipped run: exit %d:\n%s", r.code, r.output)
	}
	failed := filepath.Join(first, "results.json")

	// A typo in a later run with the same folder leaves the reports where they are.
	if r := agenttls(t, nil, "run", "-sa-version", "v0.3.999", "-artifacts", first, "-run-id", dockertest.RunID(t)); r.code == 0 {
		t.Fatalf("unknown version accepted:\n%s", r.output)
	}
	if _, err := report.Read(failed); err != nil {
		t.Fatalf("bad input destroyed the earlier run's results: %v", err)
	}

	// A rerun into the folder of the run it reads would clear that run: refused.
	if r := agenttls(t, nil, "run", "-rerun-failed", first, "-artifacts", first, "-run-id", dockertest.RunID(t)); r.code != exitBadInput ||
		!strings.Contains(r.output, "would clear it") {
		t.Fatalf("rerun into the run's own folder: exit %d:\n%s", r.code, r.output)
	}
	// As the README has it: the failures of a run again, by default into <run>/rerun; the path
	// given relative to the working directory (the repository root here).
	root, _ := config.FindModuleRoot()
	relFirst, err := filepath.Rel(root, failed)
	if err != nil {
		t.Fatal(err)
	}
	r = agenttls(t, []string{"ARTIFACTS="}, "run", "-rerun-failed", relFirst, "-run-id", dockertest.RunID(t), "-procs", "1")
	if r.code != 0 {
		t.Fatalf("rerun: exit %d:\n%s", r.code, r.output)
	}
	if !strings.Contains(r.output, "-sa-version=v0.3.4") {
		t.Errorf("the rerun does not say it took the run's version:\n%s", r.output)
	}
	if orig, err := report.Read(failed); err != nil || len(orig.Cells) != 2 {
		t.Fatalf("the rerun changed the run it read: %v", err)
	}
	res, err := report.Read(filepath.Join(first, "rerun", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.SystemAgentVersion != "v0.3.4" || len(res.Cells) != 1 || res.Cells[0].ID != cell || res.Cells[0].Observed != verdict.Registered {
		t.Errorf("rerun: version %s, cells %+v", res.SystemAgentVersion, res.Cells)
	}

	r = agenttls(t, nil, "run", "-rerun-failed", filepath.Join(first, "rerun"), "-artifacts", second, "-run-id", dockertest.RunID(t))
	if r.code != 0 || !strings.Contains(r.output, "nothing to rerun") {
		t.Errorf("rerun of a run without failures: exit %d:\n%s", r.code, r.output)
	}
}

// A folder that holds what looks like reports but no run (fixtures/ holds transcripts/) is not
// cleared, and a run id that containers still carry is not taken twice.
func TestRunRefusesFoldersAndRunIDsNotItsOwn(t *testing.T) {
	cli := dockertest.Require(t)
	root, _ := config.FindModuleRoot()
	before, err := os.ReadDir(filepath.Join(root, "fixtures", "transcripts"))
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "baseline")
	if err := os.Symlink(filepath.Join(root, "fixtures", "baseline"), link); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"fixtures", "fixtures/baseline", ".", link, filepath.Join(link, "sub")} {
		r := agenttls(t, nil, "run", "-artifacts", dir, "-cell", "private/strict/cs-correct/sv-unset/direct", "-run-id", dockertest.RunID(t))
		if r.code != exitBadInput || !strings.Contains(r.output, "the repository's own files") {
			t.Errorf("%s as the artifacts folder: exit %d:\n%s", dir, r.code, r.output)
		}
	}
	if after, err := os.ReadDir(filepath.Join(root, "fixtures", "transcripts")); err != nil || len(after) != len(before) {
		t.Fatalf("fixtures/transcripts was touched: %d files before, %d after (%v)", len(before), len(after), err)
	}
	// Elsewhere too, a folder with reports but no run is somebody else's.
	other := t.TempDir()
	if err := os.Mkdir(filepath.Join(other, "transcripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := agenttls(t, nil, "run", "-artifacts", other, "-cell", "private/strict/cs-correct/sv-unset/direct", "-run-id", dockertest.RunID(t))
	if r.code != exitBadInput || !strings.Contains(r.output, "holds transcripts but no results.json") {
		t.Errorf("a folder with transcripts/ but no run: exit %d:\n%s", r.code, r.output)
	}

	id := dockertest.RunID(t)
	ctx := context.Background()
	tools, err := images.Tools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: tools, Cmd: []string{"/agenttls-emulator"}, Labels: sweep.Labels(id)}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) })
	r = agenttls(t, nil, "run", "-run-id", id, "-artifacts", t.TempDir(), "-cell", "private/strict/cs-correct/sv-unset/direct")
	if r.code == 0 || !strings.Contains(r.output, "run id "+id+" is in use") {
		t.Errorf("a run id in use: exit %d:\n%s", r.code, r.output)
	}
	if _, err := cli.ContainerInspect(ctx, c.ID); err != nil {
		t.Errorf("the other run's container is gone: %v", err)
	}
}
