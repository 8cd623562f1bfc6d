// Package pki makes the certificate material of one harness run: the private CA Rancher serves,
// a "public" CA that stands for a well-known authority, an attacker CA for the interception
// proxies and a stale CA for wrong checksums, plus leaf certificates for any of them. It also
// knows the exact bytes Rancher serves at /cacerts and the checksum it embeds in the install
// script (see reference/contract.md, section 1.1).
//
// Everything is ECDSA P-256 and lives in memory until WriteDir or Leaf.WriteFiles puts it on
// disk, under one directory the caller owns and removes.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Names of the certificate authorities, also the base names of their files in WriteDir.
const (
	NamePrivateRoot         = "private-root"
	NamePrivateIntermediate = "private-intermediate"
	NamePublicRoot          = "public-root"
	NameAttackerRoot        = "attacker-root"
	NameStaleRoot           = "stale-root"
)

// CA is one certificate authority with its key.
type CA struct {
	// Name is one of the Name* constants; WriteDir writes <Name>.pem and <Name>.key.
	Name string
	// Cert is the parsed certificate.
	Cert *x509.Certificate
	// Key signs what this CA issues.
	Key *ecdsa.PrivateKey
	// CertPEM is this CA's certificate alone, one PEM block ending in "\n".
	CertPEM []byte
	// KeyPEM is the PKCS#8 private key.
	KeyPEM []byte
	// Issuer is the CA that signed this one; nil for a root.
	Issuer *CA
}

// Root returns the self-signed CA at the top of c's chain.
func (c *CA) Root() *CA {
	for c.Issuer != nil {
		c = c.Issuer
	}
	return c
}

// Pool returns a pool holding only c's root, for verifying chains that end at it.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Root().Cert)
	return p
}

// Leaf is an end-entity certificate for TLS servers (and clients).
type Leaf struct {
	// Cert is the parsed leaf certificate.
	Cert *x509.Certificate
	// CertPEM is the chain a server presents: the leaf first, then every intermediate up to
	// (not including) the root.
	CertPEM []byte
	// KeyPEM is the PKCS#8 private key.
	KeyPEM []byte
	// TLS is CertPEM and KeyPEM loaded for crypto/tls.
	TLS tls.Certificate
	// Issuer is the CA that signed the leaf.
	Issuer *CA
}

// WriteFiles writes <base>.pem (the chain) and <base>.key (mode 0600) into dir and returns
// their paths.
func (l *Leaf) WriteFiles(dir, base string) (certPath, keyPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("write leaf %s: create %s: %w", base, dir, err)
	}
	certPath = filepath.Join(dir, base+".pem")
	keyPath = filepath.Join(dir, base+".key")
	if err := writeFile(certPath, l.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("write leaf %s: %w", base, err)
	}
	if err := writeFile(keyPath, l.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write leaf %s: %w", base, err)
	}
	return certPath, keyPath, nil
}

// PKI is the full set of authorities of one run.
type PKI struct {
	// PrivateRoot is Rancher's private CA; its PEM is what the cacerts setting holds.
	PrivateRoot *CA
	// PrivateIntermediate is signed by PrivateRoot and issues Rancher's serving certificate.
	PrivateIntermediate *CA
	// PublicRoot stands for a public CA (Let's Encrypt); it goes into the node's system store.
	PublicRoot *CA
	// AttackerRoot issues the forged certificates of the MITM proxy.
	AttackerRoot *CA
	// StaleRoot is a CA Rancher does not serve, used to compute a "wrong" checksum.
	StaleRoot *CA

	opts options
}

type options struct {
	validity time.Duration
	now      func() time.Time
	label    string
}

// Option configures New.
type Option func(*options) error

// WithValidity sets how long every certificate is valid, counted from one hour before now
// (default 7 days).
func WithValidity(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("validity must be positive, got %s", d)
		}
		o.validity = d
		return nil
	}
}

// WithClock sets the clock used for NotBefore/NotAfter (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("clock must not be nil")
		}
		o.now = now
		return nil
	}
}

// WithLabel adds a label (for example the run ID) to every subject, so certificates of
// different runs are told apart in logs and trust stores.
func WithLabel(label string) Option {
	return func(o *options) error {
		o.label = label
		return nil
	}
}

// New generates the five authorities.
func New(opts ...Option) (*PKI, error) {
	o := options{validity: 7 * 24 * time.Hour, now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
	}
	p := &PKI{opts: o}
	var err error
	if p.PrivateRoot, err = p.newCA(NamePrivateRoot, nil); err != nil {
		return nil, err
	}
	if p.PrivateIntermediate, err = p.newCA(NamePrivateIntermediate, p.PrivateRoot); err != nil {
		return nil, err
	}
	if p.PublicRoot, err = p.newCA(NamePublicRoot, nil); err != nil {
		return nil, err
	}
	if p.AttackerRoot, err = p.newCA(NameAttackerRoot, nil); err != nil {
		return nil, err
	}
	if p.StaleRoot, err = p.newCA(NameStaleRoot, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// CAs lists every authority in a fixed order.
func (p *PKI) CAs() []*CA {
	return []*CA{p.PrivateRoot, p.PrivateIntermediate, p.PublicRoot, p.AttackerRoot, p.StaleRoot}
}

// WriteDir writes <name>.pem (certificate) and <name>.key (mode 0600) for every CA into dir,
// creating it with mode 0700 if needed. Removing dir removes every key.
func (p *PKI) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: create %s: %w", dir, err)
	}
	for _, ca := range p.CAs() {
		if err := writeFile(filepath.Join(dir, ca.Name+".pem"), ca.CertPEM, 0o644); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
		if err := writeFile(filepath.Join(dir, ca.Name+".key"), ca.KeyPEM, 0o600); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	}
	return nil
}

// Issue signs a server leaf for dnsNames and ips with issuer. At least one name or IP is needed.
func (p *PKI) Issue(issuer *CA, dnsNames []string, ips []net.IP) (*Leaf, error) {
	if issuer == nil {
		return nil, errors.New("pki: issue: issuer is nil; pass one of the PKI's CAs")
	}
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("pki: issue: give at least one DNS name or IP for the certificate")
	}
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	} else {
		cn = ips[0].String()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %s: generate key: %w", cn, err)
	}
	tmpl, err := p.template(cn)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.DNSNames = append([]string(nil), dnsNames...)
	tmpl.IPAddresses = append([]net.IP(nil), ips...)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.Cert, &key.PublicKey, issuer.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %s: sign with %s: %w", cn, issuer.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %s: parse: %w", cn, err)
	}
	chain := encodeCert(der)
	for ca := issuer; ca.Issuer != nil; ca = ca.Issuer {
		chain = append(chain, ca.CertPEM...)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %s: %w", cn, err)
	}
	tc, err := tls.X509KeyPair(chain, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %s: load key pair: %w", cn, err)
	}
	return &Leaf{Cert: cert, CertPEM: chain, KeyPEM: keyPEM, TLS: tc, Issuer: issuer}, nil
}

func (p *PKI) newCA(name string, issuer *CA) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: generate key: %w", name, err)
	}
	tmpl, err := p.template("agenttls " + name)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	parent, signer := tmpl, key
	if issuer != nil {
		parent, signer = issuer.Cert, issuer.Key
		tmpl.MaxPathLenZero = true
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: sign: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: parse: %w", name, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", name, err)
	}
	return &CA{Name: name, Cert: cert, Key: key, CertPEM: encodeCert(der), KeyPEM: keyPEM, Issuer: issuer}, nil
}

func (p *PKI) template(cn string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	subject := pkix.Name{CommonName: cn, Organization: []string{"agenttls"}}
	if p.opts.label != "" {
		subject.OrganizationalUnit = []string{p.opts.label}
	}
	now := p.opts.now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(p.opts.validity),
	}, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFile writes data with exactly perm, even over an existing file with other bits.
func writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(path, perm); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return nil
}
