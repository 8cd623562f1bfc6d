// Package bounded reads the files a user names (scripts, scenarios, results) so that no name can
// hang or exhaust a run: only regular files are read, and never more than a limit.
package bounded

import (
	"fmt"
	"io"
	"os"
)

// ReadFile returns the contents of the regular file at path, of at most limit bytes. A device,
// a FIFO or a process substitution (<(...)) is refused before it is opened: it may never end or
// block for ever. what names the file in errors ("install script", "scenario").
func ReadFile(path string, limit int64, what string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("read %s: %s is a directory; give the path of the file itself", what, path)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: %s is not a regular file (%s); save it to a file and give that", what, path, fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("read %s %s: %d bytes is more than any %s holds (limit %d); check the path", what, path, fi.Size(), what, limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1)) // it may have grown since the stat
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s %s: more than %d bytes, more than any %s holds; check the path", what, path, limit, what)
	}
	return b, nil
}
