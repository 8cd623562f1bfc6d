package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCACertsServed(t *testing.T) {
	bom := "\ufeff"
	cases := []struct {
		name    string
		setting string
		want    string
	}{
		{"empty", "", ""},
		{"only white space", " \n\t\r\n ", ""},
		{"no trailing newline gets one", "PEM", "PEM\n"},
		{"one trailing newline kept", "PEM\n", "PEM\n"},
		{"two trailing newlines kept verbatim", "PEM\n\n", "PEM\n\n"},
		{"leading blank lines are served", "\n\nPEM", "\n\nPEM\n"},
		{"CRLF inside survives", "A\r\nB", "A\r\nB\n"},
		{"trailing CRLF ends in newline already", "A\r\nB\r\n", "A\r\nB\r\n"},
		{"trailing CR alone gets a newline", "A\r", "A\r\n"},
		{"BOM survives", bom + "PEM", bom + "PEM\n"},
		{"trailing spaces kept, newline added", "PEM  ", "PEM  \n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := CACertsServed([]byte(c.setting))
			if got == nil {
				t.Fatal("CACertsServed returned nil; want a non-nil (possibly empty) slice")
			}
			if string(got) != c.want {
				t.Fatalf("CACertsServed(%q) = %q, want %q", c.setting, got, c.want)
			}
		})
	}
}

func TestCACertsServedDoesNotAlias(t *testing.T) {
	in := []byte("PEM\n")
	out := CACertsServed(in)
	out[0] = 'X'
	if string(in) != "PEM\n" {
		t.Fatalf("CACertsServed modified its input: %q", in)
	}
}

func TestSetting(t *testing.T) {
	bom := "\ufeff"
	cases := []struct{ file, want string }{
		{"", ""},
		{"\n\n", ""},
		{"\n\nPEM\n\n", "PEM"},
		{"PEM\r\n", "PEM"},
		{"A\r\nB\r\n", "A\r\nB"},
		{bom + "PEM\n", bom + "PEM"},
		{"  " + bom + "PEM\n", bom + "PEM"},
	}
	for _, c := range cases {
		if got := Setting([]byte(c.file)); string(got) != c.want {
			t.Errorf("Setting(%q) = %q, want %q", c.file, got, c.want)
		}
	}
}

func TestChecksum(t *testing.T) {
	// Independent values from `printf ... | sha256sum`.
	cases := []struct{ setting, want string }{
		{"", ""},
		{" \n", ""},
		{"X", "7058299627365fc7a3dd7840fd3d56f29306cd30c0f2c13cb500fe79617290ff"},
		{"X\n", "7058299627365fc7a3dd7840fd3d56f29306cd30c0f2c13cb500fe79617290ff"},
		{"\ufeffX\r\nY", "e8586eecb9715b4f815ab02455ae9672ac5dca1cf688b903391b30eca6776db1"},
	}
	for _, c := range cases {
		if got := Checksum([]byte(c.setting)); got != c.want {
			t.Errorf("Checksum(%q) = %q, want %q", c.setting, got, c.want)
		}
	}
	// A file as an operator writes it (one trailing newline) hashes like sha256sum of the file.
	p := newPKI(t)
	if a, b := Checksum(Setting(p.PrivateRoot.CertPEM)), Checksum(p.PrivateRoot.CertPEM); a != b {
		t.Fatalf("checksum of trimmed setting %s differs from checksum of the PEM file %s", a, b)
	}
	if Checksum(p.PrivateRoot.CertPEM) == Checksum(p.StaleRoot.CertPEM) {
		t.Fatal("private and stale roots have the same checksum")
	}
}

func newPKI(t *testing.T) *PKI {
	t.Helper()
	p, err := New(WithLabel("test"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChainsVerify(t *testing.T) {
	p := newPKI(t)
	const host = "rancher.agenttls.test"
	ip := net.ParseIP("10.11.12.13")

	rancher, err := p.Issue(p.PrivateIntermediate, []string{host}, []net.IP{ip})
	if err != nil {
		t.Fatal(err)
	}
	public, err := p.Issue(p.PublicRoot, []string{host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := p.Issue(p.AttackerRoot, []string{host}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The served chain is leaf then intermediate.
	blocks := pemBlocks(t, rancher.CertPEM)
	if len(blocks) != 2 {
		t.Fatalf("private leaf chain has %d certificates, want 2 (leaf, intermediate)", len(blocks))
	}
	if !bytes.Equal(blocks[0].Bytes, rancher.Cert.Raw) || !bytes.Equal(blocks[1].Bytes, p.PrivateIntermediate.Cert.Raw) {
		t.Fatal("private leaf chain is not leaf first then intermediate")
	}
	if n := len(pemBlocks(t, public.CertPEM)); n != 1 {
		t.Fatalf("public leaf chain has %d certificates, want 1", n)
	}
	if n := len(rancher.TLS.Certificate); n != 2 {
		t.Fatalf("tls.Certificate holds %d certificates, want 2", n)
	}

	verify := func(l *Leaf, root *CA, name string) error {
		inter := x509.NewCertPool()
		for _, b := range pemBlocks(t, l.CertPEM)[1:] {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			inter.AddCert(c)
		}
		_, err := l.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: root.Pool(), Intermediates: inter})
		return err
	}
	if err := verify(rancher, p.PrivateRoot, host); err != nil {
		t.Fatalf("private leaf does not verify against private root: %v", err)
	}
	if err := verify(rancher, p.PrivateRoot, ip.String()); err != nil {
		t.Fatalf("private leaf does not verify for its IP SAN: %v", err)
	}
	if err := verify(rancher, p.PrivateIntermediate, host); err != nil {
		t.Fatalf("PrivateIntermediate.Pool should hold the private root: %v", err)
	}
	if err := verify(public, p.PublicRoot, host); err != nil {
		t.Fatalf("public leaf does not verify against public root: %v", err)
	}
	if err := verify(forged, p.AttackerRoot, host); err != nil {
		t.Fatalf("forged leaf does not verify against attacker root: %v", err)
	}
	for _, c := range []struct {
		leaf *Leaf
		root *CA
	}{{rancher, p.PublicRoot}, {rancher, p.StaleRoot}, {forged, p.PrivateRoot}, {public, p.PrivateRoot}, {rancher, p.AttackerRoot}} {
		var uae x509.UnknownAuthorityError
		if err := verify(c.leaf, c.root, host); !errors.As(err, &uae) {
			t.Errorf("leaf of %s against %s: got %v, want unknown authority", c.leaf.Issuer.Name, c.root.Name, err)
		}
	}
	if err := verify(rancher, p.PrivateRoot, "other.test"); err == nil {
		t.Error("private leaf verified for a name it does not carry")
	}
}

func TestTLSHandshake(t *testing.T) {
	p := newPKI(t)
	leaf, err := p.Issue(p.PrivateIntermediate, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.WriteString(c, "hi")
			}()
		}
	}()
	dial := func(root *CA) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
			&tls.Config{RootCAs: root.Pool()})
		if err != nil {
			return err
		}
		return c.Close()
	}
	if err := dial(p.PrivateRoot); err != nil {
		t.Fatalf("handshake trusting the private root: %v", err)
	}
	if err := dial(p.PublicRoot); err == nil {
		t.Fatal("handshake trusting only the public root succeeded against a private leaf")
	}
}

func TestWriteDir(t *testing.T) {
	p := newPKI(t)
	dir := filepath.Join(t.TempDir(), "pki")
	if err := p.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	for _, ca := range p.CAs() {
		cert, err := os.ReadFile(filepath.Join(dir, ca.Name+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cert, ca.CertPEM) {
			t.Errorf("%s.pem differs from CertPEM", ca.Name)
		}
		keyPath := filepath.Join(dir, ca.Name+".key")
		fi, err := os.Stat(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", keyPath, fi.Mode().Perm())
		}
		key, _ := os.ReadFile(keyPath)
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			t.Errorf("%s: key does not match certificate: %v", ca.Name, err)
		}
	}

	leaf, err := p.Issue(p.PrivateIntermediate, []string{"rancher.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// An existing key file with loose bits is tightened.
	if err := os.WriteFile(filepath.Join(dir, "rancher.key"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, err := leaf.WriteFiles(dir, "rancher")
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("leaf key mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Errorf("written leaf does not load: %v", err)
	}
}

func TestOptions(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	p, err := New(WithClock(func() time.Time { return now }), WithValidity(time.Hour), WithLabel("run-42"))
	if err != nil {
		t.Fatal(err)
	}
	c := p.AttackerRoot.Cert
	if !c.NotAfter.Equal(now.Add(time.Hour)) || !c.NotBefore.Equal(now.Add(-time.Hour)) {
		t.Errorf("validity %v..%v, want %v..%v", c.NotBefore, c.NotAfter, now.Add(-time.Hour), now.Add(time.Hour))
	}
	if len(c.Subject.OrganizationalUnit) != 1 || c.Subject.OrganizationalUnit[0] != "run-42" {
		t.Errorf("subject %v does not carry the label", c.Subject)
	}
	if _, err := New(WithValidity(0)); err == nil {
		t.Error("zero validity accepted")
	}
	if _, err := p.Issue(p.PublicRoot, nil, nil); err == nil {
		t.Error("leaf without names accepted")
	}
}

func pemBlocks(t *testing.T, b []byte) []*pem.Block {
	t.Helper()
	var out []*pem.Block
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		out = append(out, blk)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		t.Fatalf("trailing bytes after PEM: %q", b)
	}
	return out
}
