package node

import (
	"bytes"
	"strings"
	"testing"
)

type writes struct{ got []string }

func (w *writes) Write(p []byte) (int, error) { w.got = append(w.got, string(p)); return len(p), nil }

func TestLineWriterForwardsWholeLines(t *testing.T) {
	var w writes
	l := &lineWriter{w: &w}
	for _, chunk := range []string{"a", "b\nc", "d\n\ne", "f"} {
		if n, err := l.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if got, want := strings.Join(w.got, "|"), "ab\n|cd\n|\n"; got != want {
		t.Errorf("before flush: %q, want %q", got, want)
	}
	flush(l)
	if got, want := strings.Join(w.got, "|"), "ab\n|cd\n|\n|ef"; got != want {
		t.Errorf("after flush: %q, want %q", got, want)
	}
	flush(l)
	if len(w.got) != 4 {
		t.Errorf("a second flush wrote again: %q", w.got)
	}
}

func TestLineWriterBoundsAnEndlessLine(t *testing.T) {
	var w writes
	l := &lineWriter{w: &w}
	big := bytes.Repeat([]byte("x"), maxLine+10)
	if _, err := l.Write(big); err != nil {
		t.Fatal(err)
	}
	if len(w.got) != 1 || len(w.got[0]) != len(big) || len(l.buf) != 0 {
		t.Errorf("an over-long line was held back: %d writes, %d bytes buffered", len(w.got), len(l.buf))
	}
}
