package dockerx

import (
	"archive/tar"
	"bytes"
	"fmt"
	"time"
)

// File is one regular file of an in-memory tar archive.
type File struct {
	Name string // path inside the archive, without a leading '/'
	Mode int64
	Body []byte
}

// Tar returns an uncompressed tar archive of files, with fixed owners and times so that equal
// inputs give equal archives.
func Tar(files ...File) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, f := range files {
		hdr := &tar.Header{
			Name:     f.Name,
			Mode:     f.Mode,
			Size:     int64(len(f.Body)),
			Typeflag: tar.TypeReg,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Body); err != nil {
			return nil, fmt.Errorf("tar body %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return &buf, nil
}
