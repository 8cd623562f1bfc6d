package testbed

import (
	"fmt"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/pki"
	"github.com/agenttls/agenttls/harness/script"
)

const (
	certPath    = "/etc/rancher/ssl/cert.pem"
	keyPath     = "/etc/rancher/ssl/key.pem"
	cacertsPath = "/etc/rancher/ssl/cacerts.pem"
	scriptPath  = "/script/install.sh"
	bodyPath    = "/proxy/cacerts-body"
)

// emulatorSpec is a Rancher emulator set up the way a Docker-installed Rancher would be for the
// CA kind: the certificate chain and key at Rancher's paths, plus cacerts.pem (private CA kinds)
// or --no-cacerts (public CA).
func (tb *Testbed) emulatorSpec(tools string, s *script.Script, p *pki.PKI, l leafSet, k serverKeyParts, labels map[string]string, o options) (serverSpec, error) {
	leaf := l.rancher(k.ca)
	files := []file{
		{certPath, 0o644, leaf.CertPEM},
		{keyPath, 0o600, leaf.KeyPEM},
		{scriptPath, 0o644, s.Body},
	}
	cmd := []string{"/agenttls-emulator",
		"--cert", certPath, "--key", keyPath,
		"--agent-tls-mode", string(k.mode),
		"--server-url", "https://" + tb.Hostname,
		"--install-script", scriptPath,
		"--assets-dir", "/assets",
		"--preamble-style", o.preamble,
		"--token-secret", tb.TokenSecret,
		"--https-listen", ":443", "--control-listen", ":9090",
	}
	if ca := cacertsFile(p, k.ca); ca != nil {
		files = append(files, file{cacertsPath, 0o644, ca})
		cmd = append(cmd, "--cacerts", cacertsPath)
	} else {
		cmd = append(cmd, "--no-cacerts")
	}
	return serverSpec{name: tb.containerName(k), image: tools, network: tb.Network, labels: labels, cmd: cmd, files: files}, nil
}

// proxySpec is a proxy in front of the emulator of the same CA kind and mode. The MITM proxy
// presents a certificate forged by the attacker root and serves that root at /cacerts; a tamper
// proxy presents Rancher's own certificate and changes /cacerts.
func (tb *Testbed) proxySpec(tools string, p *pki.PKI, l leafSet, k serverKeyParts, labels map[string]string) (serverSpec, error) {
	up, ok := tb.Servers[serverKey(k.ca, k.mode, "")]
	if !ok {
		return serverSpec{}, fmt.Errorf("no emulator for %s/%s behind proxy %s", k.ca, k.mode, k.proxy)
	}
	leaf := l.rancher(k.ca)
	body := pki.CACertsServed(p.PrivateIntermediate.CertPEM) // another valid CA than Rancher's
	cmd := []string{"/agenttls-proxy", "--upstream", "https://" + up.IP + ":443",
		"--cert", certPath, "--key", keyPath, "--cacerts-body", bodyPath,
		"--listen", ":443", "--control-listen", ":9090"}
	switch matrix.Path(k.proxy) {
	case "mitm":
		leaf = l.attacker
		body = pki.CACertsServed(p.AttackerRoot.CertPEM)
		cmd = append(cmd, "--mode", "mitm")
	case matrix.PathTamper:
		cmd = append(cmd, "--mode", "tamper", "--tamper", "swap")
	case matrix.PathTamperGarbage:
		cmd = append(cmd, "--mode", "tamper", "--tamper", "garbage")
	case matrix.PathTamperEmpty:
		cmd = append(cmd, "--mode", "tamper", "--tamper", "empty")
	default:
		return serverSpec{}, fmt.Errorf("unknown proxy kind %q", k.proxy)
	}
	files := []file{{certPath, 0o644, leaf.CertPEM}, {keyPath, 0o600, leaf.KeyPEM}, {bodyPath, 0o644, body}}
	return serverSpec{name: tb.containerName(k), image: tools, network: tb.Network, labels: labels, cmd: cmd, files: files}, nil
}

func (tb *Testbed) containerName(k serverKeyParts) string {
	kind := k.proxy
	if kind == "" {
		kind = "emulator"
	}
	return fmt.Sprintf("agenttls-%s-%s-%s-%s", tb.RunID, kind, k.ca, k.mode)
}
