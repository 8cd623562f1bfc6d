package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/classify"
	"github.com/agenttls/agenttls/harness/matrix"
)

// A script that floods its output keeps a bounded transcript that says what it dropped.
func TestTranscriptIsBounded(t *testing.T) {
	tr := &transcript{}
	line := strings.Repeat("x", 1000)
	n := 2 * maxTranscriptBytes / len(line)
	for i := 0; i < n; i++ {
		tr.add(classify.Stdout, line)
	}
	if tr.size > maxTranscriptBytes || tr.dropped == 0 || len(tr.lines)+tr.dropped != n {
		t.Fatalf("kept %d lines (%d bytes), dropped %d of %d", len(tr.lines), tr.size, tr.dropped, n)
	}
	c, err := matrix.ParseID("private/strict/cs-absent/sv-unset/direct")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := tr.write(dir, c, &Result{RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > maxTranscriptBytes+4096 {
		t.Errorf("transcript file is %d bytes, over the bound", st.Size())
	}
	b, _ := os.ReadFile(filepath.Join(dir, rel))
	if !strings.Contains(string(b), "# truncated: ") {
		t.Error("the transcript does not say it was truncated")
	}
}
