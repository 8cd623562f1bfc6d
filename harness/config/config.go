// Package config is the typed configuration of a run: defaults, then AGENTTLS_* environment
// variables, then flags that were actually set, then validation with errors that say what to do.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/script"
)

// Backends.
const (
	BackendEmulator = "emulator"
	BackendRancher  = "rancher"
)

// Config is everything a run needs to know.
type Config struct {
	Backend            string        // emulator (hermetic tier) or rancher
	Scenario           string        // scenario file
	Artifacts          string        // where results, reports and transcripts go
	SystemAgentVersion string        // system-agent tag whose install.sh runs (hermetic tier)
	ScriptFile         string        // or a local install.sh
	ScriptURL          string        // or an install.sh URL
	RancherVersion     string        // picks the system-agent version and preamble style; Rancher image tag in the Rancher tier
	PreambleStyle      string        // export, quoted or none
	Hostname           string        // the Rancher hostname nodes use on every path
	CellTimeout        time.Duration // bound for one cell
	SetupTimeout       time.Duration // bound for building images and starting servers
	Keep               bool          // keep containers after the run (debugging)
	FreshNodes         bool          // a new node container per cell instead of reusing them
	FailOnSkip         bool          // a run with any skipped cell fails (exit 3): a gate must not pass on cells that never ran
	Shard              string        // i/n
	FlipOracle         string        // self-test: invert the oracle's answer for this cell ID
	RunID              string        // set when empty
	ModuleRoot         string        // the repository root (fixtures/, scenarios/)
	// WorkDir, when set, is the folder that relative paths given by flag or environment are
	// relative to (the CLI's working directory). Defaults, and every relative path when it is
	// empty (the suite, run by go test in e2e/), are relative to ModuleRoot.
	WorkDir string

	// The Rancher tier.
	RancherImage            string        // image of the rancher backend (default rancher/rancher:<RancherVersion>; "emulator": the agenttls emulator stands in)
	Nodes                   string        // node provider: plain (testcontainers) or k3d; default plain for emulator, k3d for rancher
	WaitRancherPing         time.Duration // Rancher start until /ping answers
	WaitRancherReady        time.Duration // then until its admission webhook runs
	WaitRancherRegistration time.Duration // a new cluster's id and command, and /v3/connect/agent accepting its token
	WaitNodeRegistered      time.Duration // the machine of a node whose script reported connection info
}

// Node providers.
const (
	NodesPlain = "plain"
	NodesK3d   = "k3d"
)

// RancherImageEmulator as the rancher image stands the agenttls emulator in for Rancher: the
// Rancher tier's whole code path (admin API, k3d nodes, mode switches) without the real image.
const RancherImageEmulator = "emulator"

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Backend:       BackendEmulator,
		Scenario:      "scenarios/full.yaml",
		Artifacts:     "artifacts",
		PreambleStyle: "",
		Hostname:      "rancher.agenttls.test",
		CellTimeout:   60 * time.Second,
		SetupTimeout:  10 * time.Minute,

		WaitRancherPing:         8 * time.Minute,
		WaitRancherReady:        10 * time.Minute,
		WaitRancherRegistration: 10 * time.Minute,
		WaitNodeRegistered:      time.Minute,
	}
}

type field struct {
	name, env, usage string
	path             bool // a file or folder: relative values are resolved (see WorkDir)
	str              *string
	dur              *time.Duration
	boolean          *bool
}

func (c *Config) fields() []field {
	return []field{
		{name: "backend", env: "AGENTTLS_BACKEND", usage: "emulator (hermetic tier) or rancher (real rancher/rancher image)", str: &c.Backend},
		{name: "scenario", env: "AGENTTLS_SCENARIO", usage: "scenario file (scenarios/*.yaml)", path: true, str: &c.Scenario},
		{name: "artifacts", env: "ARTIFACTS", usage: "folder for results.json, reports and transcripts", path: true, str: &c.Artifacts},
		{name: "sa-version", env: "SA_VERSION", usage: "system-agent version whose install.sh runs (default from fixtures/versions.yaml)", str: &c.SystemAgentVersion},
		{name: "script-file", env: "AGENTTLS_SCRIPT_FILE", usage: "run this install.sh instead of one from the module cache", path: true, str: &c.ScriptFile},
		{name: "script-url", env: "AGENTTLS_SCRIPT_URL", usage: "run the install.sh at this URL", str: &c.ScriptURL},
		{name: "rancher-version", env: "RANCHER_VERSION", usage: "Rancher release: picks the matching script and preamble (hermetic) or the image tag (rancher)", str: &c.RancherVersion},
		{name: "preamble", env: "AGENTTLS_PREAMBLE", usage: "served preamble style: export, quoted or none (default: from the Rancher version, else export)", str: &c.PreambleStyle},
		{name: "hostname", env: "AGENTTLS_HOSTNAME", usage: "the Rancher hostname nodes resolve", str: &c.Hostname},
		{name: "cell-timeout", env: "AGENTTLS_CELL_TIMEOUT", usage: "time bound for one cell", dur: &c.CellTimeout},
		{name: "setup-timeout", env: "AGENTTLS_SETUP_TIMEOUT", usage: "time bound for images and servers", dur: &c.SetupTimeout},
		{name: "keep", env: "AGENTTLS_KEEP", usage: "keep containers after the run for debugging (remove them later with: agenttls sweep -run-id <the run id>)", boolean: &c.Keep},
		{name: "fresh-nodes", env: "AGENTTLS_FRESH_NODES", usage: "start a new node container for every cell instead of resetting and reusing one", boolean: &c.FreshNodes},
		{name: "fail-on-skip", env: "AGENTTLS_FAIL_ON_SKIP", usage: "exit 3 when any cell was skipped (e.g. the Rancher image could not be had): for gates; make e2e sets it", boolean: &c.FailOnSkip},
		{name: "shard", env: "AGENTTLS_SHARD", usage: "run part i of n of the cells, as i/n", str: &c.Shard},
		{name: "flip-oracle", env: "AGENTTLS_FLIP_ORACLE", usage: "self-test: deliberately expect a wrong verdict for this cell ID", str: &c.FlipOracle},
		{name: "run-id", env: "AGENTTLS_RUN_ID", usage: "run id (labels, artifacts); generated when empty", str: &c.RunID},
		{name: "rancher-image", env: "AGENTTLS_RANCHER_IMAGE", usage: "rancher backend: the image (default rancher/rancher:<rancher-version>; \"emulator\" stands the agenttls emulator in, offline)", str: &c.RancherImage},
		{name: "nodes", env: "AGENTTLS_NODES", usage: "node provider: plain (testcontainers) or k3d (default: plain for the emulator backend, k3d for rancher)", str: &c.Nodes},
		{name: "wait-rancher-ping", env: "AGENTTLS_WAIT_RANCHER_PING", usage: "rancher backend: bound for Rancher's start until /ping answers", dur: &c.WaitRancherPing},
		{name: "wait-rancher-ready", env: "AGENTTLS_WAIT_RANCHER_READY", usage: "rancher backend: bound for Rancher's admission webhook to run after /ping", dur: &c.WaitRancherReady},
		{name: "wait-rancher-registration", env: "AGENTTLS_WAIT_RANCHER_REGISTRATION", usage: "rancher backend: bound for a new cluster's registration command and for Rancher to accept registrations", dur: &c.WaitRancherRegistration},
		{name: "wait-node-registered", env: "AGENTTLS_WAIT_NODE_REGISTERED", usage: "rancher backend: bound for the machine of a node whose script reported connection info", dur: &c.WaitNodeRegistered},
	}
}

// Bind registers the configuration's flags on fs with prefix (e.g. "harness.").
func (c *Config) Bind(fs *flag.FlagSet, prefix string) {
	for _, f := range c.fields() {
		usage := f.usage + " (env " + f.env + ")"
		switch {
		case f.str != nil:
			fs.StringVar(f.str, prefix+f.name, *f.str, usage)
		case f.dur != nil:
			fs.DurationVar(f.dur, prefix+f.name, *f.dur, usage)
		case f.boolean != nil:
			fs.BoolVar(f.boolean, prefix+f.name, *f.boolean, usage)
		}
	}
}

// scriptKeys choose the install script; they are inherited together or not at all, since a
// version of one run and a file of another make no script. The preamble goes with them unless
// the user sets it.
var scriptKeys = []string{"sa-version", "rancher-version", "script-file", "script-url"}

// ChoosesScript reports whether an entry of Inherit's answer (-name=value) chose the script.
func ChoosesScript(taken string) bool {
	name, _, _ := strings.Cut(strings.TrimPrefix(taken, "-"), "=")
	return slices.Contains(scriptKeys, name)
}

// inheritedKeys choose where the cells of a run ran, besides the script.
var inheritedKeys = []string{"backend", "rancher-image", "nodes", "hostname"}

// Inherit takes from m, the effective configuration of an earlier run (results.json's config),
// what chose its script, backend and nodes, wherever the user set neither the flag on fs nor
// the environment variable; the script's options only if the user set none of them. Call it
// before Resolve. It returns what it took, as -name=value.
func (c *Config) Inherit(m map[string]string, fs *flag.FlagSet, prefix string, lookup func(string) (string, bool)) []string {
	set := map[string]bool{}
	if fs != nil {
		fs.Visit(func(f *flag.Flag) { set[strings.TrimPrefix(f.Name, prefix)] = true })
	}
	byName := map[string]field{}
	for _, f := range c.fields() {
		byName[f.name] = f
		if v, ok := lookup(f.env); ok && v != "" {
			set[f.name] = true
		}
	}
	take := func(names []string) (taken []string) {
		for _, n := range names {
			f, v := byName[n], m[n]
			if set[n] || v == "" || f.str == nil {
				continue
			}
			*f.str = v
			taken = append(taken, "-"+n+"="+v)
		}
		return taken
	}
	var taken []string
	if !slices.ContainsFunc(scriptKeys, func(k string) bool { return set[k] }) {
		taken = append(take(scriptKeys), take([]string{"preamble"})...)
	}
	return append(taken, take(inheritedKeys)...)
}

// Resolve applies environment variables to every option whose flag was not set on fs, then
// fills derived values and validates. lookup is os.LookupEnv in production.
func (c *Config) Resolve(fs *flag.FlagSet, prefix string, lookup func(string) (string, bool)) error {
	set := map[string]bool{}
	if fs != nil {
		fs.Visit(func(f *flag.Flag) { set[strings.TrimPrefix(f.Name, prefix)] = true })
	}
	var errs []error
	for _, f := range c.fields() {
		if set[f.name] {
			c.fromWorkDir(f)
			continue
		}
		v, ok := lookup(f.env)
		if !ok || v == "" {
			continue
		}
		switch {
		case f.str != nil:
			*f.str = v
			c.fromWorkDir(f)
		case f.dur != nil:
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w (write e.g. 90s)", f.env, v, err))
			}
			*f.dur = d
		case f.boolean != nil:
			switch strings.ToLower(v) {
			case "1", "true":
				*f.boolean = true
			case "0", "false":
				*f.boolean = false
			default:
				errs = append(errs, fmt.Errorf("%s=%q: write true or false", f.env, v))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return c.finish()
}

// fromWorkDir makes a relative path the user gave relative to WorkDir, when that is set.
func (c *Config) fromWorkDir(f field) {
	if f.path && c.WorkDir != "" && *f.str != "" && !filepath.IsAbs(*f.str) {
		*f.str = filepath.Join(c.WorkDir, *f.str)
	}
}

func (c *Config) finish() error {
	if c.ModuleRoot == "" {
		root, err := FindModuleRoot()
		if err != nil {
			return err
		}
		c.ModuleRoot = root
	}
	// Relative paths are relative to the repository root, so that `go test` (which runs in the
	// package folder), ginkgo processes and make targets all agree.
	if !filepath.IsAbs(c.Scenario) {
		c.Scenario = filepath.Join(c.ModuleRoot, c.Scenario)
	}
	if !filepath.IsAbs(c.Artifacts) {
		c.Artifacts = filepath.Join(c.ModuleRoot, c.Artifacts)
	}
	if err := CheckHostname(c.Hostname); err != nil {
		return err
	}
	switch c.Backend {
	case BackendEmulator, BackendRancher:
	default:
		return fmt.Errorf("backend %q: use emulator (hermetic tier) or rancher (real Rancher image)", c.Backend)
	}
	versions, err := LoadVersions(filepath.Join(c.ModuleRoot, "fixtures", "versions.yaml"))
	if err != nil {
		return err
	}
	sources := 0
	for _, s := range []string{c.ScriptFile, c.ScriptURL} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		return errors.New("give at most one of script-file and script-url")
	}
	if sources > 0 && c.SystemAgentVersion != "" {
		return fmt.Errorf("sa-version %s and a script file or URL both choose the script: give one of them", c.SystemAgentVersion)
	}
	if c.RancherVersion != "" {
		r, err := versions.ForRancher(c.RancherVersion)
		if err != nil {
			return err
		}
		// With a script of the user's, the Rancher version only chooses how it is served.
		if c.SystemAgentVersion == "" && sources == 0 {
			c.SystemAgentVersion = r.SystemAgent
		}
		if c.PreambleStyle == "" {
			c.PreambleStyle = r.Preamble
		}
	}
	if c.SystemAgentVersion == "" && sources == 0 {
		c.SystemAgentVersion = versions.DefaultSystemAgent
	}
	if c.PreambleStyle == "" {
		c.PreambleStyle = "export"
	}
	switch c.PreambleStyle {
	case "export", "quoted", "none":
	default:
		return fmt.Errorf("preamble %q: use export, quoted or none", c.PreambleStyle)
	}
	if c.CellTimeout <= 0 || c.SetupTimeout <= 0 {
		return errors.New("cell-timeout and setup-timeout must be positive durations")
	}
	if c.WaitRancherPing <= 0 || c.WaitRancherReady <= 0 || c.WaitRancherRegistration <= 0 || c.WaitNodeRegistered <= 0 {
		return errors.New("the wait-rancher-* and wait-node-registered bounds must be positive durations")
	}
	if c.Nodes == "" {
		c.Nodes = NodesPlain
		if c.Backend == BackendRancher {
			c.Nodes = NodesK3d
		}
	}
	if c.Nodes != NodesPlain && c.Nodes != NodesK3d {
		return fmt.Errorf("nodes %q: use %s (testcontainers) or %s (k3d-managed)", c.Nodes, NodesPlain, NodesK3d)
	}
	if c.Backend == BackendRancher && c.RancherImage == "" {
		if c.RancherVersion == "" {
			return errors.New("the rancher backend needs the Rancher version to run (rancher-version / RANCHER_VERSION, e.g. v2.15.0) or an image (rancher-image)")
		}
		c.RancherImage = "rancher/rancher:" + c.RancherVersion
	}
	if _, _, err := matrix.ParseShard(c.Shard); err != nil {
		return err
	}
	if c.FlipOracle != "" {
		if _, err := matrix.ParseID(c.FlipOracle); err != nil {
			return fmt.Errorf("flip-oracle: %w", err)
		}
	}
	return nil
}

// hostnameRE: lower-case DNS labels, at least two, the last starting with a letter (so that
// no IP address passes).
var hostnameRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckHostname accepts a Rancher hostname the harness can serve: a DNS name the certificates
// name and the nodes resolve through /etc/hosts, and that goes into a shell command unquoted as
// Rancher's nodeCommand has it.
func CheckHostname(h string) error {
	switch {
	case len(h) > 253 || !hostnameRE.MatchString(h):
		return fmt.Errorf("hostname %q: give a lower-case DNS name of two or more labels, such as rancher.agenttls.test (not an IP address: Rancher's nodes use its name)", h)
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		return fmt.Errorf("hostname %q: curl resolves *.localhost to the node itself; give another name, such as rancher.agenttls.test", h)
	}
	return nil
}

// Map returns the effective configuration as strings: what the suite is given, and (through
// Redacted) what results.json records. A scenario inside the repository is named relative to
// its root, so that runs from different checkouts (CI shards) compare equal.
func (c *Config) Map() map[string]string {
	m := map[string]string{}
	for _, f := range c.fields() {
		switch {
		case f.name == "scenario" && c.ModuleRoot != "" && filepath.IsAbs(*f.str):
			m[f.name] = *f.str
			if rel, err := filepath.Rel(c.ModuleRoot, *f.str); err == nil && filepath.IsLocal(rel) {
				m[f.name] = rel
			}
		case f.str != nil:
			m[f.name] = *f.str
		case f.dur != nil:
			m[f.name] = f.dur.String()
		case f.boolean != nil:
			m[f.name] = fmt.Sprint(*f.boolean)
		}
	}
	return m
}

// Redacted is Map with the credentials and query values of the script URL replaced, for
// everything that shows or stores the configuration (results.json, the suite's command line).
func (c *Config) Redacted() map[string]string {
	m := c.Map()
	if m["script-url"] != "" {
		m["script-url"] = script.RedactURL(m["script-url"])
	}
	return m
}

// Keys lists the option names in order, for help output.
func (c *Config) Keys() []string {
	var k []string
	for _, f := range c.fields() {
		k = append(k, f.name)
	}
	sort.Strings(k)
	return k
}

// FindModuleRoot walks up from the working directory to the folder holding go.mod.
func FindModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "scenarios")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the agenttls repository root (go.mod with scenarios/): run from inside the repository")
		}
		dir = parent
	}
}
