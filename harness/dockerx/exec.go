package dockerx

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// ExecOutput runs cmd in the running container id, waits for it and returns its exit code and
// its combined output. It is for short helper commands; harness/node streams long ones.
func ExecOutput(ctx context.Context, cli client.APIClient, id string, cmd []string) (int, []byte, error) {
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return -1, nil, fmt.Errorf("create exec %q: %w", cmd, err)
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return -1, nil, fmt.Errorf("attach exec %q: %w", cmd, err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		return -1, out.Bytes(), fmt.Errorf("read exec %q output: %w", cmd, err)
	}
	code, err := ExecExitCode(ctx, cli, ex.ID)
	return code, out.Bytes(), err
}

// ExecExitCode waits (briefly) until the engine reports exec execID as ended and returns its exit
// code. The output stream can end a moment before the engine records the exit.
func ExecExitCode(ctx context.Context, cli client.APIClient, execID string) (int, error) {
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		in, err := cli.ContainerExecInspect(ctx, execID)
		if err != nil {
			return -1, fmt.Errorf("inspect exec: %w", err)
		}
		if !in.Running {
			return in.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("wait for exec to end: %w", ctx.Err())
		case <-time.After(delay):
		}
	}
}
