package runner

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/command"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/pki"
	"github.com/agenttls/agenttls/harness/testbed"
)

func fullMatrix(t *testing.T) []matrix.Cell {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	s, err := matrix.LoadScenario(filepath.Join(filepath.Dir(file), "..", "..", "scenarios", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return s.Cells
}

// TestRancherCommandsForEveryCell: in the Rancher tier each cell runs the nodeCommand Rancher
// rendered (here one with cluster agent variables, as Rancher puts them before curl and after
// sudo), changed only as the cell asks; the hermetic tier renders the same shape itself.
func TestRancherCommandsForEveryCell(t *testing.T) {
	p, err := pki.New()
	if err != nil {
		t.Fatal(err)
	}
	sums := command.Checksums{Correct: pki.Checksum(pki.Setting(p.PrivateRoot.CertPEM)), Wrong: pki.Checksum(p.StaleRoot.CertPEM)}
	const tok = "vmrpr8d6g2kcm2xzqkgwhx8lz2hzwvhw27mgqkbmv2g7mrk9jd6mj2"
	rendered := command.NodeCommand("https://rancher.agenttls.test", tok, sums.Correct, []string{`HTTPS_PROXY="http://p:3128"`})
	d := &testbed.Description{Backend: "rancher", Rancher: map[matrix.CAKind]testbed.RancherEndpoint{
		matrix.CAPrivate: {NodeCommand: rendered, RootCA: p.PrivateRoot.CertPEM, URL: "https://127.0.0.1:1"},
		matrix.CAPublic:  {NodeCommand: strings.Replace(rendered, " --ca-checksum "+sums.Correct, "", 1), RootCA: p.PublicRoot.CertPEM, URL: "https://127.0.0.1:2"},
	}}
	b, err := NewBackend(d)
	if err != nil {
		t.Fatal(err)
	}
	cells := fullMatrix(t)
	if len(cells) != 144 {
		t.Fatalf("full matrix has %d cells", len(cells))
	}
	for _, c := range cells {
		base, err := b.NodeCommand(c, testbed.Target{})
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := command.ForCell(base, c, sums, InsecureDownload(c.CA))
		if err != nil {
			t.Fatalf("%s: %v", c.ID(), err)
		}
		for _, want := range []string{"--token " + tok, `HTTPS_PROXY="http://p:3128" curl`, `| sudo HTTPS_PROXY="http://p:3128"`, " --worker"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s: %q lost %q", c.ID(), cmd, want)
			}
		}
		n := strings.Count(cmd, "--ca-checksum")
		switch c.Checksum {
		case matrix.ChecksumAbsent:
			if n != 0 {
				t.Errorf("%s: checksum absent, but %q", c.ID(), cmd)
			}
		case matrix.ChecksumCorrect, matrix.ChecksumWrong:
			want := map[matrix.Checksum]string{matrix.ChecksumCorrect: sums.Correct, matrix.ChecksumWrong: sums.Wrong}[c.Checksum]
			if n != 1 || !strings.HasSuffix(strings.TrimSuffix(cmd, " --worker"), "--ca-checksum "+want) {
				t.Errorf("%s: %q", c.ID(), cmd)
			}
		}
		if (c.CA != matrix.CAPublic) != strings.Contains(cmd, "curl --insecure") {
			t.Errorf("%s: --insecure on the download: %q", c.ID(), cmd)
		}
	}
	// A CA kind the testbed has no Rancher for is an error, not an empty command.
	if _, err := b.NodeCommand(matrix.Cell{CA: matrix.CAPrivateBundle}, testbed.Target{}); err == nil {
		t.Fatal("no Rancher for the CA kind, yet a command")
	}
	// The Rancher tier's Hold is a no-op on versions without agent-tls-mode.
	release, err := b.Hold(context.Background(), matrix.Cell{CA: matrix.CAPrivate, Mode: matrix.ModeStrict})
	if err != nil {
		t.Fatal(err)
	}
	release()
}

func TestNewBackendRejectsABadRoot(t *testing.T) {
	d := &testbed.Description{Backend: "rancher", Rancher: map[matrix.CAKind]testbed.RancherEndpoint{
		matrix.CAPrivate: {RootCA: []byte("not a PEM"), URL: "https://127.0.0.1:1"},
	}}
	if _, err := NewBackend(d); err == nil {
		t.Fatal("a root CA without a certificate was accepted")
	}
	if b, err := NewBackend(&testbed.Description{}); err != nil {
		t.Fatal(err)
	} else if _, ok := b.(hermetic); !ok {
		t.Fatalf("default backend %T, want the hermetic one", b)
	}
}

func TestInterceptMode(t *testing.T) {
	for p, want := range map[matrix.Path]string{
		matrix.PathDirect: "", matrix.PathMITM: "mitm", matrix.PathMITMTrusted: "mitm",
		matrix.PathTamper: "tamper", matrix.PathTamperGarbage: "tamper", matrix.PathTamperEmpty: "tamper",
	} {
		if got := interceptMode(p); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
}
