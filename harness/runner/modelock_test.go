package runner

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestModeLockNeverMixesModes runs workers of both modes against one shared "server": while any
// worker holds a mode, the server stays in it and no worker of the other mode runs; every worker
// gets its turn.
func TestModeLockNeverMixesModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mode")
	var (
		mu       sync.Mutex
		mode     = "strict"
		active   = map[string]int{}
		switches int32
		runs     int32
	)
	current := func(want string) func(context.Context) (bool, error) {
		return func(context.Context) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return mode == want, nil
		}
	}
	switchTo := func(want string) func(context.Context) error {
		return func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if active["strict"]+active["system-store"] != 0 {
				t.Errorf("switch to %s while %v hold the mode", want, active)
			}
			mode = want
			atomic.AddInt32(&switches, 1)
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 12; i++ {
				want := []string{"strict", "system-store"}[(w+i/4)%2]
				l := &modeLock{path: path} // its own file descriptions, as another process has
				release, err := l.hold(ctx, current(want), switchTo(want))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if mode != want {
					t.Errorf("worker %d holds %s while the server is in %s", w, want, mode)
				}
				active[want]++
				if active["strict"] > 0 && active["system-store"] > 0 {
					t.Errorf("both modes held at once: %v", active)
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				active[want]--
				mu.Unlock()
				atomic.AddInt32(&runs, 1)
				release()
			}
		}()
	}
	wg.Wait()
	if runs != 96 || switches == 0 {
		t.Fatalf("runs %d, switches %d", runs, switches)
	}
	t.Logf("96 holds, %d switches", switches)
}

// TestModeLockGivesUpWithContext: a switch that cannot happen (a holder never lets go) ends with
// the context, not never.
func TestModeLockGivesUpWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mode")
	yes := func(context.Context) (bool, error) { return true, nil }
	no := func(context.Context) (bool, error) { return false, nil }
	sw := func(context.Context) error { return nil }
	release, err := (&modeLock{path: path}).hold(context.Background(), yes, sw)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := (&modeLock{path: path}).hold(ctx, no, sw); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("blocked switch: %v after %s", err, time.Since(start))
	}
}

func TestStrictVerifyOf(t *testing.T) {
	for script, want := range map[string]string{
		"#!/usr/bin/env sh\nexport STRICT_VERIFY='true'\nX=1\n": "true",
		"#!/usr/bin/env sh\nSTRICT_VERIFY=\"false\"\n":          "false",
		"#!/usr/bin/env sh\nCATTLE_SERVER=https://r\n":          "",
	} {
		if got := strictVerifyOf([]byte(script)); got != want {
			t.Errorf("%q: %q, want %q", script, got, want)
		}
	}
}
