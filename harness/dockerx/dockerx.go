// Package dockerx holds the few Docker helpers the harness packages share: a client that says
// clearly when the daemon is unreachable, image existence checks, image builds through the
// engine API (no docker CLI, no BuildKit needed), in-memory tar archives and a cross-process
// lock so that two test binaries do not build the same image at once.
package dockerx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/testcontainers/testcontainers-go"
)

// ErrUnreachable is wrapped by Client's error when the Docker daemon does not answer.
var ErrUnreachable = errors.New("docker daemon unreachable")

// Client returns a Docker client configured the way testcontainers-go finds the daemon
// (DOCKER_HOST, ~/.testcontainers.properties, the default socket), after checking that the daemon
// answers. The caller closes it.
func Client(ctx context.Context) (*client.Client, error) {
	tc, err := newClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w; start the Docker daemon or point DOCKER_HOST at it", ErrUnreachable, err)
	}
	cli := tc.Client
	// testcontainers tries other hosts when DOCKER_HOST does not answer; a run must not go to
	// another engine than the one the user named.
	if want := os.Getenv("DOCKER_HOST"); want != "" && cli.DaemonHost() != want {
		_ = cli.Close()
		return nil, fmt.Errorf("%w: DOCKER_HOST=%s does not answer (the client would fall back to %s); fix DOCKER_HOST or unset it",
			ErrUnreachable, want, cli.DaemonHost())
	}
	if _, err := cli.Ping(ctx); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("%w at %s: %w; start the Docker daemon or point DOCKER_HOST at it",
			ErrUnreachable, cli.DaemonHost(), err)
	}
	return cli, nil
}

// newClient wraps testcontainers' client constructor, which panics when it finds no Docker host
// at all ("rootless Docker not found"), so that callers get an error they can act on.
func newClient(ctx context.Context) (tc *testcontainers.DockerClient, err error) {
	defer func() {
		if r := recover(); r != nil {
			tc, err = nil, fmt.Errorf("no Docker host found: %v", r)
		}
	}()
	return testcontainers.NewDockerClientWithOpts(ctx)
}

// ImageExists reports whether ref names an image present in the local engine.
func ImageExists(ctx context.Context, cli client.APIClient, ref string) (bool, error) {
	_, err := cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
}

// BuildImage runs a classic (non-BuildKit) engine build of the tar build context and writes the
// builder's output lines to progress (nil discards them). The build never pulls unless the
// options ask for it. An error in the build stream is returned as an error.
func BuildImage(ctx context.Context, cli client.APIClient, buildContext io.Reader, opts build.ImageBuildOptions, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	opts.Version = build.BuilderV1
	opts.Remove = true
	opts.ForceRemove = true
	resp, err := cli.ImageBuild(ctx, buildContext, opts)
	if err != nil {
		return fmt.Errorf("start image build of %s: %w", strings.Join(opts.Tags, ","), err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read image build output of %s: %w", strings.Join(opts.Tags, ","), err)
		}
		if m.Error != nil {
			return fmt.Errorf("image build of %s: %w", strings.Join(opts.Tags, ","), m.Error)
		}
		if m.Stream != "" {
			if _, err := io.WriteString(progress, m.Stream); err != nil {
				return fmt.Errorf("write build progress: %w", err)
			}
		}
	}
}

// Env returns the value of the environment variable key, or def when it is unset or empty.
func Env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
