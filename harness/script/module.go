package script

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Module is the Go module whose source tree carries install.sh at its root.
const Module = "github.com/rancher/system-agent"

// knownServed lists versions known to be served by the Go module proxy; several tags (v0.3.7
// among them) are not. Named in errors as versions to try.
var knownServed = []string{"v0.3.4", "v0.3.11", "v0.3.16", "v0.15.0"}

// KnownServedVersions returns the versions known to be served by the Go module proxy.
func KnownServedVersions() []string { return append([]string(nil), knownServed...) }

// Option configures FromModule.
type Option func(*options) error

type options struct {
	goBin string
	env   []string
}

// WithGoBinary runs the given go command instead of "go" from PATH.
func WithGoBinary(path string) Option {
	return func(o *options) error {
		if path == "" {
			return errors.New("WithGoBinary: empty path; give the go command to run")
		}
		o.goBin = path
		return nil
	}
}

// WithEnv adds NAME=value entries to the go command's environment, after the process's own
// (so they win). GOPROXY, GOFLAGS, GONOSUMDB and the rest are otherwise taken from the
// process environment as they are.
func WithEnv(kv ...string) Option {
	return func(o *options) error {
		for _, e := range kv {
			if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
				return fmt.Errorf("WithEnv: %q is not NAME=value", e)
			}
		}
		o.env = append(o.env, kv...)
		return nil
	}
}

var versionRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// CheckVersion returns an error unless v has the form vX.Y.Z or vX.Y.Z-pre.
func CheckVersion(v string) error {
	if versionRE.MatchString(v) {
		return nil
	}
	hint := ""
	switch {
	case v == "":
		hint = " (empty)"
	case !strings.HasPrefix(v, "v") && versionRE.MatchString("v"+v):
		hint = fmt.Sprintf(" (did you mean v%s?)", v)
	}
	return fmt.Errorf("system-agent version %q%s is not of the form vX.Y.Z or vX.Y.Z-pre; for example %s", v, hint, knownServed[len(knownServed)-1])
}

// modDownload is the part of `go mod download -json` output we read.
type modDownload struct {
	Path    string
	Version string
	Dir     string
	Error   string
}

// FromModule fetches system-agent at version through the go command (`go mod download -json`,
// honouring GOPROXY, GOFLAGS and the rest of the environment) and reads install.sh from the
// module's directory in the module cache. The go command runs in an empty temporary directory
// so that no go.mod is read or touched, and is bounded by ctx.
func FromModule(ctx context.Context, version string, opts ...Option) (*Script, error) {
	if err := CheckVersion(version); err != nil {
		return nil, err
	}
	o := options{goBin: "go"}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("fetch system-agent %s: %w", version, err)
		}
	}
	tmp, err := os.MkdirTemp("", "agenttls-script-*")
	if err != nil {
		return nil, fmt.Errorf("fetch system-agent %s: temporary directory for the go command: %w", version, err)
	}
	defer os.RemoveAll(tmp)

	ref := Module + "@" + version
	cmd := exec.CommandContext(ctx, o.goBin, "mod", "download", "-json", ref)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), o.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("fetch system-agent %s: go mod download stopped: %w; allow more time or check the network to the module proxy", version, ctx.Err())
	}
	var md modDownload
	jsonErr := json.Unmarshal(stdout.Bytes(), &md)
	switch {
	case jsonErr == nil && md.Error != "":
		return nil, notServed(version, md.Error, o.env)
	case runErr != nil:
		var ee *exec.ExitError
		if !errors.As(runErr, &ee) {
			return nil, fmt.Errorf("fetch system-agent %s: run %q: %w; install Go or pass WithGoBinary", version, o.goBin, runErr)
		}
		reason := strings.TrimSpace(stderr.String())
		if reason == "" {
			reason = runErr.Error()
		}
		return nil, notServed(version, reason, o.env)
	case jsonErr != nil:
		return nil, fmt.Errorf("fetch system-agent %s: cannot read go mod download output (%v): %q", version, jsonErr, truncate(stdout.String(), 200))
	case md.Dir == "":
		return nil, fmt.Errorf("fetch system-agent %s: go mod download reported no module directory; check GOFLAGS (for example -modcacherw or -mod settings) and retry", version)
	}
	path := filepath.Join(md.Dir, "install.sh")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fetch system-agent %s: %w; this version may predate install.sh at the module root, try one of %s", version, err, strings.Join(knownServed, ", "))
	}
	return newScript(version, fmt.Sprintf("go module %s (%s)", ref, path), b)
}

// notServed builds the error for a version the go command could not provide.
func notServed(version, reason string, extraEnv []string) error {
	reason = strings.TrimSpace(reason)
	reason = strings.TrimPrefix(reason, Module+"@"+version+": ")
	if i := strings.IndexByte(reason, '\n'); i >= 0 {
		// Keep the first line and the proxy's one-line explanation if there is one.
		rest := strings.TrimSpace(reason[i+1:])
		reason = reason[:i]
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			rest = rest[:j]
		}
		if rest != "" {
			reason += " (" + rest + ")"
		}
	}
	proxy := os.Getenv("GOPROXY")
	for _, e := range extraEnv {
		if v, ok := strings.CutPrefix(e, "GOPROXY="); ok {
			proxy = v
		}
	}
	where := "the Go module proxy"
	if proxy != "" {
		where = "GOPROXY=" + proxy
	}
	return fmt.Errorf("system-agent %s is not available from %s: %s; try one of %s, or give the script with -script-file or -script-url",
		version, where, truncate(reason, 240), strings.Join(knownServed, ", "))
}
