package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// modeLock lets the cells of all processes share one Rancher's agent-tls-mode: cells of the
// current mode run together under a shared lock; a cell that needs the other mode takes the
// exclusive lock, which it gets once the running cells are done, switches, and then runs under
// the shared lock too. A second lock, the gate, gives a waiting switch priority: no new cell
// joins the shared lock while a switch waits, so the switch cannot starve, and since the
// suite orders cells by CA kind and mode, a Rancher switches about once per group.
//
// Locks are flock(2) on two files, so they hold across the Ginkgo processes of a run and are
// dropped by the kernel if a process dies.
type modeLock struct {
	path string
}

// hold returns once the server is in the wanted mode (current reports it) and holds it there
// until release is called; switchTo changes it while no other cell holds it.
func (l *modeLock) hold(ctx context.Context, current func(context.Context) (bool, error), switchTo func(context.Context) error) (release func(), err error) {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return nil, fmt.Errorf("mode lock: %w", err)
	}
	gate, err := os.OpenFile(l.path+".gate", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("mode lock: %w", err)
	}
	defer gate.Close()
	main, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("mode lock: %w", err)
	}
	unlock := func() {
		_ = syscall.Flock(int(main.Fd()), syscall.LOCK_UN)
		_ = main.Close()
	}

	// As a reader: pass the gate, share the mode, check it.
	if err := flock(ctx, gate, syscall.LOCK_EX); err != nil {
		main.Close()
		return nil, err
	}
	err = flock(ctx, main, syscall.LOCK_SH)
	_ = syscall.Flock(int(gate.Fd()), syscall.LOCK_UN)
	if err != nil {
		main.Close()
		return nil, err
	}
	ok, err := current(ctx)
	if err != nil {
		unlock()
		return nil, err
	}
	if ok {
		return unlock, nil
	}

	// As a switcher: hold the gate (no new readers), wait until the readers are gone, switch,
	// then keep sharing the new mode.
	_ = syscall.Flock(int(main.Fd()), syscall.LOCK_UN)
	if err := flock(ctx, gate, syscall.LOCK_EX); err != nil {
		main.Close()
		return nil, err
	}
	defer syscall.Flock(int(gate.Fd()), syscall.LOCK_UN)
	if err := flock(ctx, main, syscall.LOCK_EX); err != nil {
		main.Close()
		return nil, err
	}
	if ok, err = current(ctx); err == nil && !ok {
		err = switchTo(ctx)
	}
	if err != nil {
		unlock()
		return nil, err
	}
	// Down to shared. flock does not convert atomically, but the gate is still held, so no
	// other cell can come in between.
	if err := syscall.Flock(int(main.Fd()), syscall.LOCK_SH); err != nil {
		unlock()
		return nil, fmt.Errorf("mode lock: %w", err)
	}
	return unlock, nil
}

// flock takes lock how on f, waiting until it is free or ctx ends.
func flock(ctx context.Context, f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for lock %s: %w", f.Name(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
