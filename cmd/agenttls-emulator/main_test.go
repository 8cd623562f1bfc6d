package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
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

func files(t *testing.T) (dir string, p *pki.PKI) {
	t.Helper()
	p, err := pki.New()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := p.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	leaf, err := p.Issue(p.PrivateIntermediate, []string{"rancher.agenttls.test"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := leaf.WriteFiles(dir, "rancher"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "install.sh"), []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

func TestRunServes(t *testing.T) {
	dir, p := files(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	readyc := make(chan addrs, 1)
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{
			"--cert", filepath.Join(dir, "rancher.pem"), "--key", filepath.Join(dir, "rancher.key"),
			"--cacerts", filepath.Join(dir, pki.NamePrivateRoot+".pem"),
			"--install-script", filepath.Join(dir, "install.sh"), "--preamble-style", "quoted",
			"--agent-tls-mode", "system-store", "--server-url", "https://rancher.agenttls.test",
			"--token-secret", "s3",
			"--https-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0",
		}, &stdout, &stderr, func(a addrs) { readyc <- a })
	}()
	var a addrs
	select {
	case a = <-readyc:
	case code := <-done:
		t.Fatalf("exited %d: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10s")
	}

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.PrivateRoot.Pool(), ServerName: "rancher.agenttls.test"}}}
	resp, err := c.Get("https://" + a.HTTPS.String() + "/system-agent-install.sh")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "#!/usr/bin/env sh\nSTRICT_VERIFY=\"false\"\n\nCATTLE_AGENT_BINARY_BASE_URL=\"https://rancher.agenttls.test/assets\"\nCATTLE_SERVER=https://rancher.agenttls.test\nCATTLE_CA_CHECKSUM=\"" +
		pki.Checksum(p.PrivateRoot.CertPEM) + "\"\n\n\n#!/bin/sh\necho hi\n\n"
	if string(body) != want {
		t.Fatalf("script %q\nwant   %q", body, want)
	}
	if resp, err := http.Get("http://" + a.HTTP.String() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("http healthz: %v", err)
	} else {
		resp.Body.Close()
	}
	ctl := emulator.NewControlClient("http://"+a.Control.String(), nil)
	info, err := ctl.Info(ctx)
	if err != nil || info.AgentTLSMode != "system-store" || info.Checksum != pki.Checksum(p.PrivateRoot.CertPEM) {
		t.Fatalf("info %+v %v", info, err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after cancel")
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout has %d lines, want one per request (2):\n%s", len(lines), stdout.String())
	}
	for _, l := range lines {
		var e accesslog.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Path == "" {
			t.Fatalf("stdout line %q is not an access log entry: %v", l, err)
		}
	}
	if !strings.Contains(stderr.String(), "caChecksum="+pki.Checksum(p.PrivateRoot.CertPEM)) {
		t.Errorf("startup line lacks the checksum: %s", stderr.String())
	}
}

func TestRunBadConfig(t *testing.T) {
	dir, _ := files(t)
	cert, key := filepath.Join(dir, "rancher.pem"), filepath.Join(dir, "rancher.key")
	ca := filepath.Join(dir, pki.NamePrivateRoot+".pem")
	missing := filepath.Join(dir, "missing")
	listen := []string{"--https-listen", "127.0.0.1:0", "--http-listen", "", "--control-listen", "127.0.0.1:0"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"cacerts and no-cacerts", []string{"--cert", cert, "--key", key, "--cacerts", ca, "--no-cacerts", "--token-secret", "s"}, "both a CA file"},
		{"neither", []string{"--cert", cert, "--key", key, "--cacerts", missing, "--token-secret", "s"}, "--no-cacerts"},
		{"key missing", []string{"--cert", cert, "--key", missing, "--cacerts", ca, "--token-secret", "s"}, "mount both"},
		{"no secret", []string{"--cert", cert, "--key", key, "--cacerts", ca}, "token secret"},
		{"bad mode", []string{"--cert", cert, "--key", key, "--cacerts", ca, "--token-secret", "s", "--agent-tls-mode", "loose"}, "agent-tls-mode"},
		{"bad style", []string{"--cert", cert, "--key", key, "--cacerts", ca, "--token-secret", "s", "--preamble-style", "x"}, "preamble style"},
		{"missing script", []string{"--cert", cert, "--key", key, "--cacerts", ca, "--token-secret", "s", "--install-script", missing}, "--install-script"},
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
		{"stray argument", []string{"serve"}, "unexpected arguments"},
	}
	t.Setenv("AGENTTLS_TOKEN_SECRET", "")
	for _, c := range cases {
		var stdout, stderr lockedBuffer
		code := run(context.Background(), append(c.args, listen...), &stdout, &stderr, func(addrs) { t.Errorf("%s: became ready", c.name) })
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", c.name, code, stderr.String(), c.want)
		}
	}
}

func TestRunListenFailure(t *testing.T) {
	dir, _ := files(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr lockedBuffer
	code := run(context.Background(), []string{
		"--cert", filepath.Join(dir, "rancher.pem"), "--key", filepath.Join(dir, "rancher.key"), "--no-cacerts",
		"--cacerts", filepath.Join(dir, "absent"), "--token-secret", "s",
		"--https-listen", "127.0.0.1:0", "--http-listen", "", "--control-listen", ln.Addr().String(),
	}, &stdout, &stderr, nil)
	if code != 1 || !strings.Contains(stderr.String(), "control listener") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
