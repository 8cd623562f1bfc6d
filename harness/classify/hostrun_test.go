//go:build unix

package classify

// This test runs the REAL install script's own functions, in the real /bin/sh, with real curl,
// openssl and sha256sum, against a real TLS server on 127.0.0.1, for cells of the scenario
// files, and checks that the classifier's verdict on that output equals the oracle's. It is a
// host-only cross-check of oracle, classifier and script; the container tier remains the
// conformance run.
//
// What stands in for the test network:
//   - the node's system store is CURL_CA_BUNDLE (the public root, plus the attacker root on
//     mitm-trusted);
//   - one server per cell presents the certificate and /cacerts bytes of the cell's path
//     (Rancher's on direct, the attacker's on mitm*, Rancher's certificate with other bytes
//     on tamper*), and records requests and registrations the way the emulator does;
//   - the served preamble is prepended as Rancher renders it;
//   - do_install's own body runs with only the parts that need root or systemd removed (the
//     root check, stopping the service, and everything from writing the unit file on), with
//     its directories under a temp dir;
//   - the agent binary served at /assets is a shell stand-in that implements only
//     validate-connection's file checks (exists, non-empty).
//
// Set AGENTTLS_HOST_FULL=1 to run the whole 144-cell matrix too (about a minute), and
// AGENTTLS_HOST_TRANSCRIPTS=<dir> to write every cell's transcript there in the
// fixtures/transcripts format.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/oracle"
	"github.com/agenttls/agenttls/harness/pki"
	"github.com/agenttls/agenttls/harness/proxy"
	"github.com/agenttls/agenttls/harness/script"
)

type hostNet struct {
	p        *pki.PKI
	tamperCA []byte // "another valid CA": a root from a second PKI
	leaves   map[string]*pki.Leaf
}

func newHostNet(t *testing.T) *hostNet {
	t.Helper()
	p, err := pki.New()
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.New()
	if err != nil {
		t.Fatal(err)
	}
	n := &hostNet{p: p, tamperCA: other.PrivateRoot.CertPEM, leaves: map[string]*pki.Leaf{}}
	for name, ca := range map[string]*pki.CA{"private": p.PrivateIntermediate, "public": p.PublicRoot, "attacker": p.AttackerRoot} {
		l, err := p.Issue(ca, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
		if err != nil {
			t.Fatal(err)
		}
		n.leaves[name] = l
	}
	return n
}

// served is what Rancher serves at /cacerts for a CA kind.
func (n *hostNet) served(ca matrix.CAKind) []byte {
	switch ca {
	case matrix.CAPublic:
		return pki.CACertsServed(nil)
	case matrix.CAPrivateBundle:
		file := append(append([]byte("\n"), n.p.PrivateIntermediate.CertPEM...), n.p.PrivateRoot.CertPEM...)
		return pki.CACertsServed(pki.Setting(append(file, '\n', '\n')))
	}
	return pki.CACertsServed(pki.Setting(n.p.PrivateRoot.CertPEM))
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// agentStandIn implements only the file checks of `rancher-system-agent validate-connection`.
const agentStandIn = "#!/bin/sh\n# agenttls host-test stand-in for rancher-system-agent\n" +
	"if [ \"$1\" = validate-connection ] && [ -s \"$2\" ]; then exit 0; fi\necho \"stand-in: $*\" >&2\nexit 1\n"

type cellServer struct {
	*httptest.Server
	program  atomic.Value // string: the served script, for the command's own download
	requests atomic.Int64
	mu       sync.Mutex
	regs     []Registration
}

func (n *hostNet) serve(t *testing.T, c matrix.Cell, token string) *cellServer {
	t.Helper()
	leaf := n.leaves["private"]
	if c.CA == matrix.CAPublic {
		leaf = n.leaves["public"]
	}
	body, via := n.served(c.CA), ""
	switch c.Path {
	case matrix.PathMITM, matrix.PathMITMTrusted:
		leaf, body, via = n.leaves["attacker"], n.p.AttackerRoot.CertPEM, "mitm"
	case matrix.PathTamper:
		body, via = n.tamperCA, "tamper"
	case matrix.PathTamperGarbage:
		body, via = []byte(proxy.GarbageBody), "tamper"
	case matrix.PathTamperEmpty:
		body, via = nil, "tamper"
	}
	s := &cellServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/cacerts", func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	mux.HandleFunc("/system-agent-install.sh", func(w http.ResponseWriter, r *http.Request) {
		prog, _ := s.program.Load().(string)
		io.WriteString(w, prog)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/assets/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/assets/rancher-system-agent-") {
			io.WriteString(w, agentStandIn)
			return
		}
		io.WriteString(w, "#!/bin/sh\n")
	})
	mux.HandleFunc("/v3/connect/agent", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Cattle-Id") == "" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		s.regs = append(s.regs, Registration{InterceptedBy: via})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"namespace": "fleet-default", "secretName": "custom-plan", "kubeConfig": "apiVersion: v1\nkind: Config\n"}`)
	})
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/system-agent-install.sh" { // the command's download, not the script's
			s.requests.Add(1)
		}
		mux.ServeHTTP(w, r)
	}))
	s.Server.TLS = newTLSConfig(leaf)
	s.Server.Config.ErrorLog = log.New(io.Discard, "", 0) // nodes that refuse the certificate are expected
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// hostProgram is the served script: preamble, the raw script without its final call, and
// do_install's own body minus the parts that need root or systemd.
func hostProgram(t *testing.T, body []byte, preamble string) string {
	t.Helper()
	lines := strings.Split(string(body), "\n")
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "do_install ") {
			end = i
			break
		}
	}
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "do_install()") {
			start = i
			break
		}
	}
	if start < 0 || end < 0 {
		t.Fatal("no do_install in the script")
	}
	var drv []string
	skipping := false
	for _, l := range lines[start+1:] {
		tl := strings.TrimSpace(l)
		if l == "}" || tl == "create_systemd_service_file" {
			break
		}
		switch {
		case strings.Contains(tl, "$(id -u)"):
			skipping = true
			continue
		case skipping:
			skipping = tl != "fi"
			continue
		case tl == "ensure_systemd_service_stopped":
			continue
		}
		drv = append(drv, l)
	}
	return preamble + strings.Join(lines[:end], "\n") + "\n\nagenttls_host_install() {\n" +
		strings.Join(drv, "\n") + "\n}\n\nagenttls_host_install \"$@\"\n"
}

type hostResult struct {
	obs      Observation
	decideIn time.Duration // from the first proving line to Line's answer; zero if undecided
	output   []string
	// what the server recorded, for written transcripts
	serverRegs, serverRequests int
	serverVia                  string
}

// download says how the node gets the script: "" runs the served script from a file; "secure"
// and "insecure" pipe the command's own `curl -fL [--insecure] URL/system-agent-install.sh`
// into `sh -s -`, as the registration command does.
func runCell(t *testing.T, n *hostNet, s *script.Script, c matrix.Cell, download string) hostResult {
	t.Helper()
	token := "token-" + strings.ReplaceAll(c.Slug(), "_", "-")
	srv := n.serve(t, c, token)
	dir := t.TempDir()
	trust := append([]byte(nil), n.p.PublicRoot.CertPEM...)
	if c.Path == matrix.PathMITMTrusted {
		trust = append(trust, n.p.AttackerRoot.CertPEM...)
	}
	bundle := filepath.Join(dir, "system-store.pem")
	if err := os.WriteFile(bundle, trust, 0o644); err != nil {
		t.Fatal(err)
	}

	var pre strings.Builder
	pre.WriteString("#!/usr/bin/env sh\n")
	if c.Mode == matrix.ModeStrict {
		pre.WriteString("export STRICT_VERIFY='true'\n")
	} else {
		pre.WriteString("export STRICT_VERIFY='false'\n")
	}
	fmt.Fprintf(&pre, "CATTLE_AGENT_BINARY_BASE_URL=\"%s/assets\"\nCATTLE_SERVER=%s\n", srv.URL, srv.URL)
	if c.CA != matrix.CAPublic {
		fmt.Fprintf(&pre, "CATTLE_CA_CHECKSUM=\"%s\"\n", sum(n.served(c.CA)))
	}
	pre.WriteString("\n")
	program := hostProgram(t, s.Body, pre.String())
	srv.program.Store(program)
	prog := filepath.Join(dir, "install.sh")
	if err := os.WriteFile(prog, []byte(program), 0o755); err != nil {
		t.Fatal(err)
	}

	args := []string{prog, "--server", srv.URL, "--label", "cattle.io/os=linux", "--token", token, "--worker"}
	switch download {
	case "secure":
		args = append([]string{"-c", `curl -fL "$0/system-agent-install.sh" | sh -s - "$@"`, srv.URL}, args[1:]...)
	case "insecure":
		args = append([]string{"-c", `curl --insecure -fL "$0/system-agent-install.sh" | sh -s - "$@"`, srv.URL}, args[1:]...)
	}
	switch c.Checksum {
	case matrix.ChecksumCorrect:
		args = append(args, "--ca-checksum", sum(n.served(c.CA)))
	case matrix.ChecksumWrong:
		args = append(args, "--ca-checksum", pki.Checksum(n.p.StaleRoot.CertPEM))
	case matrix.ChecksumEmpty:
		args = append(args, "--ca-checksum", "")
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "CURL_CA_BUNDLE=" + bundle,
		"CATTLE_AGENT_CONFIG_DIR=" + filepath.Join(dir, "etc"), "CATTLE_AGENT_VAR_DIR=" + filepath.Join(dir, "var"),
		"CATTLE_AGENT_BIN_PREFIX=" + filepath.Join(dir, "prefix")}
	if c.StrictVerify != matrix.StrictUnset {
		switch c.At() {
		case matrix.AtSh:
			env = append(env, "CATTLE_AGENT_STRICT_VERIFY="+string(c.StrictVerify))
		case matrix.AtShLegacyName:
			env = append(env, "STRICT_VERIFY="+string(c.StrictVerify))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type rec struct{ stream, line string }
	lines := make(chan rec)
	var wg sync.WaitGroup
	for stream, r := range map[string]io.Reader{Stdout: stdout, Stderr: stderr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				lines <- rec{stream, sc.Text()}
			}
		}()
	}
	go func() { wg.Wait(); close(lines) }()

	cl := New(s.Profile)
	var res hostResult
	stopped := false
	for l := range lines {
		res.output = append(res.output, FormatLine(l.stream, l.line))
		if stopped {
			continue
		}
		t0 := time.Now()
		if cl.Line(l.stream, l.line) {
			res.decideIn = time.Since(t0)
			stopped = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	err := cmd.Wait()
	exit := Stopped
	if !stopped {
		exit = 0
		if ee, ok := err.(*exec.ExitError); ok {
			exit = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run: %v", err)
		}
		if ctx.Err() != nil {
			exit = Stopped
		}
	}
	srv.mu.Lock()
	sv := ServerView{Registrations: append([]Registration(nil), srv.regs...), Requests: int(srv.requests.Load()), RequestsCounted: true}
	srv.mu.Unlock()
	res.obs = cl.Finish(exit, sv)
	res.serverRegs, res.serverRequests = len(sv.Registrations), sv.Requests
	if len(sv.Registrations) > 0 {
		res.serverVia = sv.Registrations[0].InterceptedBy
	}
	res.output = append(res.output, FormatExit(exit))
	return res
}

func hostTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"sh", "curl", "openssl", "sha256sum", "awk", "mktemp", "dd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: this cross-check runs the real script's functions on the host", tool)
		}
	}
}

func scenarioCells(t *testing.T, names ...string) []matrix.Cell {
	t.Helper()
	var cells []matrix.Cell
	seen := map[string]bool{}
	for _, n := range names {
		sc, err := matrix.LoadScenario(filepath.Join("../../scenarios", n+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sc.Cells {
			if !seen[c.ID()] {
				seen[c.ID()] = true
				cells = append(cells, c)
			}
		}
	}
	return cells
}

func TestRealScriptOnHost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the real-script cross-check (about 10 s)")
	}
	hostTools(t)
	n := newHostNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	scripts := map[string]*script.Script{}
	for _, v := range []string{"v0.15.0", "v0.3.11", "v0.3.4"} {
		s, err := script.FromModule(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		scripts[v] = s
	}
	// v0.3.7's shape: v0.3.11 with the bracket missing.
	b := bytes.Replace(scripts["v0.3.11"].Body, []byte(`if [ -n "${CATTLE_CA_CHECKSUM}" ] && [ $(echo`), []byte(`if [ -n "${CATTLE_CA_CHECKSUM}" && [ $(echo`), 1)
	scripts["v0.3.7-like"] = &script.Script{Body: b, Profile: script.DetectProfile(b)}

	runs := map[string][]matrix.Cell{
		"v0.15.0":     scenarioCells(t, "smoke", "remedies", "field-cases"),
		"v0.3.11":     scenarioCells(t, "smoke"),
		"v0.3.4":      scenarioCells(t, "smoke", "remedies"),
		"v0.3.7-like": scenarioCells(t, "smoke", "remedies"),
	}
	if os.Getenv("AGENTTLS_HOST_FULL") == "1" {
		runs["v0.15.0"] = append(runs["v0.15.0"], scenarioCells(t, "full")...)
	}
	var total, decided atomic.Int64
	var slowest atomic.Int64
	for v, cells := range runs {
		s := scripts[v]
		for _, c := range cells {
			t.Run(v+"/"+c.ID(), func(t *testing.T) {
				t.Parallel()
				want := oracle.Expect(c, s.Profile, oracle.Server{})
				res := runCell(t, n, s, c, "")
				total.Add(1)
				if res.obs.Decided {
					decided.Add(1)
				}
				if d := res.decideIn.Nanoseconds(); d > slowest.Load() {
					slowest.Store(d)
				}
				if dir := os.Getenv("AGENTTLS_HOST_TRANSCRIPTS"); dir != "" {
					writeHostTranscript(t, dir, v, s.Profile, c, res)
				}
				if res.obs.Verdict != want.Verdict {
					t.Errorf("%s on %s: observed %s (%s; %s), oracle %s (%s)\ntranscript:\n%s",
						c.ID(), v, res.obs.Verdict, res.obs.Evidence, res.obs.Detail, want.Verdict, want.Reason, strings.Join(res.output, "\n"))
				}
			})
		}
	}
	t.Cleanup(func() {
		t.Logf("%d cells run with the real script on the host; %d decided before the script ended; slowest decision %v",
			total.Load(), decided.Load(), time.Duration(slowest.Load()))
	})
}

// TestRealCommandDownloadOnHost pipes the command's own script download into sh, with and
// without --insecure, and checks the classifier against oracle.ExpectCommand: without
// --insecure, a server the node's store does not trust is refused before the script runs.
func TestRealCommandDownloadOnHost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the real-script cross-check")
	}
	hostTools(t)
	n := newHostNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := script.FromModule(ctx, "v0.15.0")
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	var mu sync.Mutex
	for _, c := range scenarioCells(t, "smoke", "remedies") {
		for _, mode := range []string{"secure", "insecure"} {
			t.Run(mode+"/"+c.ID(), func(t *testing.T) {
				t.Parallel()
				want := oracle.ExpectCommand(c, s.Profile, oracle.Server{}, mode == "insecure")
				res := runCell(t, n, s, c, mode)
				if res.obs.Verdict != want.Verdict {
					t.Errorf("%s, %s download: observed %s (%s; %s), oracle %s (%s)\ntranscript:\n%s",
						c.ID(), mode, res.obs.Verdict, res.obs.Evidence, res.obs.Detail, want.Verdict, want.Reason, strings.Join(res.output, "\n"))
				}
				if strings.Contains(res.obs.Detail, "never ran") {
					mu.Lock()
					refused++
					mu.Unlock()
				}
			})
		}
	}
	t.Cleanup(func() {
		if refused == 0 {
			t.Error("no cell was refused at the script download: the secure download is not exercised")
		}
		t.Logf("%d cells refused at the script download", refused)
	})
}

func newTLSConfig(l *pki.Leaf) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{l.TLS}, MinVersion: tls.VersionTLS12}
}

func writeHostTranscript(t *testing.T, dir, version string, p script.Profile, c matrix.Cell, res hostResult) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# source: recorded on the host by TestRealScriptOnHost: install.sh %s functions in /bin/sh against a local TLS server (not a node container)\n", version)
	if strings.HasPrefix(version, "v") && !strings.Contains(version, "like") {
		fmt.Fprintf(&b, "# script: %s\n", version)
	} else {
		fmt.Fprintf(&b, "# profile: %s\n", p)
	}
	fmt.Fprintf(&b, "# cell: %s\n", c.ID())
	fmt.Fprintf(&b, "# server: registrations=%d", res.serverRegs)
	if res.serverVia != "" {
		fmt.Fprintf(&b, " intercepted-by=%s", res.serverVia)
	}
	fmt.Fprintf(&b, " requests=%d\n", res.serverRequests)
	b.WriteString(strings.Join(res.output, "\n") + "\n")
	name := fmt.Sprintf("%s__host-%s-%s.txt", res.obs.Verdict, version, c.Slug())
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}
