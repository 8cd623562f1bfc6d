package images_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/agenttls/agenttls/harness/dockerx/dockertest"
	"github.com/agenttls/agenttls/harness/images"
	"github.com/agenttls/agenttls/harness/node"
	"github.com/agenttls/agenttls/harness/sweep"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// tempModule writes a module named like the real one with a main package at each of pkgs that
// prints word.
func tempModule(t *testing.T, word string, pkgs ...string) string {
	t.Helper()
	root := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module github.com/agenttls/agenttls\n\ngo 1.26\n")
	for _, pkg := range pkgs {
		write(filepath.Join(pkg, "main.go"), "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\""+word+"\") }\n")
	}
	return root
}

// runOnce runs entrypoint in a container of img and returns what it printed.
func runOnce(t *testing.T, img, entrypoint string, labels map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctr, err := testcontainers.Run(ctx, img,
		testcontainers.WithEntrypoint(entrypoint),
		testcontainers.WithLabels(labels),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(30*time.Second)),
	)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("run %s in %s: %v", entrypoint, img, err)
	}
	logs, err := ctr.Logs(ctx)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	defer logs.Close()
	out, _ := io.ReadAll(logs)
	return strings.TrimSpace(string(out))
}

func TestToolsBuildsStaticImageAndReusesIt(t *testing.T) {
	dockertest.Require(t)
	runID := dockertest.RunID(t)
	labels := sweep.Labels(runID)
	// A fresh word makes fresh binaries, hence a tag no earlier run built.
	word := "tools-" + runID
	root := tempModule(t, word, "cmd/emu", "cmd/agent")
	buildDir := t.TempDir()
	var progress bytes.Buffer
	opts := []images.Option{
		images.WithModuleRoot(root),
		images.WithBuildDir(buildDir),
		images.WithLabels(labels),
		images.WithProgress(io.MultiWriter(&progress, dockertest.LogWriter(t))),
		images.WithBinaries(map[string]string{
			"/agenttls-emulator":                 "./cmd/emu",
			"/assets/rancher-system-agent-amd64": "./cmd/agent",
		}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	tag, err := images.Tools(ctx, opts...)
	if err != nil {
		t.Fatalf("Tools: %v", err)
	}
	t.Logf("cold (fresh binaries, new image): %s", time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(tag, images.ToolsRepo+":") {
		t.Errorf("tag %s is not in %s", tag, images.ToolsRepo)
	}
	if !strings.Contains(progress.String(), "built "+tag) {
		t.Errorf("progress does not say the image was built:\n%s", progress.String())
	}
	// The binaries are static: they run in a FROM scratch image with no libc.
	for _, p := range []string{"/agenttls-emulator", "/assets/rancher-system-agent-amd64"} {
		if out := runOnce(t, tag, p, labels); out != word {
			t.Errorf("%s in %s printed %q, want %q", p, tag, out, word)
		}
	}

	progress.Reset()
	start = time.Now()
	again, err := images.Tools(ctx, opts...)
	if err != nil {
		t.Fatalf("Tools again: %v", err)
	}
	warm := time.Since(start)
	t.Logf("warm (unchanged tree): %s", warm.Round(time.Millisecond))
	if again != tag {
		t.Errorf("unchanged tree gave tag %s, then %s", tag, again)
	}
	if !strings.Contains(progress.String(), "up to date") || strings.Contains(progress.String(), "built ") {
		t.Errorf("second call rebuilt the image:\n%s", progress.String())
	}
	if warm > 5*time.Second {
		t.Errorf("cache hit took %s", warm)
	}

	// A change in a binary changes the tag.
	if err := os.WriteFile(filepath.Join(root, "cmd/emu/main.go"),
		[]byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"changed\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := images.Tools(ctx, opts...)
	if err != nil {
		t.Fatalf("Tools after a change: %v", err)
	}
	if changed == tag {
		t.Errorf("changed source kept tag %s", tag)
	}
	if out := runOnce(t, changed, "/agenttls-emulator", labels); out != "changed" {
		t.Errorf("changed emulator printed %q", out)
	}
}

func TestToolsLeavesOutMissingCommands(t *testing.T) {
	dockertest.Require(t)
	runID := dockertest.RunID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Only the proxy exists in this tree; the default contents are used.
	root := tempModule(t, "proxy-"+runID, "cmd/agenttls-proxy")
	var progress bytes.Buffer
	tag, err := images.Tools(ctx, images.WithModuleRoot(root), images.WithBuildDir(t.TempDir()),
		images.WithLabels(sweep.Labels(runID)), images.WithProgress(&progress))
	if err != nil {
		t.Fatalf("Tools: %v", err)
	}
	cli := dockertest.Require(t)
	in, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Config.Labels[images.LabelBinaries]; got != images.ProxyPath {
		t.Errorf("%s = %q, want %q", images.LabelBinaries, got, images.ProxyPath)
	}
	for _, missing := range []string{"./cmd/agenttls-emulator", "./cmd/rancher-system-agent"} {
		if !strings.Contains(progress.String(), missing) {
			t.Errorf("progress does not say %s was left out:\n%s", missing, progress.String())
		}
	}

	empty := tempModule(t, "none")
	if _, err := images.Tools(ctx, images.WithModuleRoot(empty), images.WithBuildDir(t.TempDir())); err == nil {
		t.Error("Tools with none of the commands present: no error")
	}
	broken := tempModule(t, "x", "cmd/agenttls-proxy")
	if err := os.WriteFile(filepath.Join(broken, "cmd/agenttls-proxy/main.go"), []byte("package main\nfunc main() { undefined() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = images.Tools(ctx, images.WithModuleRoot(broken), images.WithBuildDir(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Errorf("Tools of a package that does not compile: err %v, want the compiler's message", err)
	}
}

func TestNodeImageIsReused(t *testing.T) {
	tag := dockertest.NodeImage(t)
	want, err := images.NodeTag()
	if err != nil {
		t.Fatal(err)
	}
	if tag != want {
		t.Errorf("Node = %s, NodeTag = %s", tag, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	again, err := images.Node(ctx)
	if err != nil || again != tag {
		t.Fatalf("Node again = %s, %v; want %s", again, err, tag)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cache hit took %s", d)
	}
	in, err := dockertest.Require(t).ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if in.Config.Labels[images.LabelImage] != "node" {
		t.Errorf("node image labels = %v", in.Config.Labels)
	}
	if got := strings.Join(in.Config.Cmd, " "); got != "sleep infinity" {
		t.Errorf("node image CMD = %q, want sleep infinity", got)
	}
}

func TestNodeBuildSaysWhatIsMissing(t *testing.T) {
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A recipe no one built, so that Node has to build.
	root := tempModule(t, "x")
	dir := filepath.Join(root, "fixtures/images/node")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"build-rootfs.sh": "#!/bin/sh\n# " + t.Name() + time.Now().String() + "\nexit 1\n",
		"packages":        "curl\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", t.TempDir()) // no debootstrap
	_, err := images.Node(ctx, images.WithModuleRoot(root), images.WithNodeBuild(images.BuildRootfs))
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y debootstrap") {
		t.Errorf("Node without debootstrap: err %v, want the apt-get command", err)
	}
	t.Setenv(images.EnvNodeBuild, "bogus")
	if _, err := images.Node(ctx, images.WithModuleRoot(root)); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("Node with %s=bogus: err %v", images.EnvNodeBuild, err)
	}
	if err := images.WithNodeBuild("bogus")(nil); err == nil {
		t.Error("WithNodeBuild(bogus): no error")
	}
}

// testPKI makes a root CA and a leaf for localhost signed by it.
func testPKI(t *testing.T, cn string) (rootPEM, leafPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// curlThroughSystemStore serves leaf with openssl on the node and fetches it with curl, which
// verifies it against the system store only. It returns curl's exit code.
func curlThroughSystemStore(t *testing.T, img string, labels map[string]string, leaf, key []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Run(ctx, img, node.WithLabels(labels), node.WithCustomizers(testcontainers.WithFiles(
		testcontainers.ContainerFile{Reader: bytes.NewReader(leaf), ContainerFilePath: "/tmp/leaf.pem", FileMode: 0o644},
		testcontainers.ContainerFile{Reader: bytes.NewReader(key), ContainerFilePath: "/tmp/leaf.key", FileMode: 0o600},
	)))
	testcontainers.CleanupContainer(t, n)
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	script := `openssl s_server -quiet -www -accept 8443 -cert /tmp/leaf.pem -key /tmp/leaf.key >/dev/null 2>&1 &
for i in $(seq 50); do ss -ltn | grep -q ':8443 ' && break; sleep 0.05; done
curl -sS -o /dev/null https://localhost:8443/`
	var out bytes.Buffer
	code, err := n.ExecStream(ctx, []string{"sh", "-c", script}, &out, &out)
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	return code, out.String()
}

func TestTrustVariantTrustsTheRootsInTheSystemStore(t *testing.T) {
	base := dockertest.NodeImage(t)
	runID := dockertest.RunID(t)
	labels := sweep.Labels(runID)
	root, leaf, key := testPKI(t, "agenttls test root "+runID)
	_, otherRoot, _ := testPKI(t, "agenttls other root")
	_ = otherRoot
	other, _, _ := testPKI(t, "agenttls second root")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if _, err := images.TrustVariant(ctx, base, map[string][]byte{"x": root}, map[string]string{"a": "b"}); err == nil {
		t.Error("TrustVariant without run labels: no error")
	}
	if _, err := images.TrustVariant(ctx, base, map[string][]byte{"x": leaf}, labels); err == nil {
		t.Error("TrustVariant of a leaf certificate: no error")
	}

	start := time.Now()
	variant, err := images.TrustVariant(ctx, base, map[string][]byte{"test-root": root, "second": other}, labels,
		images.WithProgress(dockertest.LogWriter(t)))
	if err != nil {
		t.Fatalf("TrustVariant: %v", err)
	}
	t.Logf("TrustVariant built in %s", time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(variant, images.TrustRepo+":") || !strings.HasSuffix(variant, runID) {
		t.Errorf("variant tag %s: want %s:<hash>-%s", variant, images.TrustRepo, runID)
	}

	start = time.Now()
	again, err := images.TrustVariant(ctx, base, map[string][]byte{"second": other, "test-root": root}, labels)
	if err != nil || again != variant {
		t.Fatalf("TrustVariant again = %s, %v; want %s", again, err, variant)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second TrustVariant took %s, want a cache hit", d)
	}
	t.Logf("TrustVariant cache hit in %s", time.Since(start).Round(time.Millisecond))

	cli := dockertest.Require(t)
	in, err := cli.ImageInspect(ctx, variant)
	if err != nil {
		t.Fatal(err)
	}
	if in.Config.Labels[sweep.LabelRunID] != runID || in.Config.Labels[images.LabelImage] != "node-trust" {
		t.Errorf("variant labels = %v", in.Config.Labels)
	}
	if got := strings.Join(in.Config.Cmd, " "); got != "sleep infinity" {
		t.Errorf("variant CMD = %q, want the base's sleep infinity", got)
	}

	// The real check: curl, verifying against the system store, accepts the server on the variant
	// and refuses it on the base image.
	if code, out := curlThroughSystemStore(t, variant, labels, leaf, key); code != 0 {
		t.Errorf("curl on the trust variant exited %d: %s", code, out)
	}
	if code, out := curlThroughSystemStore(t, base, labels, leaf, key); code != 60 {
		t.Errorf("curl on the base image exited %d (%s), want 60 (untrusted certificate)", code, out)
	}

	// The variant belongs to the run: its sweep removes it.
	removed, err := sweep.Sweep(ctx, runID)
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if !strings.Contains(strings.Join(removed.Images, " "), variant) {
		t.Errorf("sweep removed images %v, not %s", removed.Images, variant)
	}
}
