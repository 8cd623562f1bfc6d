package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/agenttls/agenttls/harness/dockerx"
)

// How ExecStream stops a command early. The engine has no way to kill an exec, and closing the
// attached stream leaves the process running, so each command runs under a tiny wrapper that
// writes its PID to a file and then execs the command. On cancellation a second exec reads the
// file, freezes the whole process tree below that PID (SIGSTOP, repeated until no new child
// appears, so nothing forks past it) and kills it (SIGKILL). The tree is walked by parent PID, not
// by process group or session, because `sudo` (use_pty) puts the command in a new session.
const (
	wrapperScript = `echo $$ >"$0" && exec "$@"`
	killerScript  = `f=$1; i=0
while [ ! -s "$f" ]; do i=$((i+1)); [ "$i" -gt 40 ] && exit 3; sleep 0.05; done
root=$(cat "$f"); rm -f "$f"
kill -STOP "$root" 2>/dev/null || exit 0
all=" $root "
while :; do
  grew=
  for p in $all; do
    for c in $(pgrep -P "$p"); do
      case "$all" in *" $c "*) ;; *) kill -STOP "$c" 2>/dev/null; all="$all$c "; grew=1 ;; esac
    done
  done
  [ -n "$grew" ] || break
done
kill -KILL $all 2>/dev/null
exit 0`
)

// killTimeout bounds the stop of a cancelled command.
const killTimeout = 10 * time.Second

// ExecStream runs cmd on the node as root and streams its output: each complete line is written, as
// soon as it arrives, in one Write call to stdout or stderr (nil discards); a last line without
// a newline is written when the command ends. It returns the command's exit code.
//
// Cancelling ctx stops the command and every process it started (through sudo too) within a
// fraction of a second; ExecStream then returns the exit code the engine reports for the killed
// command (137) and an error wrapping ctx.Err(). The node image must have sh, sleep and pgrep.
func (n *Node) ExecStream(ctx context.Context, cmd []string, stdout, stderr io.Writer) (int, error) {
	if len(cmd) == 0 {
		return -1, errors.New("node exec: empty command")
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return -1, fmt.Errorf("node exec: %w", err)
	}
	pidFile := "/tmp/.agenttls-exec-" + hex.EncodeToString(rnd[:]) + ".pid"
	id := n.GetContainerID()

	wrapped := append([]string{"/bin/sh", "-c", wrapperScript, pidFile}, cmd...)
	ex, err := n.cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		User: "root", Cmd: wrapped, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return -1, fmt.Errorf("node exec %s: create: %w", show(cmd), err)
	}
	att, err := n.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return -1, fmt.Errorf("node exec %s: attach: %w", show(cmd), err)
	}
	defer att.Close()

	outW, errW := &lineWriter{w: stdout}, &lineWriter{w: stderr}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(outW, errW, att.Reader)
		copied <- err
	}()

	var copyErr error
	ended := false
	select {
	case copyErr = <-copied:
		ended = true
	case <-ctx.Done():
		// Both may be ready: a command that ended by itself is not stopped.
		select {
		case copyErr = <-copied:
			ended = true
		default:
		}
	}
	if ended {
		// The command ended by itself (its output stream closed).
		flush(outW, errW)
		waitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
		defer cancel()
		code, err := dockerx.ExecExitCode(waitCtx, n.cli, ex.ID)
		if err != nil {
			return -1, fmt.Errorf("node exec %s: %w", show(cmd), err)
		}
		if copyErr != nil {
			return code, fmt.Errorf("node exec %s: read output: %w", show(cmd), copyErr)
		}
		return code, nil
	}

	// Cancelled: stop the process tree, let the stream drain briefly, then report.
	killCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
	defer cancel()
	killErr := n.stop(killCtx, pidFile)
	select {
	case <-copied:
	case <-time.After(500 * time.Millisecond):
		// A process that escaped the tree (double fork) may still hold the stream open.
		att.Close()
		<-copied
	}
	flush(outW, errW)
	code := -1
	if killErr == nil {
		inspectCtx, cancel := context.WithTimeout(killCtx, 2*time.Second)
		defer cancel()
		if c, err := dockerx.ExecExitCode(inspectCtx, n.cli, ex.ID); err == nil {
			code = c
		}
	}
	if killErr != nil {
		return code, fmt.Errorf("node exec %s: %w; and stopping it failed: %w", show(cmd), ctx.Err(), killErr)
	}
	return code, fmt.Errorf("node exec %s: stopped: %w", show(cmd), ctx.Err())
}

// stop kills the process tree whose root PID the wrapper wrote to pidFile.
func (n *Node) stop(ctx context.Context, pidFile string) error {
	code, out, err := dockerx.ExecOutput(ctx, n.cli, n.GetContainerID(), []string{"/bin/sh", "-c", killerScript, "agenttls-stop", pidFile})
	if err != nil {
		return err
	}
	switch code {
	case 0:
		return nil
	case 3:
		return errors.New("the command never started (no PID file)")
	default:
		return fmt.Errorf("stop script exited %d: %s", code, strings.TrimSpace(string(out)))
	}
}

// maxLine bounds what lineWriter holds back waiting for a newline.
const maxLine = 64 << 10

// lineWriter forwards whole lines to w, one Write per line, keeping a partial line until its
// newline arrives or flush.
type lineWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func (l *lineWriter) Write(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := l.w.Write(l.buf[:i+1]); err != nil {
			l.err = err
			return 0, err
		}
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) >= maxLine {
		// A run of output without newlines (a progress meter) goes out as it is.
		if _, err := l.w.Write(l.buf); err != nil {
			l.err = err
			return 0, err
		}
		l.buf = l.buf[len(l.buf):]
	}
	if len(l.buf) == 0 {
		l.buf = nil // let the backing array go
	}
	return len(p), nil
}

func flush(ws ...*lineWriter) {
	for _, l := range ws {
		if len(l.buf) > 0 && l.err == nil {
			_, l.err = l.w.Write(l.buf)
			l.buf = nil
		}
	}
}

func show(cmd []string) string {
	s := strings.Join(cmd, " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return fmt.Sprintf("%q", s)
}
