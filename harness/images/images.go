// Package images makes every image the harness runs, locally and without pulling: the tools image
// (the harness's own static binaries in one FROM scratch image), the node image (a Debian root
// file system) and per-run trust variants of the node image (its system store also trusting some
// roots). Tags are content hashes, so an unchanged tree reuses what was built before.
package images

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Repositories of the images this package builds.
const (
	ToolsRepo = "agenttls/tools"
	NodeRepo  = "agenttls/node"
	TrustRepo = "agenttls/node-trust"
)

// Labels this package puts on its images (besides the sweep labels of a run).
const (
	// LabelImage names the kind of image: tools, node or node-trust.
	LabelImage = "org.agenttls.image"
	// LabelBinaries lists the paths of the binaries in a tools image, comma-separated.
	LabelBinaries = "org.agenttls.tools.binaries"
	// LabelRoots lists the names of the roots a trust variant adds, comma-separated.
	LabelRoots = "org.agenttls.trust.roots"
)

// Paths of the binaries in the tools image.
const (
	EmulatorPath = "/agenttls-emulator"
	ProxyPath    = "/agenttls-proxy"
	// AgentAssetDir is where the stand-in agent binaries live, named rancher-system-agent-<arch>
	// as Rancher names its /assets.
	AgentAssetDir = "/assets"
)

// Node build methods, chosen with WithNodeBuild or AGENTTLS_NODE_BUILD.
const (
	// BuildRootfs runs fixtures/images/node/build-rootfs.sh (debootstrap from the machine's apt
	// mirror, then docker import): needs root and debootstrap, no registry.
	BuildRootfs = "rootfs"
	// BuildDockerfile builds fixtures/images/node/Dockerfile: needs debian:bookworm-slim locally
	// or a reachable registry.
	BuildDockerfile = "dockerfile"
)

// EnvNodeBuild selects the node build method when no WithNodeBuild option is given.
const EnvNodeBuild = "AGENTTLS_NODE_BUILD"

// Image describes one image a run needs.
type Image struct {
	// Repository is the image name without tag; the tag is a content hash known after building.
	Repository string `json:"repository"`
	// Source says how it is made (never pulled).
	Source string `json:"source"`
	// Purpose says what the run uses it for.
	Purpose string `json:"purpose"`
	// PerRun is true for images made for one run and swept with it.
	PerRun bool `json:"perRun,omitempty"`
}

// List returns the images a hermetic run needs, for listing (-harness.list-images) and for
// preparing a machine ahead of time.
func List() []Image {
	return []Image{
		{
			Repository: ToolsRepo,
			Source:     "go build (static, trimmed) of ./cmd/agenttls-emulator, ./cmd/agenttls-proxy, ./cmd/rancher-system-agent; FROM scratch",
			Purpose:    "Rancher emulator, MITM/tamper proxies, stand-in agent binary served under /assets",
		},
		{
			Repository: NodeRepo,
			Source:     "fixtures/images/node/build-rootfs.sh (debootstrap) or fixtures/images/node/Dockerfile",
			Purpose:    "nodes that run the registration command",
		},
		{
			Repository: TrustRepo,
			Source:     "node image + update-ca-certificates with the run's extra roots, committed",
			Purpose:    "nodes whose system store trusts the public-CA stand-in or an interception CA",
			PerRun:     true,
		},
	}
}

// Option configures Tools, Node and TrustVariant; each ignores what does not concern it.
type Option func(*options) error

type options struct {
	root      string
	progress  io.Writer
	binaries  map[string]string
	arch      string
	buildDir  string
	labels    map[string]string
	nodeBuild string
}

func defaultOptions() options {
	return options{progress: io.Discard, arch: "amd64"}
}

func apply(opts []Option) (options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// WithModuleRoot sets the agenttls module root (the directory holding go.mod). By default it is
// found by walking up from the working directory.
func WithModuleRoot(dir string) Option {
	return func(o *options) error {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("module root %s: %w", dir, err)
		}
		if _, err := os.Stat(filepath.Join(abs, "go.mod")); err != nil {
			return fmt.Errorf("module root %s has no go.mod: %w", abs, err)
		}
		o.root = abs
		return nil
	}
}

// WithProgress sends one line per step (and the builders' output) to w.
func WithProgress(w io.Writer) Option {
	return func(o *options) error {
		if w == nil {
			w = io.Discard
		}
		o.progress = w
		return nil
	}
}

// WithBinaries replaces the tools image's contents: path in the image -> Go package, relative to
// the module root ("./cmd/x").
func WithBinaries(b map[string]string) Option {
	return func(o *options) error {
		if len(b) == 0 {
			return errors.New("WithBinaries: no binaries given")
		}
		o.binaries = map[string]string{}
		for path, pkg := range b {
			if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
				return fmt.Errorf("WithBinaries: %q is not an absolute file path in the image", path)
			}
			o.binaries[path] = pkg
		}
		return nil
	}
}

// WithArch sets GOARCH of the tools binaries (default amd64) and the suffix of the agent asset.
func WithArch(arch string) Option {
	return func(o *options) error {
		if arch == "" {
			return errors.New("WithArch: empty architecture")
		}
		o.arch = arch
		return nil
	}
}

// WithBuildDir sets where the compiled binaries are kept between runs (default: the user cache
// dir), so that an unchanged tree is not even relinked.
func WithBuildDir(dir string) Option {
	return func(o *options) error {
		o.buildDir = dir
		return nil
	}
}

// WithLabels adds labels to an image when it is built (an image reused from a cache keeps its
// labels). Tests pass sweep.Labels(runID) so that what they build is swept.
func WithLabels(l map[string]string) Option {
	return func(o *options) error {
		if o.labels == nil {
			o.labels = map[string]string{}
		}
		for k, v := range l {
			o.labels[k] = v
		}
		return nil
	}
}

// WithNodeBuild chooses how a missing node image is built: BuildRootfs or BuildDockerfile.
func WithNodeBuild(method string) Option {
	return func(o *options) error {
		if method != BuildRootfs && method != BuildDockerfile {
			return fmt.Errorf("WithNodeBuild: unknown method %q (want %q or %q)", method, BuildRootfs, BuildDockerfile)
		}
		o.nodeBuild = method
		return nil
	}
}

// modulePath is the module whose root the harness looks for.
const modulePath = "github.com/agenttls/agenttls"

// moduleRoot returns o.root or finds the directory of the agenttls go.mod above the working dir.
func (o *options) moduleRoot() (string, error) {
	if o.root != "" {
		return o.root, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for dir := wd; ; {
		mod := filepath.Join(dir, "go.mod")
		if data, err := os.ReadFile(mod); err == nil {
			if declares(data, modulePath) {
				return dir, nil
			}
			return "", fmt.Errorf("find module root: %s declares another module than %s; pass images.WithModuleRoot", mod, modulePath)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find module root: no go.mod above %s; run from inside the agenttls tree or pass images.WithModuleRoot", wd)
		}
		dir = parent
	}
}

func declares(gomod []byte, path string) bool {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "module" && strings.Trim(f[1], `"`) == path {
			return true
		}
	}
	return false
}

// stepf writes one progress line.
func (o *options) stepf(format string, args ...any) {
	fmt.Fprintf(o.progress, format+"\n", args...)
}
