package rancher

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/agenttls/agenttls/harness/pki"
)

func testPKI(t *testing.T) (*pki.PKI, *pki.Leaf, *pki.Leaf) {
	t.Helper()
	p, err := pki.New(pki.WithLabel(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := p.Issue(p.PrivateIntermediate, []string{testHost}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := p.Issue(p.PublicRoot, []string{testHost}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, priv, pub
}

func files(t *testing.T, req testcontainers.GenericContainerRequest) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range req.Files {
		b, err := io.ReadAll(f.Reader)
		if err != nil {
			t.Fatal(err)
		}
		out[f.ContainerFilePath] = string(b)
		if (f.ContainerFilePath == KeyPath) != (f.FileMode == 0o600) {
			t.Errorf("%s has mode %o", f.ContainerFilePath, f.FileMode)
		}
	}
	return out
}

// TestRequestPrivateCA: the private-CA Rancher gets the chain, the key and cacerts.pem at its
// fixed paths, no arguments, the bootstrap password, privileged mode, HTTPS published on
// 127.0.0.1, and the two named waits.
func TestRequestPrivateCA(t *testing.T) {
	p, priv, _ := testPKI(t)
	iv := Intervals{Ping: 3 * time.Minute, Ready: 4 * time.Minute, Registration: time.Minute, NodeRegistered: 30 * time.Second, Poll: time.Second}
	req, err := Request(Image("v2.15.0"),
		WithPrivateCA(priv.CertPEM, priv.KeyPEM, p.PrivateRoot.CertPEM),
		WithBootstrapPassword("a-long-bootstrap-pw"),
		WithTrust(p.PrivateRoot.Pool()),
		WithNetwork("agenttls-net", "rancher.agenttls.test"),
		WithLabels(map[string]string{"org.agenttls.run-id": "r1"}),
		WithName("agenttls-r1-rancher-private"),
		WithIntervals(iv))
	if err != nil {
		t.Fatal(err)
	}
	if req.Image != "rancher/rancher:v2.15.0" || !req.Started {
		t.Fatalf("image %q started %v", req.Image, req.Started)
	}
	f := files(t, req)
	if f[CertPath] != string(priv.CertPEM) || f[KeyPath] != string(priv.KeyPEM) || f[CACertsPath] != string(p.PrivateRoot.CertPEM) || len(f) != 3 {
		t.Fatalf("files: %d mounted, or not the private CA's chain, key and cacerts.pem", len(f))
	}
	if strings.Count(f[CertPath], "BEGIN CERTIFICATE") != 2 {
		t.Fatal("cert.pem is not the full chain (leaf and intermediate)")
	}
	if len(req.Cmd) != 0 {
		t.Fatalf("private CA: args %q, want none", req.Cmd)
	}
	if req.Env["CATTLE_BOOTSTRAP_PASSWORD"] != "a-long-bootstrap-pw" || req.Env["CATTLE_AGENT_TLS_MODE"] != "" || req.Env["CATTLE_SERVER_URL"] != "" {
		t.Fatalf("env %v (agent-tls-mode and server-url must stay switchable, so not from the environment)", req.Env)
	}
	hc := &container.HostConfig{}
	req.HostConfigModifier(hc)
	if !hc.Privileged {
		t.Fatal("not privileged: Rancher exits at once outside Kubernetes without it")
	}
	if !slices.Equal(req.ExposedPorts, []string{"127.0.0.1::443/tcp"}) {
		t.Fatalf("exposed %v", req.ExposedPorts)
	}
	if req.Name != "agenttls-r1-rancher-private" || req.Labels["org.agenttls.run-id"] != "r1" {
		t.Fatalf("name %q labels %v", req.Name, req.Labels)
	}
	if !slices.Equal(req.Networks, []string{"agenttls-net"}) || !slices.Equal(req.NetworkAliases["agenttls-net"], []string{"rancher.agenttls.test"}) {
		t.Fatalf("networks %v aliases %v", req.Networks, req.NetworkAliases)
	}

	all, ok := req.WaitingFor.(*wait.MultiStrategy)
	if !ok || len(all.Strategies) != 2 {
		t.Fatalf("wait %T %v", req.WaitingFor, req.WaitingFor)
	}
	ping, ok := all.Strategies[0].(*PingStrategy)
	if !ok || ping.Roots == nil {
		t.Fatalf("first wait: %+v, want /ping over verified HTTPS", all.Strategies[0])
	}
	if *ping.Timeout() != iv.Ping || ping.Poll != iv.Poll {
		t.Fatalf("ping timeout %s poll %s", *ping.Timeout(), ping.Poll)
	}
	ready, ok := all.Strategies[1].(*wait.ExecStrategy)
	if !ok || *ready.Timeout() != iv.Ready || !strings.Contains(strings.Join(webhookReady, " "), "cattle-system rollout status deployment/rancher-webhook") || !ready.ExitCodeMatcher(0) || ready.ExitCodeMatcher(1) {
		t.Fatalf("second wait: %v", all.Strategies[1])
	}
}

// TestRequestPublicCA: the public-CA Rancher gets cert and key only, and --no-cacerts.
func TestRequestPublicCA(t *testing.T) {
	_, _, pub := testPKI(t)
	req, err := Request(Image("v2.9.3"), WithPublicCA(pub.CertPEM, pub.KeyPEM), WithBootstrapPassword("a-long-bootstrap-pw"))
	if err != nil {
		t.Fatal(err)
	}
	f := files(t, req)
	if _, ok := f[CACertsPath]; ok || len(f) != 2 {
		t.Fatalf("public CA mounts %d files (cacerts.pem: %v)", len(f), ok)
	}
	if !slices.Equal(req.Cmd, []string{"--no-cacerts"}) {
		t.Fatalf("args %q, want --no-cacerts", req.Cmd)
	}
	all := req.WaitingFor.(*wait.MultiStrategy)
	if d := DefaultIntervals(); *all.Strategies[0].(*PingStrategy).Timeout() != d.Ping || *all.Strategies[1].(*wait.ExecStrategy).Timeout() != d.Ready {
		t.Fatal("default intervals not applied")
	}
}

// TestRequestRejects: the combinations Rancher refuses at start, or that leave the harness
// unable to log in, are refused before anything runs.
func TestRequestRejects(t *testing.T) {
	p, priv, pub := testPKI(t)
	pw := WithBootstrapPassword("a-long-bootstrap-pw")
	for name, opts := range map[string][]Option{
		"no CA kind":           {pw},
		"both CA kinds":        {pw, WithPrivateCA(priv.CertPEM, priv.KeyPEM, p.PrivateRoot.CertPEM), WithPublicCA(pub.CertPEM, pub.KeyPEM)},
		"private without CA":   {pw, WithPrivateCA(priv.CertPEM, priv.KeyPEM, nil)},
		"public without key":   {pw, WithPublicCA(pub.CertPEM, nil)},
		"no password":          {WithPublicCA(pub.CertPEM, pub.KeyPEM)},
		"short password":       {WithPublicCA(pub.CertPEM, pub.KeyPEM), WithBootstrapPassword("short")},
		"zero interval":        {pw, WithPublicCA(pub.CertPEM, pub.KeyPEM), WithIntervals(Intervals{Ping: time.Minute})},
		"network without name": {pw, WithPublicCA(pub.CertPEM, pub.KeyPEM), WithNetwork("")},
	} {
		if _, err := Request("rancher/rancher:v2.15.0", opts...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
