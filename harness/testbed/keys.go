package testbed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"sort"

	"github.com/agenttls/agenttls/harness/emulator"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/pki"
)

// serverKeyParts names one server: the emulator of a CA kind and mode, or a proxy kind in
// front of it.
type serverKeyParts struct {
	ca    matrix.CAKind
	mode  matrix.Mode
	proxy string // "" for the emulator itself
}

func (k serverKeyParts) String() string { return serverKey(k.ca, k.mode, k.proxy) }

func serverKey(ca matrix.CAKind, mode matrix.Mode, proxy string) string {
	kind := proxy
	if kind == "" {
		kind = "server"
	}
	return fmt.Sprintf("%s/%s/%s", kind, ca, mode)
}

// proxyKind maps a path to the proxy that serves it: both MITM paths share one proxy (only the
// node's trust differs); each tamper variant is its own proxy.
func proxyKind(p matrix.Path) string {
	switch p {
	case matrix.PathDirect:
		return ""
	case matrix.PathMITM, matrix.PathMITMTrusted:
		return "mitm"
	default:
		return string(p)
	}
}

// needs lists the servers the cells use. With anyMode, one server (and one of each proxy) per
// CA kind serves both modes, as in the Rancher tier.
func needs(cells []matrix.Cell, anyModeServers bool) map[serverKeyParts]bool {
	n := map[serverKeyParts]bool{}
	for _, c := range cells {
		mode := c.Mode
		if anyModeServers {
			mode = anyMode
		}
		n[serverKeyParts{ca: c.CA, mode: mode}] = true
		if k := proxyKind(c.Path); k != "" {
			n[serverKeyParts{ca: c.CA, mode: mode, proxy: k}] = true
		}
	}
	return n
}

func sortKeys(k []serverKeyParts) {
	sort.Slice(k, func(i, j int) bool { return k[i].String() < k[j].String() })
}

// trustKey names the node's system trust store for cell c: the public root stands for a public
// CA the distribution trusts; the attacker root is trusted on the mitm-trusted path only.
func trustKey(c matrix.Cell) string {
	k := "system"
	if c.CA == matrix.CAPublic {
		k += "+public"
	}
	if c.Path == matrix.PathMITMTrusted {
		k += "+attacker"
	}
	return k
}

func trustRoots(p *pki.PKI, c matrix.Cell) map[string][]byte {
	roots := map[string][]byte{}
	if c.CA == matrix.CAPublic {
		roots["agenttls-public-root"] = p.PublicRoot.CertPEM
	}
	if c.Path == matrix.PathMITMTrusted {
		roots["agenttls-attacker-root"] = p.AttackerRoot.CertPEM
	}
	return roots
}

// cacertsFile is the cacerts.pem given to Rancher for a CA kind (nil: --no-cacerts).
func cacertsFile(p *pki.PKI, ca matrix.CAKind) []byte {
	switch ca {
	case matrix.CAPrivate:
		return p.PrivateRoot.CertPEM
	case matrix.CAPrivateBundle:
		// Field case B11: intermediate then root, a leading blank line and two trailing newlines.
		b := append([]byte("\n"), p.PrivateIntermediate.CertPEM...)
		b = append(b, p.PrivateRoot.CertPEM...)
		return append(b, '\n')
	default:
		return nil
	}
}

type leafSet struct {
	private, public, attacker *pki.Leaf
}

func (tb *Testbed) leaves(p *pki.PKI) (leafSet, error) {
	names := []string{tb.Hostname, "localhost"}
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	var s leafSet
	var err error
	if s.private, err = p.Issue(p.PrivateIntermediate, names, ips); err != nil {
		return s, err
	}
	if s.public, err = p.Issue(p.PublicRoot, names, ips); err != nil {
		return s, err
	}
	if s.attacker, err = p.Issue(p.AttackerRoot, names, ips); err != nil {
		return s, err
	}
	return s, nil
}

func (s leafSet) rancher(ca matrix.CAKind) *pki.Leaf {
	if ca == matrix.CAPublic {
		return s.public
	}
	return s.private
}

func cellToken(secret, name string) string { return emulator.CellToken(secret, name) }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
