package rancher

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agenttls/agenttls/harness/emulator"
	"github.com/agenttls/agenttls/harness/pki"
)

const (
	testHost     = "rancher.agenttls.test"
	testPassword = "bootstrap-Pa55"
)

type emuFixture struct {
	emu    *emulator.Emulator
	srv    *httptest.Server
	pki    *pki.PKI
	client *Client
}

// startEmulator serves the emulator's public surface (admin calls included) over real TLS with a
// certificate from the private CA, and returns a client that verifies it against that CA only.
func startEmulator(t *testing.T, mutate func(*emulator.Config)) *emuFixture {
	t.Helper()
	p, err := pki.New(pki.WithLabel(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := p.Issue(p.PrivateIntermediate, []string{testHost, "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := emulator.Config{
		CACerts:           pki.Setting(p.PrivateRoot.CertPEM),
		InstallScript:     []byte("#!/bin/sh\necho raw\n"),
		TokenSecret:       "s",
		BootstrapPassword: testPassword,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(emu.Handler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, WithRootCAs(p.PrivateRoot.Pool()), WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return &emuFixture{emu: emu, srv: srv, pki: p, client: c}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// servedStrict reads the STRICT_VERIFY value of the served script.
func servedStrict(t *testing.T, f *emuFixture) string {
	t.Helper()
	resp, err := f.client.HTTPClient().Get(f.srv.URL + "/system-agent-install.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "export STRICT_VERIFY="); ok {
			return strings.Trim(v, "'")
		}
	}
	t.Fatalf("served script has no STRICT_VERIFY line:\n%.300s", b)
	return ""
}

// TestAdminFlow walks the whole flow the Rancher tier runs against a Rancher, here against the
// emulator: login, server-url, mode switches both ways (the forced one included), a custom
// cluster, its registration command, a registration and the machine it creates.
func TestAdminFlow(t *testing.T) {
	f := startEmulator(t, nil)
	c := f.client
	ctx := ctxT(t, 20*time.Second)

	if _, err := c.AgentTLSMode(ctx); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("before login: %v, want ErrNotLoggedIn", err)
	}
	if err := c.Login(ctx, "wrong"); !errors.Is(err, ErrLoginRefused) || !strings.Contains(err.Error(), "bootstrap password") {
		t.Fatalf("wrong password: %v", err)
	}
	if err := c.Login(ctx, testPassword); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Token(), "token-") || !strings.Contains(c.Token(), ":") {
		t.Fatalf("token %q is not of the form token-xxxxx:key", c.Token())
	}

	// server-url: unset at first; a cluster's token has no command until it is set.
	if u, err := c.ServerURL(ctx); err != nil || u != "" {
		t.Fatalf("server-url %q, %v; want empty", u, err)
	}
	early, err := c.CreateCustomCluster(ctx, "early", "")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = c.RegistrationToken(short, early.ID)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "server-url is not set") {
		t.Fatalf("command without server-url: %v", err)
	}
	if err := c.DeleteCluster(ctx, early); err != nil {
		t.Fatal(err)
	}
	if err := c.SetServerURL(ctx, "http://"+testHost); err == nil {
		t.Fatal("an http server-url was accepted")
	}
	if err := c.SetServerURL(ctx, "https://"+testHost+"/"); err != nil {
		t.Fatal(err)
	}
	if u, _ := c.ServerURL(ctx); u != "https://"+testHost {
		t.Fatalf("server-url %q", u)
	}

	// agent-tls-mode: fresh-install default strict; down to system-store is always allowed.
	if m, err := c.AgentTLSMode(ctx); err != nil || m != ModeStrict {
		t.Fatalf("mode %q, %v", m, err)
	}
	if err := c.SetAgentTLSMode(ctx, "lenient"); err == nil {
		t.Fatal("an unknown mode was accepted")
	}
	if err := c.SetAgentTLSMode(ctx, ModeSystemStore); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.AgentTLSMode(ctx); m != ModeSystemStore || servedStrict(t, f) != "false" {
		t.Fatalf("after switching to system-store: mode %q, served STRICT_VERIFY %q", m, servedStrict(t, f))
	}

	cl, err := c.CreateCustomCluster(ctx, "agenttls", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cl.ID, "c-m-") || cl.Name != "agenttls" || cl.Namespace != Namespace {
		t.Fatalf("cluster %+v", cl)
	}
	if _, err := c.CreateCustomCluster(ctx, "agenttls", ""); err == nil {
		t.Fatal("a second cluster of the same name was created")
	}

	// Back to strict: refused while the cluster exists, forced through with the annotation.
	err = c.SetAgentTLSMode(ctx, ModeStrict)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), cl.ID) {
		t.Fatalf("plain switch back to strict: %v; want a refusal naming %s", err, cl.ID)
	}
	if m, _ := c.AgentTLSMode(ctx); m != ModeSystemStore {
		t.Fatalf("a refused switch changed the mode to %q", m)
	}
	if err := c.ForceAgentTLSMode(ctx, ModeStrict); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.AgentTLSMode(ctx); m != ModeStrict || servedStrict(t, f) != "true" {
		t.Fatalf("after the forced switch: mode %q, served %q", m, servedStrict(t, f))
	}
	if forced, err := c.SwitchAgentTLSMode(ctx, ModeSystemStore); err != nil || forced {
		t.Fatalf("switch to system-store: forced=%v %v", forced, err)
	}
	if forced, err := c.SwitchAgentTLSMode(ctx, ModeStrict); err != nil || !forced {
		// The force annotation stays on the object once set, as on a Kubernetes object, so a
		// later plain switch would pass; SwitchAgentTLSMode only forces when refused.
		if err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := c.AgentTLSMode(ctx); m != ModeStrict {
		t.Fatalf("mode %q after switching back", m)
	}

	// The registration command, shaped like Rancher's.
	rt, err := c.RegistrationToken(ctx, cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := "curl -fL https://" + testHost + "/system-agent-install.sh | sudo sh -s - --server https://" + testHost +
		" --label 'cattle.io/os=linux' --token " + rt.Token + " --ca-checksum " + f.emu.Checksum()
	if rt.NodeCommand != want || len(rt.Token) != 54 {
		t.Fatalf("nodeCommand\n  %s\nwant\n  %s", rt.NodeCommand, want)
	}
	if rt.InsecureNodeCommand != strings.Replace(want, "curl -fL", "curl --insecure -fL", 1) {
		t.Fatalf("insecureNodeCommand %s", rt.InsecureNodeCommand)
	}

	// A node registers: the machine appears for its CATTLE_ID, and for no other.
	if ms, err := c.Machines(ctx, "node-1"); err != nil || len(ms) != 0 {
		t.Fatalf("machines before registering: %v %v", ms, err)
	}
	if code, err := c.Connect(ctx, "not-a-token", "node-1"); err == nil || code == http.StatusOK {
		t.Fatalf("connect with a wrong token: %d %v", code, err)
	}
	if err := c.WaitRegistrationReady(ctx, rt.Token, "node-1"); err != nil {
		t.Fatal(err)
	}
	m, err := c.WaitMachine(ctx, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != emulator.MachineName("node-1") || m.Cluster != cl.Name || m.Labels["rke.cattle.io/worker-role"] != "true" {
		t.Fatalf("machine %+v", m)
	}
	if ms, _ := c.Machines(ctx, "node-2"); len(ms) != 0 {
		t.Fatalf("node-2 has machines %v", ms)
	}
	// Deleting the cluster takes its machines and its token with it.
	if err := c.DeleteCluster(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if ms, _ := c.Machines(ctx, "node-1"); len(ms) != 0 {
		t.Fatalf("machines outlive their cluster: %v", ms)
	}
	if code, _ := c.Connect(ctx, rt.Token, "node-3"); code == http.StatusOK {
		t.Fatal("the token of a deleted cluster still registers nodes")
	}
	// With no cluster left, the plain switch back to strict is allowed again.
	if err := c.SetAgentTLSMode(ctx, ModeSystemStore); err != nil {
		t.Fatal(err)
	}
}

// TestTokenPlaceholder: on versions whose stored commands carry "{token}", the client fills in
// the token from the token's secret.
func TestTokenPlaceholder(t *testing.T) {
	f := startEmulator(t, func(c *emulator.Config) { c.TokenPlaceholder = true; c.ServerURL = "https://" + testHost })
	c := f.client
	ctx := ctxT(t, 10*time.Second)
	if err := c.Login(ctx, testPassword); err != nil {
		t.Fatal(err)
	}
	cl, err := c.CreateCustomCluster(ctx, "ph", "v1.33.5+rke2r1")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := c.RegistrationToken(ctx, cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rt.NodeCommand+rt.InsecureNodeCommand, TokenPlaceholder) || len(rt.Token) != 54 ||
		!strings.Contains(rt.NodeCommand, "--token "+rt.Token+" ") {
		t.Fatalf("placeholder not replaced: token %q, command %s", rt.Token, rt.NodeCommand)
	}
	if code, err := c.Connect(ctx, rt.Token, "n"); code != http.StatusOK {
		t.Fatalf("the substituted token does not register: %d %v", code, err)
	}
}

// TestNoAgentTLSModeSetting: a Rancher before v2.8.6 has no such setting; every mode call says so.
func TestNoAgentTLSModeSetting(t *testing.T) {
	f := startEmulator(t, func(c *emulator.Config) { c.NoAgentTLSModeSetting = true })
	c := f.client
	ctx := ctxT(t, 10*time.Second)
	if err := c.Login(ctx, testPassword); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"read":   func() error { _, err := c.AgentTLSMode(ctx); return err },
		"set":    func() error { return c.SetAgentTLSMode(ctx, ModeSystemStore) },
		"force":  func() error { return c.ForceAgentTLSMode(ctx, ModeStrict) },
		"switch": func() error { _, err := c.SwitchAgentTLSMode(ctx, ModeStrict); return err },
	} {
		err := call()
		if !errors.Is(err, ErrNoAgentTLSMode) || !strings.Contains(err.Error(), "v2.8.6") {
			t.Errorf("%s: %v; want ErrNoAgentTLSMode naming the first version with it", name, err)
		}
	}
}

// TestUnreachable: nothing listens; the error says so at once, not after a timeout.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := NewClient("https://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Login(ctxT(t, 10*time.Second), testPassword)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), addr) || time.Since(start) > 5*time.Second {
		t.Fatalf("unreachable: %v after %s", err, time.Since(start))
	}
}

// TestUntrustedCertificate: a client that does not trust Rancher's CA says so.
func TestUntrustedCertificate(t *testing.T) {
	f := startEmulator(t, nil)
	c, err := NewClient(f.srv.URL, WithRootCAs(f.pki.PublicRoot.Pool()))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Login(ctxT(t, 10*time.Second), testPassword)
	if err == nil || !strings.Contains(err.Error(), "not trusted") || errors.Is(err, ErrUnreachable) {
		t.Fatalf("untrusted certificate: %v", err)
	}
}

func TestNewClientRejects(t *testing.T) {
	for _, u := range []string{"http://rancher", "rancher.example.test", "https://"} {
		if _, err := NewClient(u); err == nil {
			t.Errorf("NewClient(%q) accepted", u)
		}
	}
	if _, err := NewClient("https://r", WithPollInterval(0)); err == nil {
		t.Error("a zero poll interval was accepted")
	}
}
