package images

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/build"

	"github.com/agenttls/agenttls/harness/dockerx"
)

// nodeDir is where the node image's recipe lives, relative to the module root.
const nodeDir = "fixtures/images/node"

// NodeTag returns the tag the node image has for the recipe under the module root:
// agenttls/node:<hash of build-rootfs.sh, the package list and the Debian suite>. It builds
// nothing.
func NodeTag(opts ...Option) (string, error) {
	o, err := apply(opts)
	if err != nil {
		return "", fmt.Errorf("node image: %w", err)
	}
	root, err := o.moduleRoot()
	if err != nil {
		return "", fmt.Errorf("node image: %w", err)
	}
	return nodeTag(root)
}

func nodeTag(root string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"build-rootfs.sh", "packages"} {
		data, err := os.ReadFile(filepath.Join(root, nodeDir, name))
		if err != nil {
			return "", fmt.Errorf("node image recipe: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
	}
	fmt.Fprintf(h, "suite\x00%s", dockerx.Env("NODE_SUITE", "bookworm"))
	return NodeRepo + ":" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Node returns the tag of the node image, building it when it is absent: with build-rootfs.sh
// (debootstrap; root only; about 50 s) by default, or with the Dockerfile when WithNodeBuild or
// AGENTTLS_NODE_BUILD says "dockerfile" (a registry must be reachable). Progress goes to the
// WithProgress writer. Concurrent callers, in this process or another, build it once.
func Node(ctx context.Context, opts ...Option) (string, error) {
	o, err := apply(opts)
	if err != nil {
		return "", fmt.Errorf("node image: %w", err)
	}
	root, err := o.moduleRoot()
	if err != nil {
		return "", fmt.Errorf("node image: %w", err)
	}
	tag, err := nodeTag(root)
	if err != nil {
		return "", err
	}
	method := o.nodeBuild
	if method == "" {
		if method, err = NodeBuildFromEnv(); err != nil {
			return "", fmt.Errorf("node image: %w", err)
		}
	} else if method != BuildRootfs && method != BuildDockerfile {
		return "", fmt.Errorf("node image: build method %q: want %q or %q", method, BuildRootfs, BuildDockerfile)
	}

	cli, err := dockerx.Client(ctx)
	if err != nil {
		return "", fmt.Errorf("node image: %w", err)
	}
	defer cli.Close()
	if ok, err := dockerx.ImageExists(ctx, cli, tag); err != nil || ok {
		return tag, err
	}
	unlock, err := dockerx.Lock(ctx, "image-"+tag)
	if err != nil {
		return "", fmt.Errorf("node image: %w", err)
	}
	defer unlock()
	if ok, err := dockerx.ImageExists(ctx, cli, tag); err != nil || ok {
		return tag, err // built by whoever held the lock
	}

	start := time.Now()
	o.stepf("node image: %s is missing; building it with %s (about a minute)", tag, method)
	switch method {
	case BuildRootfs:
		err = buildRootfs(ctx, root, tag, o.progress)
	case BuildDockerfile:
		err = buildNodeDockerfile(ctx, root, tag, &o)
	}
	if err != nil {
		return "", fmt.Errorf("node image %s: %w", tag, err)
	}
	o.stepf("node image: built %s in %s", tag, time.Since(start).Round(100*time.Millisecond))
	return tag, nil
}

// buildRootfs runs build-rootfs.sh, relaying its output and a heartbeat every 10 s.
func buildRootfs(ctx context.Context, root, tag string, progress io.Writer) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap is not installed: run `apt-get install -y debootstrap`, or set %s=%s where a registry is reachable", EnvNodeBuild, BuildDockerfile)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("debootstrap needs root: run as root, or set %s=%s where a registry is reachable", EnvNodeBuild, BuildDockerfile)
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, nodeDir, "build-rootfs.sh"), tag)
	cmd.Dir = root
	// Its own process group, so that cancelling stops debootstrap too, not only bash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	var mu sync.Mutex
	var last []string
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			last = append(last, sc.Text())
			if len(last) > 30 {
				last = last[1:]
			}
			fmt.Fprintf(progress, "  %s\n", sc.Text())
			mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("start build-rootfs.sh: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	start := time.Now()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			pw.Close()
			<-relayed
			if err != nil {
				mu.Lock()
				defer mu.Unlock()
				if ctx.Err() != nil {
					return fmt.Errorf("build-rootfs.sh: %w", ctx.Err())
				}
				return fmt.Errorf("build-rootfs.sh: %w; its last lines:\n%s", err, strings.Join(last, "\n"))
			}
			return nil
		case <-tick.C:
			mu.Lock()
			fmt.Fprintf(progress, "node image: still building (%s)\n", time.Since(start).Round(time.Second))
			mu.Unlock()
		}
	}
}

// buildNodeDockerfile builds fixtures/images/node/Dockerfile through the engine.
func buildNodeDockerfile(ctx context.Context, root, tag string, o *options) error {
	var files []dockerx.File
	for _, name := range []string{"Dockerfile", "packages"} {
		data, err := os.ReadFile(filepath.Join(root, nodeDir, name))
		if err != nil {
			return fmt.Errorf("read node recipe: %w", err)
		}
		files = append(files, dockerx.File{Name: name, Mode: 0o644, Body: data})
	}
	ctxTar, err := dockerx.Tar(files...)
	if err != nil {
		return err
	}
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	labels := map[string]string{LabelImage: "node"}
	for k, v := range o.labels {
		labels[k] = v
	}
	err = dockerx.BuildImage(ctx, cli, ctxTar, build.ImageBuildOptions{Tags: []string{tag}, Labels: labels}, o.progress)
	if err != nil {
		return fmt.Errorf("%w (the Dockerfile needs debian:bookworm-slim locally or a reachable registry; without one, unset %s to build with debootstrap)", err, EnvNodeBuild)
	}
	return nil
}

// NodeBuildFromEnv is the node build method AGENTTLS_NODE_BUILD names (rootfs when unset), or
// an error naming the values it takes; a run checks it before it starts anything.
func NodeBuildFromEnv() (string, error) {
	method := dockerx.Env(EnvNodeBuild, BuildRootfs)
	if method != BuildRootfs && method != BuildDockerfile {
		return "", fmt.Errorf("%s=%q: want %q (debootstrap, as root) or %q (needs a registry)", EnvNodeBuild, method, BuildRootfs, BuildDockerfile)
	}
	return method, nil
}
