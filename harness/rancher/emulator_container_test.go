package rancher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"

	"github.com/agenttls/agenttls/harness/dockerx/dockertest"
	"github.com/agenttls/agenttls/harness/images"
	"github.com/agenttls/agenttls/harness/k3d"
	"github.com/agenttls/agenttls/harness/pki"
	"github.com/agenttls/agenttls/harness/rancher"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/sweep"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

const (
	hostname = "rancher.agenttls.test"
	password = "a-bootstrap-password"
)

// emulatorContainer starts the agenttls emulator as a container on net, set up like a Rancher
// started with a private CA and a bootstrap password, and without server-url; extra flags are
// appended. It returns the container and its HTTPS URL on the host.
func emulatorContainer(ctx context.Context, t *testing.T, runID, netName string, p *pki.PKI, s *script.Script, extra ...string) (testcontainers.Container, string) {
	t.Helper()
	tools, err := images.Tools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := p.Issue(p.PrivateIntermediate, []string{hostname, "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cmd := append([]string{
		"--install-script", "/script/install.sh", "--assets-dir", images.AgentAssetDir,
		"--token-secret", "unused", "--bootstrap-password", password,
		"--https-listen", ":443", "--control-listen", ":9090",
	}, extra...)
	c, err := testcontainers.Run(ctx, tools,
		testcontainers.WithEntrypoint(images.EmulatorPath),
		testcontainers.WithCmd(cmd...),
		testcontainers.WithFiles(
			testcontainers.ContainerFile{Reader: bytes.NewReader(leaf.CertPEM), ContainerFilePath: rancher.CertPath, FileMode: 0o644},
			testcontainers.ContainerFile{Reader: bytes.NewReader(leaf.KeyPEM), ContainerFilePath: rancher.KeyPath, FileMode: 0o600},
			testcontainers.ContainerFile{Reader: bytes.NewReader(p.PrivateRoot.CertPEM), ContainerFilePath: rancher.CACertsPath, FileMode: 0o644},
			testcontainers.ContainerFile{Reader: bytes.NewReader(s.Body), ContainerFilePath: "/script/install.sh", FileMode: 0o644},
		),
		testcontainers.WithLabels(sweep.Labels(runID)),
		testcontainers.WithExposedPorts("127.0.0.1::443/tcp"),
		network.WithNetworkName(nil, netName),
	)
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("start the emulator container: %v", err)
	}
	port, err := c.MappedPort(ctx, "443/tcp")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://127.0.0.1:" + port.Port()
	// Ready when /ping answers over verified TLS on the published port.
	cl, err := rancher.NewClient(url, rancher.WithRootCAs(p.PrivateRoot.Pool()))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := cl.HTTPClient().Get(url + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator container's /ping does not answer at %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c, url
}

// TestAdminFlowAgainstEmulatorContainer runs the Rancher tier's whole API flow against the
// emulator container, as against a Rancher: log in, set server-url, switch agent-tls-mode both
// ways (the switch back to strict refused, then forced), create a custom cluster, fetch its
// nodeCommand, run it on a k3d-managed node with the real install script, and find the machine
// Rancher-style for the node's CATTLE_ID. Then the errors a user meets: a wrong bootstrap
// password, an unreachable server, a version without agent-tls-mode.
func TestAdminFlowAgainstEmulatorContainer(t *testing.T) {
	img := dockertest.NodeImage(t)
	runID := dockertest.RunID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := script.FromModule(ctx, "v0.15.0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pki.New(pki.WithLabel(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	net, err := network.New(ctx, network.WithLabels(sweep.Labels(runID)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = net.Remove(context.Background()) })
	emu, url := emulatorContainer(ctx, t, runID, net.Name, p, s)
	emuIP, err := emu.ContainerIP(ctx)
	if err != nil {
		t.Fatal(err)
	}

	c, err := rancher.NewClient(url, rancher.WithRootCAs(p.PrivateRoot.Pool()), rancher.WithPollInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, "not-the-password"); !errors.Is(err, rancher.ErrLoginRefused) {
		t.Fatalf("wrong bootstrap password: %v", err)
	}
	if err := c.Login(ctx, password); err != nil {
		t.Fatal(err)
	}
	if err := c.SetServerURL(ctx, "https://"+hostname); err != nil {
		t.Fatal(err)
	}
	if m, err := c.AgentTLSMode(ctx); err != nil || m != rancher.ModeStrict {
		t.Fatalf("fresh mode %q %v", m, err)
	}
	if err := c.SetAgentTLSMode(ctx, rancher.ModeSystemStore); err != nil {
		t.Fatal(err)
	}
	cl, err := c.CreateCustomCluster(ctx, "agenttls-"+runID, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetAgentTLSMode(ctx, rancher.ModeStrict); !errors.Is(err, rancher.ErrRefused) {
		t.Fatalf("switch back to strict with a cluster: %v, want a refusal", err)
	}
	if err := c.ForceAgentTLSMode(ctx, rancher.ModeStrict); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.AgentTLSMode(ctx); m != rancher.ModeStrict {
		t.Fatalf("mode %q after the forced switch", m)
	}
	rt, err := c.RegistrationToken(ctx, cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rt.NodeCommand, "--ca-checksum "+pki.Checksum(pki.Setting(p.PrivateRoot.CertPEM))) {
		t.Fatalf("nodeCommand without the CA's checksum: %s", rt.NodeCommand)
	}

	// The node: k3d-managed, systemd as PID 1; the Rancher hostname resolves to the emulator.
	priv, err := k3d.PrivilegedWorks(ctx, img, sweep.Labels(runID))
	if err != nil {
		t.Fatal(err)
	}
	n, err := k3d.RunNode(ctx, img, k3d.WithName("agenttls-"+runID+"-node"), k3d.WithNetwork(net.Name),
		k3d.WithLabels(sweep.Labels(runID)), k3d.WithPrivileged(priv))
	t.Cleanup(func() { _ = n.Terminate(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	// The private CA is not trusted before the script fetches it: the insecure command, as a
	// user runs it, with the role flag Rancher leaves to the user.
	cmd := fmt.Sprintf("echo '%s %s' >>/etc/hosts && %s --worker", emuIP, hostname, rt.InsecureNodeCommand)
	var out bytes.Buffer
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	code, err := n.ExecStream(rctx, []string{"sh", "-c", cmd}, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("registration command: exit %d %v\n%s", code, err, out.String())
	}
	for _, want := range []string{"Successfully downloaded and validated Rancher connection information", "rancher-system-agent.service"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the script's output lacks %q:\n%s", want, out.String())
		}
	}
	var id bytes.Buffer
	if _, err := n.ExecStream(ctx, []string{"cat", "/etc/rancher/agent/cattle-id"}, &id, nil); err != nil {
		t.Fatal(err)
	}
	m, err := c.WaitMachine(ctx, strings.TrimSpace(id.String()))
	if err != nil {
		t.Fatal(err)
	}
	if m.Cluster != cl.Name || m.Labels["rke.cattle.io/worker-role"] != "true" {
		t.Fatalf("machine %+v", m)
	}
	t.Logf("node %s registered: machine %s in cluster %s", strings.TrimSpace(id.String()), m.Name, m.Cluster)

	// A Rancher before v2.8.6: no agent-tls-mode setting.
	_, oldURL := emulatorContainer(ctx, t, runID, net.Name, p, s, "--no-agent-tls-mode-setting")
	old, err := rancher.NewClient(oldURL, rancher.WithRootCAs(p.PrivateRoot.Pool()))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Login(ctx, password); err != nil {
		t.Fatal(err)
	}
	if _, err := old.AgentTLSMode(ctx); !errors.Is(err, rancher.ErrNoAgentTLSMode) {
		t.Fatalf("version without the setting: %v", err)
	}
	if err := old.ForceAgentTLSMode(ctx, rancher.ModeStrict); !errors.Is(err, rancher.ErrNoAgentTLSMode) {
		t.Fatalf("forced switch on a version without the setting: %v", err)
	}

	// Unreachable: the emulator stopped; its published port answers no more.
	if err := emu.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	gone, err := rancher.NewClient(url, rancher.WithRootCAs(p.PrivateRoot.Pool()))
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Login(ctx, password); !errors.Is(err, rancher.ErrUnreachable) {
		t.Fatalf("stopped server: %v", err)
	}
}
