package bounded

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(ok, 5, "thing"); err != nil || string(b) != "hello" {
		t.Errorf("regular file within the limit: %q %v", b, err)
	}
	if _, err := ReadFile(ok, 4, "thing"); err == nil || !strings.Contains(err.Error(), "limit 4") {
		t.Errorf("file over the limit: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := exec.Command("mkfifo", fifo).Run(); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	for name, path := range map[string]string{"device": "/dev/zero", "fifo": fifo, "directory": dir, "missing": filepath.Join(dir, "nope")} {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(path, 1<<20, "thing"); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "read thing") {
				t.Errorf("%s: %v, want a refusal naming the thing", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadFile blocked", name)
		}
	}
}
