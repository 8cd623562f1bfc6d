package emulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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

	"gopkg.in/yaml.v3"

	"github.com/agenttls/agenttls/harness/emulator/accesslog"
	"github.com/agenttls/agenttls/harness/pki"
)

const (
	rancherHost = "rancher.agenttls.test"
	secret      = "test-secret"
	rawScript   = "#!/bin/sh\necho 'raw install script'\n"
)

type fixture struct {
	pki    *pki.PKI
	emu    *Emulator
	srv    *httptest.Server
	ctl    *ControlClient
	trust  *pki.CA
	assets string
}

// start runs the emulator over real TLS on 127.0.0.1 with a private CA (cacerts set) or a
// public one (--no-cacerts), and its control API on a second listener.
func start(t *testing.T, private bool, mutate func(*Config)) *fixture {
	t.Helper()
	p, err := pki.New(pki.WithLabel(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	issuer, trust, cacerts := p.PrivateIntermediate, p.PrivateRoot, pki.Setting(p.PrivateRoot.CertPEM)
	if !private {
		issuer, trust, cacerts = p.PublicRoot, p.PublicRoot, nil
	}
	leaf, err := p.Issue(issuer, []string{rancherHost}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	assets := t.TempDir()
	if err := os.WriteFile(filepath.Join(assets, AssetAgentAMD64), []byte("\x7fELF stand-in"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		CACerts:       cacerts,
		ServerURL:     "https://" + rancherHost,
		InstallScript: []byte(rawScript),
		AssetsDir:     assets,
		TokenSecret:   secret,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	emu, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(emu.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ctl := httptest.NewServer(emu.ControlHandler())
	t.Cleanup(ctl.Close)
	return &fixture{pki: p, emu: emu, srv: srv, ctl: NewControlClient(ctl.URL, nil), trust: trust, assets: assets}
}

// client trusts only f.trust and verifies the Rancher host name; it connects from srcIP.
func (f *fixture) client(t *testing.T, srcIP string) *http.Client {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(srcIP)}}
	tr := &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: f.trust.Pool(), ServerName: rancherHost},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func do(t *testing.T, c *http.Client, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
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

func get(t *testing.T, c *http.Client, url string) (*http.Response, []byte) {
	return do(t, c, http.MethodGet, url, nil)
}

func TestCACertsAndChecksum(t *testing.T) {
	for _, private := range []bool{true, false} {
		name := map[bool]string{true: "private", false: "public"}[private]
		t.Run(name, func(t *testing.T) {
			f := start(t, private, nil)
			c := f.client(t, "127.0.0.1")
			resp, body := get(t, c, f.srv.URL+"/cacerts")
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain" {
				t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			_, script := get(t, c, f.srv.URL+"/system-agent-install.sh")
			if !private {
				if len(body) != 0 {
					t.Fatalf("public: /cacerts served %d bytes, want 0", len(body))
				}
				if bytes.Contains(script, []byte("CATTLE_CA_CHECKSUM")) {
					t.Fatal("public: script carries a checksum")
				}
				if f.emu.Checksum() != "" {
					t.Fatal("public: Checksum() not empty")
				}
				return
			}
			if !bytes.Equal(body, f.pki.PrivateRoot.CertPEM) {
				t.Fatalf("/cacerts body differs from the private root PEM:\n%q", body)
			}
			s := sha256.Sum256(body)
			got := hex.EncodeToString(s[:])
			if got != pki.Checksum(pki.Setting(f.pki.PrivateRoot.CertPEM)) || got != f.emu.Checksum() {
				t.Fatalf("sha256(/cacerts) %s != pki.Checksum %s", got, f.emu.Checksum())
			}
			if !bytes.Contains(script, []byte("\nCATTLE_CA_CHECKSUM=\""+got+"\"\n")) {
				t.Fatalf("script does not embed the checksum of /cacerts:\n%s", script[:300])
			}

			resp, body = get(t, c, f.srv.URL+"/v3/settings/cacerts")
			var v struct{ Value string }
			if err := json.Unmarshal(body, &v); err != nil || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("settings JSON: %v %q", err, resp.Header.Get("Content-Type"))
			}
			if v.Value != string(pki.Setting(f.pki.PrivateRoot.CertPEM)) {
				t.Fatalf("settings value %q", v.Value)
			}
		})
	}
}

// TestCACertsUntrimmedSetting feeds settings Rancher could hold only if set by hand; the
// handler's rules (not the trimming) decide the bytes.
func TestCACertsUntrimmedSetting(t *testing.T) {
	for _, setting := range []string{"\n\nPEM", "PEM\r\n\r\n", "\ufeffA\r\nB", "   "} {
		f := start(t, true, func(c *Config) { c.CACerts = []byte(setting) })
		_, body := get(t, f.client(t, "127.0.0.1"), f.srv.URL+"/cacerts")
		if want := pki.CACertsServed([]byte(setting)); !bytes.Equal(body, want) {
			t.Errorf("setting %q: served %q, want %q", setting, body, want)
		}
	}
}

func TestInstallScriptServed(t *testing.T) {
	f := start(t, true, nil)
	c := f.client(t, "127.0.0.1")
	resp, body := get(t, c, f.srv.URL+"/system-agent-install.sh")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := Preamble{Style: StyleExport, Strict: true, ServerURL: "https://" + rancherHost, Checksum: f.emu.Checksum()}.Render([]byte(rawScript))
	if !bytes.Equal(body, want) {
		t.Fatalf("served:\n%s\nwant:\n%s", body, want)
	}
	if !bytes.HasPrefix(body, []byte("#!/usr/bin/env sh\nexport STRICT_VERIFY='true'\n")) {
		t.Fatalf("unexpected head: %q", body[:60])
	}

	// Switching the mode through the control API changes the next script.
	ctx := context.Background()
	if err := f.ctl.SetAgentTLSMode(ctx, ModeSystemStore); err != nil {
		t.Fatal(err)
	}
	if _, body = get(t, c, f.srv.URL+"/system-agent-install.sh"); !bytes.Contains(body, []byte("\nexport STRICT_VERIFY='false'\n")) {
		t.Fatalf("after switching to system-store: %q", body[:80])
	}
	if m, err := f.ctl.AgentTLSMode(ctx); err != nil || m != ModeSystemStore {
		t.Fatalf("mode %q, %v", m, err)
	}
	if err := f.ctl.SetAgentTLSMode(ctx, "lenient"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("bad mode accepted: %v", err)
	}
	if err := f.emu.SetAgentTLSMode(ModeStrict); err != nil {
		t.Fatal(err)
	}
	if _, body = get(t, c, f.srv.URL+"/system-agent-install.sh"); !bytes.Contains(body, []byte("\nexport STRICT_VERIFY='true'\n")) {
		t.Fatalf("after switching back: %q", body[:80])
	}
}

func TestInstallScriptNoServerURL(t *testing.T) {
	f := start(t, false, func(c *Config) { c.ServerURL = ""; c.PreambleStyle = StyleQuoted })
	_, body := get(t, f.client(t, "127.0.0.1"), f.srv.URL+"/system-agent-install.sh")
	host := strings.TrimPrefix(f.srv.URL, "https://")
	want := "#!/usr/bin/env sh\nSTRICT_VERIFY=\"true\"\n\nCATTLE_AGENT_BINARY_BASE_URL=\"https://" + host + "/assets\"\n\n\n\n\n" + rawScript + "\n"
	if string(body) != want {
		t.Fatalf("served %q\nwant   %q", body, want)
	}
}

func TestInstallScriptMissing(t *testing.T) {
	f := start(t, true, func(c *Config) { c.InstallScript = nil })
	resp, _ := get(t, f.client(t, "127.0.0.1"), f.srv.URL+"/system-agent-install.sh")
	if resp.StatusCode != 500 {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
}

func TestHealthPingAssets(t *testing.T) {
	f := start(t, true, nil)
	c := f.client(t, "127.0.0.1")
	for path, want := range map[string]string{"/healthz": "ok", "/ping": "pong"} {
		resp, body := get(t, c, f.srv.URL+path)
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	resp, body := get(t, c, f.srv.URL+"/assets/"+AssetAgentAMD64)
	if resp.StatusCode != 200 || string(body) != "\x7fELF stand-in" {
		t.Errorf("agent asset: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, c, f.srv.URL+"/assets/"+AssetInstallScript)
	if resp.StatusCode != 200 || string(body) != rawScript {
		t.Errorf("raw script asset: %d %q", resp.StatusCode, body)
	}
	if resp, body = do(t, c, http.MethodHead, f.srv.URL+"/assets/"+AssetAgentAMD64, nil); resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("HEAD asset: %d %q", resp.StatusCode, body)
	}
	for _, missing := range []string{"/assets/" + AssetUninstall, "/assets/", "/assets/nope/x", "/assets/..%2f..%2fetc%2fpasswd"} {
		resp, body := get(t, c, f.srv.URL+missing)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "no such asset") {
			t.Errorf("%s: %d %q %q", missing, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// A subdirectory is not served as a file.
	if err := os.Mkdir(filepath.Join(f.assets, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, c, f.srv.URL+"/assets/dir"); !strings.Contains(string(body), "no such asset") {
		t.Errorf("directory served: %q", body)
	}
}

func connectHeaders(token, id string) map[string]string {
	h := map[string]string{
		"X-Cattle-Node-Name":          "node-1",
		"X-Cattle-Role-Worker":        "true",
		"X-Cattle-Role-Etcd":          "false",
		"X-Cattle-Role-Control-Plane": "TRUE",
		"X-Cattle-Labels":             "cattle.io/os=linux",
	}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	if id != "" {
		h["X-Cattle-Id"] = id
	}
	return h
}

func TestConnectAgentAuth(t *testing.T) {
	f := start(t, true, nil)
	c := f.client(t, "127.0.0.1")
	url := f.srv.URL + "/v3/connect/agent"
	good := CellToken(secret, "cell-a")
	if !strings.HasPrefix(good, "cell-a.") || len(good) != len("cell-a.")+32 {
		t.Fatalf("token shape %q", good)
	}
	cases := []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"no cattle id", connectHeaders(good, ""), 401},
		{"no token", connectHeaders("", "m1"), 500},
		{"wrong secret", connectHeaders(CellToken("other", "cell-a"), "m1"), 500},
		{"renamed token", connectHeaders("cell-b"+good[len("cell-a"):], "m1"), 500},
		{"no dot", connectHeaders("garbage", "m1"), 500},
		{"upper-cased mac", connectHeaders("cell-a."+strings.ToUpper(good[7:]), "m1"), 500},
	}
	for _, tc := range cases {
		resp, _ := do(t, c, http.MethodGet, url, tc.hdr)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	if regs := f.emu.Registrations("", 0); len(regs.Registrations) != 0 {
		t.Fatalf("failed calls recorded registrations: %+v", regs)
	}
}

func TestConnectAgentRegistration(t *testing.T) {
	for _, private := range []bool{true, false} {
		t.Run(map[bool]string{true: "private", false: "public"}[private], func(t *testing.T) {
			f := start(t, private, nil)
			c := f.client(t, "127.0.0.1")
			ctx := context.Background()
			before, err := f.ctl.Seq(ctx)
			if err != nil {
				t.Fatal(err)
			}
			resp, body := do(t, c, http.MethodGet, f.srv.URL+"/v3/connect/agent", connectHeaders(CellToken(secret, "cell-a"), "machine-1"))
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if !bytes.HasPrefix(body, []byte("{\n  \"kubeConfig\": \"")) || !bytes.HasSuffix(body, []byte("\n}\n")) {
				t.Fatalf("not 2-space indented JSON: %s", body)
			}
			var ci ConnectionInfo
			if err := json.Unmarshal(body, &ci); err != nil {
				t.Fatal(err)
			}
			if ci.Namespace != "fleet-default" {
				t.Errorf("namespace %q", ci.Namespace)
			}
			idSum := sha256.Sum256([]byte("machine-1"))
			if want := "custom-" + hex.EncodeToString(idSum[:])[:12] + "-machine-plan"; ci.SecretName != want {
				t.Errorf("secretName %q, want %q", ci.SecretName, want)
			}
			var kc Kubeconfig
			if err := yaml.Unmarshal([]byte(ci.KubeConfig), &kc); err != nil {
				t.Fatalf("kubeConfig is not YAML: %v\n%s", err, ci.KubeConfig)
			}
			if len(kc.Clusters) != 1 || kc.Clusters[0].Name != "agent" || kc.Clusters[0].Cluster.Server != "https://"+rancherHost {
				t.Fatalf("clusters: %+v", kc.Clusters)
			}
			if kc.CurrentContext != "agent" || kc.Contexts[0].Context.Cluster != "agent" || kc.Contexts[0].Context.User != "agent" || kc.Users[0].Name != "agent" {
				t.Fatalf("context/user: %s", ci.KubeConfig)
			}
			if kc.Users[0].User.Token == "" {
				t.Fatal("no user token")
			}
			caData := kc.Clusters[0].Cluster.CertificateAuthorityData
			if private {
				dec, err := base64.StdEncoding.DecodeString(caData)
				if err != nil || !bytes.Equal(dec, pki.Setting(f.pki.PrivateRoot.CertPEM)) {
					t.Fatalf("certificate-authority-data does not decode to the cacerts setting: %v", err)
				}
			} else if caData != "" || strings.Contains(ci.KubeConfig, "certificate-authority-data") {
				t.Fatalf("public: certificate-authority-data present:\n%s", ci.KubeConfig)
			}

			regs, err := f.ctl.Registrations(ctx, "cell-a", before)
			if err != nil {
				t.Fatal(err)
			}
			if len(regs.Registrations) != 1 {
				t.Fatalf("registrations: %+v", regs)
			}
			r := regs.Registrations[0]
			if r.TokenName != "cell-a" || r.CattleID != "machine-1" || r.NodeName != "node-1" || r.Client != "127.0.0.1" ||
				r.InterceptedBy != "" || r.SecretName != ci.SecretName || r.Seq <= before || r.Labels != "cattle.io/os=linux" {
				t.Fatalf("registration %+v", r)
			}
			if strings.Join(r.Roles, ",") != "control-plane,worker" {
				t.Fatalf("roles %v", r.Roles)
			}
			if other, _ := f.ctl.Registrations(ctx, "cell-b", 0); len(other.Registrations) != 0 {
				t.Fatalf("name filter leaked: %+v", other)
			}
			if later, _ := f.ctl.Registrations(ctx, "", r.Seq); len(later.Registrations) != 0 {
				t.Fatalf("since filter leaked: %+v", later)
			}
		})
	}
}

func TestConnectAgentThroughProxyHeaders(t *testing.T) {
	f := start(t, true, nil)
	c := f.client(t, "127.0.0.1")
	h := connectHeaders(CellToken(secret, "cell-x"), "m")
	h[accesslog.HeaderInterceptedBy] = "mitm"
	h["X-Forwarded-For"] = "172.30.0.7, 10.0.0.1"
	if resp, body := do(t, c, http.MethodGet, f.srv.URL+"/v3/connect/agent", h); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	r := f.emu.Registrations("cell-x", 0).Registrations[0]
	if r.Client != "172.30.0.7" || r.InterceptedBy != "mitm" || !strings.HasPrefix(r.Remote, "127.0.0.1:") {
		t.Fatalf("registration %+v", r)
	}
	reqs := f.emu.Requests("172.30.0.7", 0).Requests
	if len(reqs) != 1 || reqs[0].InterceptedBy != "mitm" {
		t.Fatalf("request log %+v", reqs)
	}
	// Without the proxy header a forwarded-for header is not believed.
	h = map[string]string{"X-Forwarded-For": "6.6.6.6"}
	do(t, c, http.MethodGet, f.srv.URL+"/ping", h)
	if n := len(f.emu.Requests("6.6.6.6", 0).Requests); n != 0 {
		t.Fatalf("spoofed X-Forwarded-For logged as client (%d entries)", n)
	}
}

func TestRequestLogFiltering(t *testing.T) {
	f := start(t, true, nil)
	ctx := context.Background()
	a, b := f.client(t, "127.0.0.2"), f.client(t, "127.0.0.3")
	get(t, a, f.srv.URL+"/ping")
	mark, err := f.ctl.Seq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	get(t, a, f.srv.URL+"/cacerts")
	get(t, b, f.srv.URL+"/healthz")
	get(t, a, f.srv.URL+"/nope")

	all, err := f.ctl.Requests(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Requests) != 4 || all.Seq != all.Requests[3].Seq {
		t.Fatalf("all: %+v", all)
	}
	got, err := f.ctl.Requests(ctx, "127.0.0.2", mark)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Requests) != 2 {
		t.Fatalf("filtered: %+v", got.Requests)
	}
	e0, e1 := got.Requests[0], got.Requests[1]
	if e0.Path != "/cacerts" || e0.Status != 200 || e0.Method != "GET" || !e0.TLS || e0.Bytes != int64(len(f.pki.PrivateRoot.CertPEM)) || e0.Client != "127.0.0.2" {
		t.Errorf("first entry %+v", e0)
	}
	if e1.Path != "/nope" || e1.Status != 404 {
		t.Errorf("second entry %+v", e1)
	}
	if e0.Seq <= mark || e1.Seq <= e0.Seq {
		t.Errorf("sequence numbers %d, %d after %d", e0.Seq, e1.Seq, mark)
	}
	// A client that made no request after mark has an empty (not null) list.
	none, err := f.ctl.Requests(ctx, "127.0.0.9", 0)
	if err != nil || none.Requests == nil || len(none.Requests) != 0 {
		t.Fatalf("unknown client: %+v %v", none, err)
	}
	// Bad since is a 400.
	if err := f.ctl.Do(ctx, http.MethodGet, accesslog.PathRequests+"?since=-1", nil, nil); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("bad since: %v", err)
	}
	info, err := f.ctl.Info(ctx)
	if err != nil || info.Checksum != f.emu.Checksum() || info.AgentTLSMode != ModeStrict || info.CACertsBytes != len(f.pki.PrivateRoot.CertPEM) {
		t.Fatalf("info %+v %v", info, err)
	}
}

func TestAccessLogJSONLines(t *testing.T) {
	var buf syncBuffer
	f := start(t, true, func(c *Config) { c.AccessLog = &buf })
	get(t, f.client(t, "127.0.0.1"), f.srv.URL+"/ping")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("lines: %q", lines)
	}
	var e accesslog.Entry
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Path != "/ping" || e.Seq != 1 {
		t.Fatalf("line %q: %v", lines[0], err)
	}
}

func TestHTTPHandler(t *testing.T) {
	emu, err := New(Config{TokenSecret: "s", CACerts: []byte("PEM")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.HTTPHandler())
	t.Cleanup(srv.Close)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, body := get(t, c, srv.URL+"/ping")
	if resp.StatusCode != 200 || string(body) != "pong" {
		t.Fatalf("ping over http: %d %q", resp.StatusCode, body)
	}
	if _, body = get(t, c, srv.URL+"/cacerts"); string(body) != "PEM\n" {
		t.Fatalf("cacerts over http: %q", body)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v3/connect/agent?x=1", nil)
	req.Host = "rancher.test:80"
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://rancher.test/v3/connect/agent?x=1" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestNewValidation(t *testing.T) {
	bad := []Config{
		{},
		{TokenSecret: "s", AgentTLSMode: "Strict"},
		{TokenSecret: "s", PreambleStyle: "bash"},
		{TokenSecret: "s", ServerURL: "http://r.test"},
		{TokenSecret: "s", AssetsDir: "/nonexistent/agenttls"},
	}
	for i, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("config %d accepted: %+v", i, c)
		}
	}
	e, err := New(Config{TokenSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if e.AgentTLSMode() != ModeStrict {
		t.Errorf("default mode %q", e.AgentTLSMode())
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
