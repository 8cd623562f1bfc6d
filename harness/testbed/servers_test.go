package testbed

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/agenttls/agenttls/harness/dockerx/dockertest"
	"github.com/agenttls/agenttls/harness/images"
	"github.com/agenttls/agenttls/harness/sweep"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// The servers of a testbed start concurrently from one labels map, which other goroutines read
// meanwhile: starting one must leave that map as it was (testcontainers adds its own labels to
// a request's map; sharing it crashed the suite with concurrent map writes).
func TestStartServerLeavesTheLabelsAlone(t *testing.T) {
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tools, err := images.Tools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	labels := sweep.Labels(dockertest.RunID(t))
	want := maps.Clone(labels)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A server that exits at once (a flag it does not know): created, labelled, failed.
			c, _ := startServer(ctx, serverSpec{image: tools, labels: labels, cmd: []string{"/agenttls-emulator", "--no-such-flag"}})
			if c != nil {
				_ = testcontainers.TerminateContainer(c)
			}
		}()
		for range 100 {
			_ = maps.Clone(labels) // what the trust-image builder does at the same time
		}
	}
	wg.Wait()
	if !maps.Equal(labels, want) {
		t.Errorf("startServer changed the shared labels: %v, was %v", labels, want)
	}
}
