// Package dockertest holds test helpers for packages whose tests need a Docker engine. Such tests
// fail when the engine is unreachable, so that a broken CI machine is not mistaken for a green
// run; with -short they are skipped instead, with the reason printed.
package dockertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/agenttls/agenttls/harness/dockerx"
	"github.com/agenttls/agenttls/harness/images"
	"github.com/agenttls/agenttls/harness/sweep"
)

// Main runs the package's tests with the testcontainers reaper (Ryuk) disabled: its image cannot
// be pulled here and the harness cleans up after itself by label. Call it from TestMain.
func Main(m *testing.M) {
	if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// Require returns a client of a reachable Docker engine. When the engine is unreachable the test
// fails, or, under -short, is skipped with the reason.
func Require(tb testing.TB) *client.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cli, err := dockerx.Client(ctx)
	if err != nil {
		if testing.Short() {
			tb.Skipf("skipped under -short: this test needs Docker: %v", err)
		}
		tb.Fatalf("this test needs Docker (run with -short to skip it): %v", err)
	}
	tb.Cleanup(func() { _ = cli.Close() })
	return cli
}

// RunID returns a fresh run id for the test and registers a sweep of everything labelled with it
// when the test ends; a sweep that fails or still finds something fails the test only when it
// fails, while what it removed is logged (a test that cleans up after itself leaves nothing).
func RunID(tb testing.TB) string {
	tb.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("random run id: %v", err)
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, tb.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	id := "test-" + name + "-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		removed, err := sweep.Sweep(ctx, id)
		if err != nil {
			tb.Errorf("sweep run %s: %v", id, err)
		}
		if !removed.Empty() {
			tb.Logf("sweep run %s: %s", id, removed)
		}
	})
	return id
}

// IdleImage returns a FROM scratch image holding /idle, a static program that waits for a signal
// (built once and then reused, as any tools image).
func IdleImage(tb testing.TB) string {
	tb.Helper()
	Require(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := images.Tools(ctx, images.WithBinaries(map[string]string{
		"/idle": "./harness/dockerx/dockertest/testdata/idle",
	}))
	if err != nil {
		tb.Fatalf("build idle image: %v", err)
	}
	return img
}

// NodeImage returns the node image, building it when it is absent (about a minute, once per
// machine). Under -short a missing node image skips the test instead of building it.
func NodeImage(tb testing.TB) string {
	tb.Helper()
	cli := Require(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if testing.Short() {
		tag, err := images.NodeTag()
		if err != nil {
			tb.Fatalf("node image tag: %v", err)
		}
		if _, err := cli.ImageInspect(ctx, tag); err != nil {
			tb.Skipf("skipped under -short: node image %s is not built (%v); run without -short to build it", tag, err)
		}
	}
	tag, err := images.Node(ctx, images.WithProgress(LogWriter(tb)))
	if err != nil {
		tb.Fatalf("node image: %v", err)
	}
	return tag
}

// LogWriter returns a writer that logs each line written to it through tb.Log.
func LogWriter(tb testing.TB) io.Writer { return &logWriter{tb: tb} }

type logWriter struct {
	tb  testing.TB
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.tb.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}
