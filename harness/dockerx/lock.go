package dockerx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Lock takes an exclusive advisory lock named name, shared by every process and goroutine on this
// machine (flock on a file under the temp dir), waiting until it is free or ctx ends. It lets two
// test binaries that both need an image build it once. Call the returned function to release it.
func Lock(ctx context.Context, name string) (unlock func(), err error) {
	dir, err := LockDir()
	if err != nil {
		return nil, err
	}
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, name)
	path := filepath.Join(dir, safe+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LockDir is the folder of the machine-wide locks (created, private to the user, on first use).
func LockDir() (string, error) {
	dir := filepath.Join(os.TempDir(), "agenttls-locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create lock dir: %w", err)
	}
	return dir, nil
}

// RemoveLocks removes the lock files whose names carry run id runID (its image and mode locks),
// once the run is over; the locks shared by all runs stay.
func RemoveLocks(runID string) error {
	if len(runID) < 4 {
		return fmt.Errorf("remove locks: run id %q is too short to name a run's locks", runID)
	}
	dir := filepath.Join(os.TempDir(), "agenttls-locks")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove locks of run %s: %w", runID, err)
	}
	var errs []error
	for _, e := range entries {
		if e.Type().IsRegular() && strings.Contains(e.Name(), runID) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
