package emulator

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/pki"
)

func TestLoadTLS(t *testing.T) {
	p, err := pki.New()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := p.Issue(p.PrivateIntermediate, []string{"r.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key, err := leaf.WriteFiles(dir, "cert")
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "cacerts.pem")
	// As an operator might write it: a leading blank line and CRLF ends.
	caFile := append([]byte("\r\n"), bytes.ReplaceAll(p.PrivateRoot.CertPEM, []byte("\n"), []byte("\r\n"))...)
	if err := os.WriteFile(ca, caFile, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte(" \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	s, err := LoadTLS(TLSFiles{CertFile: cert, KeyFile: key, CACertsFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if want := pki.Setting(caFile); !bytes.Equal(s.CACerts, want) || bytes.HasPrefix(s.CACerts, []byte("\r\n")) || !bytes.Contains(s.CACerts, []byte("\r\n")) {
		t.Fatalf("setting %q not trimmed like Rancher", s.CACerts)
	}
	if len(s.Certificate.Certificate) != 2 {
		t.Fatalf("chain length %d", len(s.Certificate.Certificate))
	}

	s, err = LoadTLS(TLSFiles{CertFile: cert, KeyFile: key, CACertsFile: missing, NoCACerts: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.CACerts == nil || len(s.CACerts) != 0 {
		t.Fatalf("--no-cacerts: setting %q", s.CACerts)
	}

	bad := []struct {
		name string
		f    TLSFiles
		want string
	}{
		{"cert without key", TLSFiles{CertFile: cert, KeyFile: missing, CACertsFile: ca}, "mount both"},
		{"key without cert", TLSFiles{CertFile: missing, KeyFile: key, CACertsFile: ca}, "mount both"},
		{"neither", TLSFiles{CertFile: missing, KeyFile: missing, CACertsFile: ca}, "does not generate"},
		{"cacerts and no-cacerts", TLSFiles{CertFile: cert, KeyFile: key, CACertsFile: ca, NoCACerts: true}, "both a CA file"},
		{"neither cacerts nor no-cacerts", TLSFiles{CertFile: cert, KeyFile: key, CACertsFile: missing}, "no CA file"},
		{"empty cacerts", TLSFiles{CertFile: cert, KeyFile: key, CACertsFile: empty}, "is empty"},
		{"key mismatch", TLSFiles{CertFile: cert, KeyFile: ca, CACertsFile: ca}, "load serving certificate"},
	}
	for _, b := range bad {
		if _, err := LoadTLS(b.f); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %v, want one mentioning %q", b.name, err, b.want)
		}
	}
}
