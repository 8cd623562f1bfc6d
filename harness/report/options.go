package report

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Option configures WriteHTML and WriteAll.
type Option func(*options) error

type options struct {
	transcriptDir string
	transcriptMax int
}

// defaultTranscriptMax bounds each embedded transcript; the cut keeps the head and the tail
// (where the verdict is decided) and says how much was left out.
const defaultTranscriptMax = 96 << 10

// WithTranscripts embeds each cell's transcript text in the HTML report, read from dir joined
// with the cell's Transcript path (dir is normally the directory holding results.json), so
// the report stays one self-contained file. Paths that leave dir are not read.
func WithTranscripts(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("WithTranscripts: empty directory: pass the directory that holds results.json")
		}
		o.transcriptDir = dir
		return nil
	}
}

// WithTranscriptLimit bounds each embedded transcript to n bytes (default 96 KiB).
func WithTranscriptLimit(n int) Option {
	return func(o *options) error {
		if n < 1024 {
			return fmt.Errorf("WithTranscriptLimit(%d): use at least 1024 bytes", n)
		}
		o.transcriptMax = n
		return nil
	}
}

func applyOptions(opts []Option) (options, error) {
	o := options{transcriptMax: defaultTranscriptMax}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// WriteAll writes every artifact of a run into dir: results.json, junit.xml, summary.md and
// report.html. results.json is written first, so it exists even if a view fails.
func WriteAll(dir string, r *Results, opts ...Option) error {
	if _, err := applyOptions(opts); err != nil {
		return fmt.Errorf("write reports: %w", err)
	}
	if err := Write(dir, r); err != nil {
		return err
	}
	views := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{JUnitFile, func(b *bytes.Buffer) error { return WriteJUnit(b, r) }},
		{SummaryFile, func(b *bytes.Buffer) error { return WriteMarkdown(b, r) }},
		{HTMLFile, func(b *bytes.Buffer) error { return WriteHTML(b, r, opts...) }},
	}
	var errs []error
	for _, v := range views {
		var b bytes.Buffer
		if err := v.write(&b); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := writeFileAtomic(filepath.Join(dir, v.name), b.Bytes()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readTranscript returns the transcript text for embedding, or a note saying why there is none.
func readTranscript(dir, rel string, max int) (text, note string) {
	if rel == "" {
		return "", "no transcript recorded for this cell"
	}
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Sprintf("transcript path %q leaves the results directory: not embedded", rel)
	}
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return "", fmt.Sprintf("transcript not embedded: %v", err)
	}
	if len(data) > max {
		head := max / 4
		tail := max - head
		omitted := len(data) - head - tail
		data = append(append(append([]byte(nil), data[:head]...),
			fmt.Sprintf("\n[… %d bytes left out; the full transcript is %s …]\n", omitted, rel)...),
			data[len(data)-tail:]...)
	}
	return clean(string(data), true), ""
}
