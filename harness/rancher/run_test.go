package rancher_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/testcontainers/testcontainers-go"

	"github.com/agenttls/agenttls/harness/dockerx/dockertest"
	"github.com/agenttls/agenttls/harness/images"
	"github.com/agenttls/agenttls/harness/pki"
	"github.com/agenttls/agenttls/harness/rancher"
	"github.com/agenttls/agenttls/harness/sweep"
)

// standInImage is a FROM scratch image with the emulator as its entry point (it reads Rancher's
// certificate paths, takes --no-cacerts and CATTLE_BOOTSTRAP_PASSWORD like Rancher) and a
// stand-in kubectl for the readiness check, so that Run's own code (files, arguments, waits,
// log file, termination) runs for real without the Rancher image.
func standInImage(t *testing.T) string {
	t.Helper()
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := images.Tools(ctx, images.WithBinaries(map[string]string{
		"/agenttls-emulator":     "./cmd/agenttls-emulator",
		"/usr/local/bin/kubectl": "./harness/rancher/testdata/kubectl",
	}))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// standIn adapts Run's request to the stand-in: its entry point, a token secret, and no
// privileged mode (which some hosts, this CI's among them, cannot grant; Rancher needs it).
func standIn(kubectlExit string) rancher.Option {
	return rancher.WithCustomizers(
		testcontainers.WithEntrypoint("/agenttls-emulator"),
		testcontainers.WithEnv(map[string]string{"AGENTTLS_TOKEN_SECRET": "s", "AGENTTLS_KUBECTL_EXIT": kubectlExit}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.Privileged = false }),
	)
}

func TestRunWithStandIn(t *testing.T) {
	img := standInImage(t)
	runID := dockertest.RunID(t)
	p, err := pki.New(pki.WithLabel(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := p.Issue(p.PrivateIntermediate, []string{hostname, "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := p.Issue(p.PublicRoot, []string{hostname}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	iv := rancher.Intervals{Ping: 30 * time.Second, Ready: 5 * time.Second, Registration: 10 * time.Second, NodeRegistered: 5 * time.Second, Poll: 100 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("private CA, ready", func(t *testing.T) {
		logPath := filepath.Join(t.TempDir(), "rancher", "private.log")
		c, err := rancher.Run(ctx, img, rancher.WithPrivateCA(leaf.CertPEM, leaf.KeyPEM, p.PrivateRoot.CertPEM),
			rancher.WithBootstrapPassword(password), rancher.WithTrust(p.PrivateRoot.Pool()), rancher.WithLabels(sweep.Labels(runID)),
			rancher.WithIntervals(iv), rancher.WithLogFile(logPath), standIn("0"))
		testcontainers.CleanupContainer(t, c)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := c.Login(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// cacerts.pem reached Rancher's path: the nodeCommand carries its checksum.
		if err := cl.SetServerURL(ctx, "https://"+hostname); err != nil {
			t.Fatal(err)
		}
		k, err := cl.CreateCustomCluster(ctx, "c", "")
		if err != nil {
			t.Fatal(err)
		}
		rt, err := cl.RegistrationToken(ctx, k.ID)
		if err != nil || !strings.HasSuffix(rt.NodeCommand, "--ca-checksum "+pki.Checksum(pki.Setting(p.PrivateRoot.CertPEM))) {
			t.Fatalf("command %q %v", rt.NodeCommand, err)
		}
		if err := c.Terminate(ctx); err != nil {
			t.Fatal(err)
		}
		log, err := os.ReadFile(logPath)
		if err != nil || !strings.Contains(string(log), "agenttls emulator serving") {
			t.Fatalf("log file: %v\n%s", err, log)
		}
	})

	t.Run("public CA, --no-cacerts", func(t *testing.T) {
		c, err := rancher.Run(ctx, img, rancher.WithPublicCA(pub.CertPEM, pub.KeyPEM),
			rancher.WithBootstrapPassword(password), rancher.WithTrust(p.PublicRoot.Pool()), rancher.WithLabels(sweep.Labels(runID)),
			rancher.WithIntervals(iv), standIn("0"))
		testcontainers.CleanupContainer(t, c)
		if err != nil {
			t.Fatal(err)
		}
		u, err := c.URL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := c.Client(ctx)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cl.HTTPClient().Get(u + "/cacerts")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ContentLength != 0 {
			t.Fatalf("--no-cacerts: /cacerts has %d bytes", resp.ContentLength)
		}
	})

	t.Run("webhook never ready", func(t *testing.T) {
		start := time.Now()
		c, err := rancher.Run(ctx, img, rancher.WithPublicCA(pub.CertPEM, pub.KeyPEM),
			rancher.WithBootstrapPassword(password), rancher.WithTrust(p.PublicRoot.Pool()), rancher.WithLabels(sweep.Labels(runID)),
			rancher.WithIntervals(iv), standIn("1"))
		testcontainers.CleanupContainer(t, c)
		if err == nil || c == nil || !strings.Contains(err.Error(), "rancher log tail") || time.Since(start) > 30*time.Second {
			t.Fatalf("after %s: %v (want the Ready bound to fail it with Rancher's log)", time.Since(start), err)
		}
	})

	t.Run("exits at start", func(t *testing.T) {
		start := time.Now()
		// A private CA without cacerts.pem on the right path: the stand-in, like Rancher, refuses to start.
		c, err := rancher.Run(ctx, img, rancher.WithPrivateCA(leaf.CertPEM, leaf.KeyPEM, p.PrivateRoot.CertPEM),
			rancher.WithBootstrapPassword(password), rancher.WithTrust(p.PrivateRoot.Pool()), rancher.WithLabels(sweep.Labels(runID)),
			rancher.WithIntervals(iv), standIn("0"), rancher.WithCustomizers(testcontainers.WithCmdArgs("--no-cacerts")))
		testcontainers.CleanupContainer(t, c)
		if err == nil || !strings.Contains(err.Error(), "exited") || time.Since(start) > 20*time.Second {
			t.Fatalf("after %s: %v (want a fast failure naming the exit)", time.Since(start), err)
		}
	})
}
