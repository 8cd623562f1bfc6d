package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenttls/agenttls/harness/emulator"
	"github.com/agenttls/agenttls/harness/emulator/accesslog"
	"github.com/agenttls/agenttls/harness/pki"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRunMITM starts the real command in front of an in-process emulator and goes through it.
func TestRunMITM(t *testing.T) {
	p, err := pki.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := p.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	rancherLeaf, err := p.Issue(p.PrivateIntermediate, []string{"rancher.agenttls.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := p.Issue(p.AttackerRoot, []string{"rancher.agenttls.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := forged.WriteFiles(dir, "forged")
	if err != nil {
		t.Fatal(err)
	}
	body := filepath.Join(dir, "attacker-cacerts")
	if err := os.WriteFile(body, pki.CACertsServed(p.AttackerRoot.CertPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{CACerts: pki.Setting(p.PrivateRoot.CertPEM), TokenSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewUnstartedServer(emu.Handler())
	up.TLS = &tls.Config{Certificates: []tls.Certificate{rancherLeaf.TLS}}
	up.StartTLS()
	defer up.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	type pair struct{ pub, ctl net.Addr }
	readyc, done := make(chan pair, 1), make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--mode", "mitm", "--cert", cert, "--key", key, "--cacerts-body", body,
			"--upstream", up.URL, "--upstream-ca", filepath.Join(dir, pki.NamePrivateRoot+".pem"),
			"--upstream-server-name", "rancher.agenttls.test",
			"--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"},
			&stdout, &stderr, func(a, b net.Addr) { readyc <- pair{a, b} })
	}()
	var a pair
	select {
	case a = <-readyc:
	case code := <-done:
		t.Fatalf("exited %d: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.AttackerRoot.Pool(), ServerName: "rancher.agenttls.test"}}}
	get := func(path string) string {
		resp, err := c.Get("https://" + a.pub.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get("/cacerts"); got != string(pki.CACertsServed(p.AttackerRoot.CertPEM)) {
		t.Fatalf("/cacerts %q", got)
	}
	if got := get("/ping"); got != "pong" {
		t.Fatalf("/ping %q", got)
	}
	if e := emu.Requests("", 0).Requests; len(e) != 1 || e[0].Path != "/ping" || e[0].InterceptedBy != "mitm" || e[0].Client != "127.0.0.1" {
		t.Fatalf("emulator saw %+v", e)
	}
	list, err := (&accesslog.Client{BaseURL: "http://" + a.ctl.String()}).Requests(ctx, "127.0.0.1", 0)
	if err != nil || len(list.Requests) != 2 {
		t.Fatalf("proxy log %+v %v", list, err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 2 {
		t.Fatalf("stdout has %d lines, want 2: %s", n, stdout.String())
	}
}

func TestRunBadConfig(t *testing.T) {
	p, err := pki.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	leaf, err := p.Issue(p.AttackerRoot, []string{"r"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := leaf.WriteFiles(dir, "l")
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--cert", cert, "--key", key, "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no cert", []string{"--mode", "mitm"}, "--cert and --key"},
		{"no mode", append([]string{"--upstream", "https://x"}, base...), "unknown mode"},
		{"mitm without body", append([]string{"--mode", "mitm", "--upstream", "https://x"}, base...), "--cacerts-body"},
		{"tamper without kind", append([]string{"--mode", "tamper", "--upstream", "https://x"}, base...), "--tamper"},
		{"http upstream", append([]string{"--mode", "tamper", "--tamper", "empty", "--upstream", "http://x"}, base...), "https URL"},
		{"missing body file", append([]string{"--mode", "mitm", "--cacerts-body", filepath.Join(dir, "no"), "--upstream", "https://x"}, base...), "--cacerts-body"},
		{"key mismatch", []string{"--mode", "mitm", "--cert", cert, "--key", cert}, "load --cert"},
	}
	for _, c := range cases {
		var stdout, stderr lockedBuffer
		code := run(context.Background(), c.args, &stdout, &stderr, func(net.Addr, net.Addr) { t.Errorf("%s: became ready", c.name) })
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", c.name, code, stderr.String(), c.want)
		}
	}
}
