package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agenttls/agenttls/harness/dockerx"
	"github.com/agenttls/agenttls/harness/sweep"
)

// defaultBinaries are the tools image's contents: path in the image -> package.
func defaultBinaries(arch string) map[string]string {
	return map[string]string{
		EmulatorPath: "./cmd/agenttls-emulator",
		ProxyPath:    "./cmd/agenttls-proxy",
		path.Join(AgentAssetDir, "rancher-system-agent-"+arch): "./cmd/rancher-system-agent",
	}
}

// Tools returns the tag of the tools image, building it when needed: static Linux binaries
// (CGO_ENABLED=0, -trimpath, -ldflags=-s -w, no VCS stamp) of the harness's commands in one
// FROM scratch image, tagged agenttls/tools:<hash of the binaries>. Go's own up-to-date check
// keeps an unchanged tree from relinking, and an image with the same hash is reused without a
// build. A command whose package directory does not exist yet is left out (said on the progress
// writer); it is an error only when none exists.
func Tools(ctx context.Context, opts ...Option) (string, error) {
	o, err := apply(opts)
	if err != nil {
		return "", fmt.Errorf("tools image: %w", err)
	}
	root, err := o.moduleRoot()
	if err != nil {
		return "", fmt.Errorf("tools image: %w", err)
	}
	bins := o.binaries
	if bins == nil {
		bins = defaultBinaries(o.arch)
	}
	buildDir := o.buildDir
	if buildDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("tools image: no build dir (%w); pass images.WithBuildDir", err)
		}
		buildDir = filepath.Join(cache, "agenttls", "tools")
	}

	paths := make([]string, 0, len(bins))
	for p, pkg := range bins {
		if st, err := os.Stat(filepath.Join(root, pkg)); err != nil || !st.IsDir() {
			o.stepf("tools image: %s is not in the tree yet (%s); leaving %s out", pkg, root, p)
			continue
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return "", fmt.Errorf("tools image: none of the packages %v exists under %s", slices.Sorted(maps.Values(bins)), root)
	}
	slices.Sort(paths)

	// Compile. The lock keeps two test binaries from writing the same outputs at once.
	unlock, err := dockerx.Lock(ctx, "tools-build-"+shortHash(buildDir))
	if err != nil {
		return "", fmt.Errorf("tools image: %w", err)
	}
	defer unlock()
	start := time.Now()
	outDir := filepath.Join(buildDir, o.arch, shortHash(root))
	outs, err := goBuild(ctx, root, outDir, o.arch, slices.Sorted(maps.Values(pick(bins, paths))))
	if err != nil {
		return "", fmt.Errorf("tools image: %w", err)
	}
	files := make([]dockerx.File, 0, len(paths))
	h := sha256.New()
	for _, p := range paths {
		out := outs[bins[p]]
		body, err := os.ReadFile(out)
		if err != nil {
			return "", fmt.Errorf("tools image: read built %s: %w", out, err)
		}
		sum := sha256.Sum256(body)
		fmt.Fprintf(h, "%s\x00%x\n", p, sum)
		files = append(files, dockerx.File{Name: strings.TrimPrefix(p, "/"), Mode: 0o755, Body: body})
	}
	tag := ToolsRepo + ":" + hex.EncodeToString(h.Sum(nil))[:16]
	o.stepf("tools image: compiled %d binaries in %s", len(paths), time.Since(start).Round(time.Millisecond))

	cli, err := dockerx.Client(ctx)
	if err != nil {
		return "", fmt.Errorf("tools image: %w", err)
	}
	defer cli.Close()
	if ok, err := dockerx.ImageExists(ctx, cli, tag); err != nil {
		return "", fmt.Errorf("tools image: %w", err)
	} else if ok {
		o.stepf("tools image: %s is up to date", tag)
		return tag, nil
	}

	labels := map[string]string{sweep.LabelManaged: "true", LabelImage: "tools", LabelBinaries: strings.Join(paths, ",")}
	maps.Copy(labels, o.labels)
	start = time.Now()
	// An import of the files is a FROM scratch image with one layer, made without a builder.
	if err := dockerx.ImportImage(ctx, cli, tag, files, labels); err != nil {
		return "", fmt.Errorf("tools image: %w", err)
	}
	o.stepf("tools image: built %s in %s", tag, time.Since(start).Round(time.Millisecond))
	return tag, nil
}

// goBuild compiles the main packages pkgs of the module at root for linux/arch into outDir and
// returns each package's binary. Packages go to one `go build` when their names differ, so that a
// cold build compiles shared dependencies once; Go skips relinking a binary that is up to date.
func goBuild(ctx context.Context, root, outDir, arch string, pkgs []string) (map[string]string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the Go toolchain is not in PATH: %w", err)
	}
	outs := map[string]string{}
	// Batches of packages whose binary names differ, in order.
	var batches [][]string
	for _, pkg := range slices.Compact(slices.Clone(pkgs)) {
		name := path.Base(pkg)
		placed := false
		for i, b := range batches {
			if !slices.ContainsFunc(b, func(q string) bool { return path.Base(q) == name }) {
				batches[i] = append(b, pkg)
				placed = true
				break
			}
		}
		if !placed {
			batches = append(batches, []string{pkg})
		}
	}
	for i, batch := range batches {
		dir := filepath.Join(outDir, fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create build dir: %w", err)
		}
		args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", dir + string(filepath.Separator)}, batch...)
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		var output bytes.Buffer
		cmd.Stdout = &output
		cmd.Stderr = &output
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", strings.Join(batch, " "), err, strings.TrimSpace(output.String()))
		}
		for _, pkg := range batch {
			out := filepath.Join(dir, path.Base(pkg))
			if _, err := os.Stat(out); err != nil {
				return nil, fmt.Errorf("go build %s: no binary at %s (is it a main package?)", pkg, out)
			}
			outs[pkg] = out
		}
	}
	return outs, nil
}

// pick returns the entries of m whose keys are in keys.
func pick(m map[string]string, keys []string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}
