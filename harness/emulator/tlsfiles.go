package emulator

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"github.com/agenttls/agenttls/harness/pki"
)

// Rancher's fixed locations for a mounted serving certificate and private CA.
const (
	DefaultCertFile    = "/etc/rancher/ssl/cert.pem"
	DefaultKeyFile     = "/etc/rancher/ssl/key.pem"
	DefaultCACertsFile = "/etc/rancher/ssl/cacerts.pem"
)

// TLSFiles names the mounted files. A path that does not exist counts as not mounted, as with
// Rancher.
type TLSFiles struct {
	CertFile    string
	KeyFile     string
	CACertsFile string
	// NoCACerts is Rancher's --no-cacerts: the certificate comes from a CA the nodes already
	// trust, so the cacerts setting stays empty.
	NoCACerts bool
}

// Serving is what LoadTLS found.
type Serving struct {
	// Certificate is the serving chain and key.
	Certificate tls.Certificate
	// CACerts is the cacerts setting: the CA file trimmed as Rancher trims it; empty with
	// NoCACerts.
	CACerts []byte
}

// LoadTLS applies Rancher's rules for mounted certificates: certificate and key come together;
// with them, exactly one of a CA file and NoCACerts must be given. Unlike Rancher the
// emulator never generates its own certificate or CA, so a missing pair or an empty CA file is
// an error too.
func LoadTLS(f TLSFiles) (*Serving, error) {
	certOK, keyOK, caOK := exists(f.CertFile), exists(f.KeyFile), exists(f.CACertsFile)
	switch {
	case certOK != keyOK:
		return nil, fmt.Errorf("serving certificate %q present=%t but key %q present=%t: mount both files, or neither",
			f.CertFile, certOK, f.KeyFile, keyOK)
	case !certOK:
		return nil, fmt.Errorf("no serving certificate at %q and key at %q: the emulator does not generate one, so mount both (for example leaf.WriteFiles from harness/pki)",
			f.CertFile, f.KeyFile)
	case caOK && f.NoCACerts:
		return nil, fmt.Errorf("both a CA file (%q) and --no-cacerts were given: keep the CA file for a private CA, or drop it and keep --no-cacerts for a certificate from a CA the nodes already trust", f.CACertsFile)
	case !caOK && !f.NoCACerts:
		return nil, fmt.Errorf("no CA file at %q and no --no-cacerts: mount the private CA there, or pass --no-cacerts when the certificate comes from a CA the nodes already trust", f.CACertsFile)
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load serving certificate %q with key %q: %w", f.CertFile, f.KeyFile, err)
	}
	s := &Serving{Certificate: cert, CACerts: []byte{}}
	if f.NoCACerts {
		return s, nil
	}
	raw, err := os.ReadFile(f.CACertsFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	s.CACerts = pki.Setting(raw)
	if len(s.CACerts) == 0 {
		return nil, fmt.Errorf("CA file %q is empty: Rancher would replace it with a CA of its own, which the emulator does not do; put the CA in it or use --no-cacerts", f.CACertsFile)
	}
	return s, nil
}

func exists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
