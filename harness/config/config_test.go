package config

import (
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func resolve(t *testing.T, args []string, e map[string]string) (Config, error) {
	t.Helper()
	c := Default()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.Bind(fs, "harness.")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	err := c.Resolve(fs, "harness.", env(e))
	return c, err
}

func TestDefaults(t *testing.T) {
	c, err := resolve(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.SystemAgentVersion != "v0.15.0" || c.PreambleStyle != "export" || c.Backend != BackendEmulator {
		t.Fatalf("defaults: %+v", c)
	}
	if filepath.Base(c.Scenario) != "full.yaml" || !filepath.IsAbs(c.Artifacts) {
		t.Fatalf("paths not resolved: %s %s", c.Scenario, c.Artifacts)
	}
}

func TestFlagsBeatEnvOnlyWhenSet(t *testing.T) {
	c, err := resolve(t, []string{"-harness.sa-version=v0.3.4"}, map[string]string{"SA_VERSION": "v0.3.11", "AGENTTLS_CELL_TIMEOUT": "90s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SystemAgentVersion != "v0.3.4" {
		t.Errorf("flag lost to env: %s", c.SystemAgentVersion)
	}
	if c.CellTimeout != 90*time.Second {
		t.Errorf("env not applied to an unset flag: %s", c.CellTimeout)
	}
}

func TestRancherVersionPicksScriptAndPreamble(t *testing.T) {
	c, err := resolve(t, nil, map[string]string{"RANCHER_VERSION": "v2.10.3"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SystemAgentVersion != "v0.3.11" || c.PreambleStyle != "quoted" {
		t.Fatalf("v2.10.3 -> %s/%s, want v0.3.11/quoted", c.SystemAgentVersion, c.PreambleStyle)
	}
	c, err = resolve(t, nil, map[string]string{"RANCHER_VERSION": "v2.8.1"})
	if err != nil || c.SystemAgentVersion != "v0.3.4" || c.PreambleStyle != "none" {
		t.Fatalf("v2.8.1 -> %s/%s %v", c.SystemAgentVersion, c.PreambleStyle, err)
	}
}

func TestBadInputSaysWhatToDo(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-harness.backend=k8s"}, nil, "use emulator"},
		{nil, map[string]string{"RANCHER_VERSION": "v9.9.9"}, "not in fixtures/versions.yaml"},
		{nil, map[string]string{"RANCHER_VERSION": "2.9"}, "vX.Y.Z"},
		{nil, map[string]string{"AGENTTLS_CELL_TIMEOUT": "soon"}, "write e.g. 90s"},
		{[]string{"-harness.preamble=yaml"}, nil, "export, quoted or none"},
		{[]string{"-harness.shard=3/2"}, nil, "1 <= i <= n"},
		{[]string{"-harness.flip-oracle=private/strict"}, nil, "flip-oracle"},
		{[]string{"-harness.script-file=a", "-harness.script-url=b"}, nil, "at most one"},
	}
	for _, tc := range cases {
		_, err := resolve(t, tc.args, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want it to say %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestRancherTierSettings(t *testing.T) {
	c, err := resolve(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Nodes != NodesPlain || c.RancherImage != "" {
		t.Fatalf("hermetic defaults: nodes %q image %q", c.Nodes, c.RancherImage)
	}
	if _, err := resolve(t, []string{"-harness.backend=rancher"}, nil); err == nil || !strings.Contains(err.Error(), "RANCHER_VERSION") {
		t.Fatalf("rancher backend without a version: %v", err)
	}
	c, err = resolve(t, []string{"-harness.backend=rancher"}, map[string]string{"RANCHER_VERSION": "v2.15.0", "AGENTTLS_WAIT_RANCHER_PING": "3m"})
	if err != nil {
		t.Fatal(err)
	}
	if c.RancherImage != "rancher/rancher:v2.15.0" || c.Nodes != NodesK3d || c.WaitRancherPing != 3*time.Minute || c.SystemAgentVersion != "v0.15.0" {
		t.Fatalf("rancher tier: %+v", c)
	}
	c, err = resolve(t, []string{"-harness.backend=rancher", "-harness.rancher-image=emulator", "-harness.nodes=plain"}, nil)
	if err != nil || c.RancherImage != RancherImageEmulator || c.Nodes != NodesPlain {
		t.Fatalf("stand-in: %v %+v", err, c)
	}
	if _, err := resolve(t, []string{"-harness.nodes=kind"}, nil); err == nil {
		t.Fatal("an unknown node provider was accepted")
	}
	if _, err := resolve(t, []string{"-harness.wait-node-registered=0s"}, nil); err == nil {
		t.Fatal("a zero wait was accepted")
	}
}

// A rerun takes the earlier run's script, backend and nodes, except what the user chose; the
// script's options come as a group or not at all.
func TestInherit(t *testing.T) {
	earlier := map[string]string{"sa-version": "v0.3.4", "preamble": "quoted", "rancher-version": "", "backend": "emulator",
		"nodes": "plain", "hostname": "rancher.agenttls.test", "artifacts": "/old", "procs": "9"}
	inherit := func(args []string, e map[string]string) (Config, []string) {
		t.Helper()
		c := Default()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c.Bind(fs, "")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		taken := c.Inherit(earlier, fs, "", env(e))
		if err := c.Resolve(fs, "", env(e)); err != nil {
			t.Fatal(err)
		}
		return c, taken
	}
	c, taken := inherit(nil, nil)
	if c.SystemAgentVersion != "v0.3.4" || c.PreambleStyle != "quoted" || c.Nodes != NodesPlain || strings.HasPrefix(c.Artifacts, "/old") {
		t.Errorf("nothing set: %+v", c)
	}
	if strings.Join(taken, " ") != "-sa-version=v0.3.4 -preamble=quoted -backend=emulator -nodes=plain -hostname=rancher.agenttls.test" {
		t.Errorf("taken: %q", taken)
	}
	// The user's script wins, and none of the earlier run's script options is mixed in.
	c, taken = inherit([]string{"-script-file", "/tmp/install.sh"}, nil)
	if c.SystemAgentVersion != "" || c.PreambleStyle != "export" || c.ScriptFile != "/tmp/install.sh" {
		t.Errorf("own script: %+v (taken %q)", c, taken)
	}
	c, _ = inherit(nil, map[string]string{"SA_VERSION": "v0.15.0"})
	if c.SystemAgentVersion != "v0.15.0" || c.PreambleStyle != "export" {
		t.Errorf("SA_VERSION in the environment: %+v", c)
	}
	c, _ = inherit([]string{"-nodes", "k3d"}, nil)
	if c.Nodes != NodesK3d || c.SystemAgentVersion != "v0.3.4" {
		t.Errorf("own nodes: %+v", c)
	}
	// The user's preamble alone keeps the earlier run's script.
	c, taken = inherit([]string{"-preamble", "none"}, nil)
	if c.SystemAgentVersion != "v0.3.4" || c.PreambleStyle != "none" || !slices.ContainsFunc(taken, ChoosesScript) {
		t.Errorf("own preamble: %+v (taken %q)", c, taken)
	}
	if ChoosesScript("-preamble=quoted") || !ChoosesScript("-script-url=https://x/i.sh") {
		t.Error("ChoosesScript: the preamble does not choose the script; a URL does")
	}
}

func TestHostnameIsADNSName(t *testing.T) {
	for _, h := range []string{"bad host;id", "10.1.2.3", "localhost", "rancher.localhost", "", "Rancher.Example.test", "single", "-a.test", "a..test"} {
		if _, err := resolve(t, []string{"-harness.hostname=" + h}, nil); err == nil || !strings.Contains(err.Error(), "hostname") {
			t.Errorf("hostname %q: %v, want a refusal", h, err)
		}
	}
	for _, h := range []string{"rancher.agenttls.test", "r1.example.com", "a-b.c-d.io"} {
		if _, err := resolve(t, []string{"-harness.hostname=" + h}, nil); err != nil {
			t.Errorf("hostname %q: %v", h, err)
		}
	}
}

func TestUserPathsAreRelativeToWorkDir(t *testing.T) {
	c := Default()
	c.WorkDir = "/somewhere/else"
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.Bind(fs, "")
	if err := fs.Parse([]string{"-script-file", "my/install.sh"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Resolve(fs, "", env(map[string]string{"AGENTTLS_SCENARIO": "s.yaml"})); err != nil {
		t.Fatal(err)
	}
	if c.ScriptFile != "/somewhere/else/my/install.sh" || c.Scenario != "/somewhere/else/s.yaml" {
		t.Errorf("flag and env paths: %s, %s; want them under the work dir", c.ScriptFile, c.Scenario)
	}
	// A default stays relative to the repository.
	if c.Artifacts != filepath.Join(c.ModuleRoot, "artifacts") {
		t.Errorf("default artifacts %s", c.Artifacts)
	}
}

func TestMapNamesTheScenarioFromTheRootAndRedactsTheURL(t *testing.T) {
	c, err := resolve(t, []string{"-harness.script-url=https://u:secret@h.test/i.sh?token=t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Map()
	if m["scenario"] != filepath.Join("scenarios", "full.yaml") {
		t.Errorf("scenario recorded as %q, want it relative to the repository root", m["scenario"])
	}
	if m["script-url"] != "https://u:secret@h.test/i.sh?token=t" {
		t.Errorf("Map changed the URL: %q", m["script-url"])
	}
	if r := c.Redacted()["script-url"]; strings.Contains(r, "secret") || strings.Contains(r, "token=t") {
		t.Errorf("Redacted keeps the credentials: %q", r)
	}
}
