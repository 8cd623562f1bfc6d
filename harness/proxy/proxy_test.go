package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agenttls/agenttls/harness/emulator"
	"github.com/agenttls/agenttls/harness/emulator/accesslog"
	"github.com/agenttls/agenttls/harness/pki"
)

const (
	rancherHost = "rancher.agenttls.test"
	rancherURL  = "https://" + rancherHost
	secret      = "proxy-test-secret"
	nodeIP      = "127.0.0.2"
)

type world struct {
	pki     *pki.PKI
	rancher *pki.Leaf // Rancher's real serving certificate
	emu     *emulator.Emulator
	emuURL  string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	p, err := pki.New(pki.WithLabel(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := p.Issue(p.PrivateIntermediate, []string{rancherHost}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{
		CACerts:       pki.Setting(p.PrivateRoot.CertPEM),
		ServerURL:     "https://" + rancherHost,
		InstallScript: []byte("#!/bin/sh\necho raw\n"),
		TokenSecret:   secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(emu.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &world{pki: p, rancher: leaf, emu: emu, emuURL: srv.URL}
}

// startProxy serves cfg over TLS with cert on 127.0.0.1 and returns its URL and a control client.
func startProxy(t *testing.T, cfg Config, cert tls.Certificate) (string, *Proxy, *accesslog.Client) {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ctl := httptest.NewServer(p.ControlHandler())
	t.Cleanup(ctl.Close)
	return srv.URL, p, &accesslog.Client{BaseURL: ctl.URL}
}

// node is an HTTPS client from nodeIP that trusts only root, as curl on a node with that CA
// would. Its name resolution sends every host to target (a proxy or the emulator "https://ip:port"),
// so URLs name the Rancher host exactly as on an intercepted network.
func node(t *testing.T, root *pki.CA, target string) *http.Client {
	t.Helper()
	addr := strings.TrimPrefix(target, "https://")
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(nodeIP)}}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: root.Pool()},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func call(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func connectHeaders(name, id string) map[string]string {
	return map[string]string{
		"Authorization":        "Bearer " + emulator.CellToken(secret, name),
		"X-Cattle-Id":          id,
		"X-Cattle-Role-Worker": "true",
		"X-Cattle-Node-Name":   "n1",
	}
}

func TestMITM(t *testing.T) {
	w := newWorld(t)
	forged, err := w.pki.Issue(w.pki.AttackerRoot, []string{rancherHost}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	attackerBody := pki.CACertsServed(w.pki.AttackerRoot.CertPEM)
	url, p, ctl := startProxy(t, Config{Mode: MITM, Upstream: w.emuURL, CACertsBody: attackerBody}, forged.TLS)
	ctx := context.Background()
	emuStart := w.emu.Seq()

	// A node that trusts only Rancher's private root refuses the forged certificate.
	_, err = node(t, w.pki.PrivateRoot, url).Get(rancherURL + "/healthz")
	var uae x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &uae) {
		t.Fatalf("node trusting the private root: %v, want unknown authority", err)
	}

	// A node that trusts the attacker root (mitm-trusted) is served the attacker's CA...
	c := node(t, w.pki.AttackerRoot, url)
	resp, body := call(t, c, rancherURL+"/cacerts", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, attackerBody) || resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("/cacerts through mitm: %d %q", resp.StatusCode, body)
	}
	if got := w.emu.Requests("", emuStart).Requests; len(got) != 0 {
		t.Fatalf("mitm forwarded /cacerts upstream: %+v", got)
	}

	// ...and everything else reaches the real server, marked as intercepted.
	if _, body := call(t, c, rancherURL+"/healthz", nil); string(body) != "ok" {
		t.Fatalf("healthz through mitm: %q", body)
	}
	_, viaProxy := call(t, c, rancherURL+"/system-agent-install.sh", nil)
	if !bytes.Contains(viaProxy, []byte("CATTLE_CA_CHECKSUM=\""+w.emu.Checksum()+"\"")) {
		t.Fatalf("script through mitm lost the real checksum:\n%s", viaProxy)
	}
	resp, body = call(t, c, rancherURL+"/v3/connect/agent", connectHeaders("cell-mitm", "m1"))
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"namespace": "fleet-default"`)) {
		t.Fatalf("connect through mitm: %d %s", resp.StatusCode, body)
	}
	regs := w.emu.Registrations("cell-mitm", 0).Registrations
	if len(regs) != 1 || regs[0].InterceptedBy != "mitm" || regs[0].Client != nodeIP || strings.HasPrefix(regs[0].Remote, nodeIP+":") {
		t.Fatalf("registration through mitm: %+v", regs)
	}
	emuLog := w.emu.Requests(nodeIP, emuStart).Requests
	if len(emuLog) != 3 {
		t.Fatalf("emulator saw %d requests from the node through the proxy, want 3: %+v", len(emuLog), emuLog)
	}
	for _, e := range emuLog {
		if e.InterceptedBy != "mitm" || e.Host != rancherHost {
			t.Errorf("emulator entry %+v: want interceptedBy mitm and the Rancher host", e)
		}
	}

	// The proxy's own log, through its control API.
	got, err := ctl.Requests(ctx, nodeIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Requests) != 4 || got.Requests[0].Path != "/cacerts" || got.Requests[0].Note != "served attacker cacerts" ||
		got.Requests[1].Note != "forwarded" || got.Requests[0].InterceptedBy != "" {
		t.Fatalf("proxy log: %+v", got.Requests)
	}
	if seq, err := ctl.Seq(ctx); err != nil || seq != got.Requests[3].Seq || seq != p.Seq() {
		t.Fatalf("proxy seq %d %v", seq, err)
	}
	// The failed handshake made no HTTP request.
	if all := p.Requests("", 0).Requests; len(all) != 4 {
		t.Fatalf("proxy logged %d requests, want 4", len(all))
	}
}

func TestTamper(t *testing.T) {
	w := newWorld(t)
	realSum := w.emu.Checksum()
	stale := pki.CACertsServed(w.pki.StaleRoot.CertPEM)
	for _, tc := range []struct {
		tamper Tampering
		body   []byte
		want   []byte
	}{
		{TamperSwap, stale, stale},
		{TamperGarbage, nil, []byte(GarbageBody)},
		{TamperEmpty, nil, []byte{}},
	} {
		t.Run(string(tc.tamper), func(t *testing.T) {
			url, p, _ := startProxy(t, Config{Mode: Tamper, Tamper: tc.tamper, Upstream: w.emuURL, CACertsBody: tc.body}, w.rancher.TLS)
			emuStart := w.emu.Seq()
			// The proxy holds Rancher's real certificate: a node trusting the private root accepts it.
			c := node(t, w.pki.PrivateRoot, url)
			resp, body := call(t, c, rancherURL+"/cacerts", nil)
			if resp.StatusCode != 200 || !bytes.Equal(body, tc.want) {
				t.Fatalf("/cacerts: %d %q, want %q", resp.StatusCode, body, tc.want)
			}
			if resp.ContentLength != int64(len(tc.want)) {
				t.Errorf("content length %d, want %d", resp.ContentLength, len(tc.want))
			}
			if !bytes.Equal(p.CACertsBody(), tc.want) {
				t.Errorf("CACertsBody %q", p.CACertsBody())
			}
			s := sha256.Sum256(body)
			if hex.EncodeToString(s[:]) == realSum {
				t.Fatal("tampered body still matches the real checksum")
			}
			// The request did reach the emulator, marked as tampered traffic.
			emuLog := w.emu.Requests(nodeIP, emuStart).Requests
			if len(emuLog) != 1 || emuLog[0].Path != "/cacerts" || emuLog[0].InterceptedBy != "tamper" {
				t.Fatalf("emulator log %+v", emuLog)
			}
			proxyLog := p.Requests(nodeIP, 0).Requests
			if len(proxyLog) != 1 || proxyLog[0].Note != "tampered cacerts: "+string(tc.tamper) || proxyLog[0].Bytes != int64(len(tc.want)) {
				t.Fatalf("proxy log %+v", proxyLog)
			}
			// Everything else is untouched, including registration.
			if _, body := call(t, c, rancherURL+"/ping", nil); string(body) != "pong" {
				t.Fatalf("ping: %q", body)
			}
			name := "cell-tamper-" + string(tc.tamper)
			if resp, body := call(t, c, rancherURL+"/v3/connect/agent", connectHeaders(name, "m-"+name)); resp.StatusCode != 200 {
				t.Fatalf("connect: %d %s", resp.StatusCode, body)
			}
			if regs := w.emu.Registrations(name, 0).Registrations; len(regs) != 1 || regs[0].InterceptedBy != "tamper" || regs[0].Client != nodeIP {
				t.Fatalf("registration %+v", regs)
			}
			// /cacerts on the real server is unchanged.
			direct := node(t, w.pki.PrivateRoot, w.emuURL)
			if _, body := call(t, direct, rancherURL+"/cacerts", nil); !bytes.Equal(body, w.pki.PrivateRoot.CertPEM) {
				t.Fatalf("direct /cacerts changed: %q", body)
			}
		})
	}
}

func TestUpstreamPinning(t *testing.T) {
	w := newWorld(t)
	forged, err := w.pki.Issue(w.pki.AttackerRoot, []string{rancherHost}, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := pki.CACertsServed(w.pki.AttackerRoot.CertPEM)
	url, _, _ := startProxy(t, Config{Mode: MITM, Upstream: w.emuURL, CACertsBody: body,
		UpstreamCA: w.pki.PrivateRoot.CertPEM, UpstreamServerName: rancherHost}, forged.TLS)
	c := node(t, w.pki.AttackerRoot, url)
	if resp, b := call(t, c, rancherURL+"/ping", nil); resp.StatusCode != 200 || string(b) != "pong" {
		t.Fatalf("pinned to the right CA: %d %q", resp.StatusCode, b)
	}

	url, p, _ := startProxy(t, Config{Mode: MITM, Upstream: w.emuURL, CACertsBody: body,
		UpstreamCA: w.pki.StaleRoot.CertPEM, UpstreamServerName: rancherHost}, forged.TLS)
	c = node(t, w.pki.AttackerRoot, url)
	resp, b := call(t, c, rancherURL+"/ping", nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("pinned to the wrong CA: %d %q, want 502", resp.StatusCode, b)
	}
	if e := p.Requests("", 0).Requests; len(e) != 1 || !strings.HasPrefix(e[0].Note, "upstream error") {
		t.Fatalf("proxy log %+v", e)
	}
}

func TestConfigValidation(t *testing.T) {
	up := "https://127.0.0.1:1"
	bad := []Config{
		{Mode: MITM, Upstream: "http://x", CACertsBody: []byte("x")},
		{Mode: MITM, Upstream: up},
		{Mode: MITM, Upstream: up, CACertsBody: []byte("x"), Tamper: TamperEmpty},
		{Mode: Tamper, Upstream: up},
		{Mode: Tamper, Upstream: up, Tamper: TamperSwap},
		{Mode: Tamper, Upstream: up, Tamper: "flip"},
		{Mode: "sniff", Upstream: up},
		{Mode: Tamper, Upstream: up, Tamper: TamperEmpty, UpstreamCA: []byte("not pem")},
	}
	for i, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("config %d accepted: %+v", i, c)
		}
	}
	for _, c := range []Config{
		{Mode: MITM, Upstream: up, CACertsBody: []byte("x")},
		{Mode: Tamper, Upstream: up, Tamper: TamperGarbage},
		{Mode: Tamper, Upstream: up, Tamper: TamperSwap, CACertsBody: []byte("x")},
	} {
		if _, err := New(c); err != nil {
			t.Errorf("valid config refused: %v", err)
		}
	}
}
