package script

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests fetch the real install scripts through the go command at run time; they need
// the Go module proxy (or a module cache that already holds the versions).

func fetch(t *testing.T, version string) *Script {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := FromModule(ctx, version)
	if err != nil {
		t.Fatalf("FromModule(%s): %v", version, err)
	}
	return s
}

// brokenGuard turns a strict-era script into the v0.3.7 shape: the first test of the
// CA-necessity guard loses its closing bracket.
func brokenGuard(t *testing.T, body []byte) []byte {
	t.Helper()
	good := []byte(`if [ -n "${CATTLE_CA_CHECKSUM}" ] && [ $(echo`)
	bad := []byte(`if [ -n "${CATTLE_CA_CHECKSUM}" && [ $(echo`)
	if n := bytes.Count(body, good); n != 1 {
		t.Fatalf("expected exactly one strict-era CA-necessity guard in the script, found %d", n)
	}
	return bytes.Replace(body, good, bad, 1)
}

func TestFromModuleRealScripts(t *testing.T) {
	want := map[string]Profile{
		"v0.3.4":  {Name: ProfilePreStrict, CANecessityCheck: true},
		"v0.3.11": {Name: ProfileStrict, StrictAbort: true, CANecessityCheck: true, CANecessitySkippedWhenStrict: true},
		"v0.3.16": {Name: ProfileStrict, StrictAbort: true, CANecessityCheck: true, CANecessitySkippedWhenStrict: true, ValidatesConnection: true},
		"v0.15.0": {Name: ProfileStrict, StrictAbort: true, CANecessityCheck: true, CANecessitySkippedWhenStrict: true, ValidatesConnection: true},
	}
	for _, v := range KnownServedVersions() {
		t.Run(v, func(t *testing.T) {
			s := fetch(t, v)
			if s.Version != v || !strings.Contains(s.Source, Module+"@"+v) {
				t.Errorf("Version=%q Source=%q; want version %s named in both", s.Version, s.Source, v)
			}
			if !bytes.HasPrefix(s.Body, []byte("#!/bin/sh\n")) || len(s.Preamble) != 0 {
				t.Errorf("module script should be raw: starts %q, preamble %d bytes", firstLine(s.Body), len(s.Preamble))
			}
			if len(s.SHA256) != 64 {
				t.Errorf("SHA256 = %q", s.SHA256)
			}
			got := s.Profile
			if len(got.Warnings) != 0 {
				t.Errorf("warnings on a real script: %v", got.Warnings)
			}
			got.Warnings, got.CANecessityGuard = nil, ""
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want[v]) {
				t.Errorf("profile = %+v\nwant      %+v", got, want[v])
			}
			if s.Profile.CANecessityGuard == "" || !strings.Contains(s.Profile.CANecessityGuard, "CATTLE_CA_CHECKSUM") {
				t.Errorf("guard = %q", s.Profile.CANecessityGuard)
			}
		})
	}
}

func TestDetectProfileBrokenGuard(t *testing.T) {
	for _, v := range []string{"v0.3.11", "v0.15.0"} {
		s := fetch(t, v)
		p := DetectProfile(brokenGuard(t, s.Body))
		if p.Name != ProfileStrictBrokenGuard || !p.StrictGuardBroken || !p.StrictAbort || !p.CANecessityCheck {
			t.Errorf("%s with v0.3.7's missing bracket: profile %+v, want %s", v, p, ProfileStrictBrokenGuard)
		}
	}
}

// TestGuardsInRealShell runs each script's own CA-necessity guard in the real /bin/sh and in
// bash, and checks that the profile says correctly when the check runs: always with a
// checksum (pre-strict), only with strict off (strict), never (broken guard).
func TestGuardsInRealShell(t *testing.T) {
	bodies := map[string][]byte{}
	for _, v := range KnownServedVersions() {
		bodies[v] = fetch(t, v).Body
	}
	bodies["v0.3.7-like"] = brokenGuard(t, bodies["v0.3.11"])
	shells := []string{"sh"}
	if _, err := exec.LookPath("bash"); err == nil {
		shells = append(shells, "bash")
	}
	for name, body := range bodies {
		p := DetectProfile(body)
		for _, sh := range shells {
			for _, strict := range []string{"false", "true", "TRUE", "1"} {
				prog := fmt.Sprintf("CATTLE_CA_CHECKSUM=abc\nCATTLE_AGENT_STRICT_VERIFY=%s\nif %s; then echo RUNS; fi\n", strict, p.CANecessityGuard)
				out, _ := exec.Command(sh, "-c", prog).CombinedOutput()
				runs := strings.Contains(string(out), "RUNS")
				want := p.CANecessityCheck && !p.StrictGuardBroken &&
					!(p.CANecessitySkippedWhenStrict && strings.ToLower(strict) == "true")
				if runs != want {
					t.Errorf("%s in %s with strict=%s: guard %q ran=%v, profile %s says %v (output %q)", name, sh, strict, p.CANecessityGuard, runs, p, want, out)
				}
				if p.StrictGuardBroken && !strings.Contains(string(out), "missing") {
					t.Errorf("%s in %s: broken guard should make the shell complain about a missing bracket, got %q", name, sh, out)
				}
			}
		}
	}
}

func TestDetectProfileIgnoresCommentsAndMessages(t *testing.T) {
	s := fetch(t, "v0.3.4")
	// A pre-strict script that merely mentions the strict words in comments and messages is
	// still pre-strict: detection reads structure, not text.
	body := append([]byte(nil), s.Body...)
	body = append(body, []byte("\n# if [ -z \"${CATTLE_CA_CHECKSUM}\" ] && [ \"${CATTLE_AGENT_STRICT_VERIFY}\" = true ]; then fatal x; fi\n")...)
	body = bytes.Replace(body, []byte(`info "Enabling rancher-system-agent.service"`), []byte(`info "strict CA verification with no CA checksum provided validate-connection"`), 1)
	if p := DetectProfile(body); p.Name != ProfilePreStrict || p.StrictAbort || p.ValidatesConnection {
		t.Errorf("profile %+v, want pre-strict without validation", p)
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"v0.3.4", "v0.15.0", "v0.3.8-rc.3", "v1.0.0-alpha1"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("CheckVersion(%q) = %v", v, err)
		}
	}
	for _, v := range []string{"", "0.3.4", "v0.3", "v0.3.4.1", "v01.2.3", "latest", "v0.3.4+meta", "v0.3.4-", "v0.3.4 ; rm"} {
		err := CheckVersion(v)
		if err == nil || !strings.Contains(err.Error(), "vX.Y.Z") {
			t.Errorf("CheckVersion(%q) = %v, want a syntax error", v, err)
		}
	}
	if err := CheckVersion("0.15.0"); !strings.Contains(err.Error(), "did you mean v0.15.0") {
		t.Errorf("missing-v hint: %v", err)
	}
}

func TestFromModuleBadSyntaxDoesNotRunGo(t *testing.T) {
	_, err := FromModule(context.Background(), "0.3.4", WithGoBinary("/nonexistent/go"))
	if err == nil || !strings.Contains(err.Error(), "vX.Y.Z") {
		t.Fatalf("err = %v, want a version syntax error before the go command runs", err)
	}
}

func TestFromModuleNotServed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// GOPROXY=off makes the answer hermetic: v0.3.7 is in no cache the go command may read.
	_, err := FromModule(ctx, "v0.3.7", WithEnv("GOPROXY=off"))
	if err == nil {
		t.Fatal("v0.3.7 with GOPROXY=off should fail")
	}
	msg := err.Error()
	for _, want := range []string{"v0.3.7", "GOPROXY=off", "disabled", "v0.3.4", "v0.15.0", "-script-file", "-script-url"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestFromModuleNotServedByProxy(t *testing.T) {
	if os.Getenv("GOPROXY") == "off" {
		t.Skip("GOPROXY=off")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The public proxy does not serve v0.3.7; the error must carry the proxy's reason.
	_, err := FromModule(ctx, "v0.3.7")
	if err == nil {
		t.Fatal("v0.3.7 should not be served")
	}
	if !strings.Contains(err.Error(), "v0.3.7") || !strings.Contains(err.Error(), "-script-file") {
		t.Errorf("error: %v", err)
	}
	t.Logf("error as a user sees it: %v", err)
}

func TestFromModuleRespectsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := FromModule(ctx, "v0.15.0")
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v, want a context error", err)
	}
}

func TestFromModuleMissingGo(t *testing.T) {
	_, err := FromModule(context.Background(), "v0.15.0", WithGoBinary(filepath.Join(t.TempDir(), "no-go")))
	if err == nil || !strings.Contains(err.Error(), "WithGoBinary") {
		t.Fatalf("err = %v", err)
	}
}

// preambleFor renders a preamble in the shape Rancher's served route uses.
func preambleFor(export bool) string {
	sv := `STRICT_VERIFY="true"`
	if export {
		sv = `export STRICT_VERIFY='true'`
	}
	return "#!/usr/bin/env sh\n" + sv + "\nCATTLE_AGENT_BINARY_BASE_URL=\"https://rancher.example.test/assets\"\n" +
		"CATTLE_SERVER=https://rancher.example.test\nCATTLE_CA_CHECKSUM=\"" + strings.Repeat("ab", 32) + "\"\n\n"
}

func TestFromFile(t *testing.T) {
	real := fetch(t, "v0.15.0")
	dir := t.TempDir()

	raw := filepath.Join(dir, "install.sh")
	if err := os.WriteFile(raw, real.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := FromFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if s.SHA256 != real.SHA256 || s.Profile.Name != ProfileStrict || s.Version != "" {
		t.Errorf("from file: sha %s (want %s), profile %s, version %q", s.SHA256, real.SHA256, s.Profile, s.Version)
	}

	served := filepath.Join(dir, "served.sh")
	pre := preambleFor(true)
	if err := os.WriteFile(served, append([]byte(pre), real.Body...), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = FromFile(served)
	if err != nil {
		t.Fatal(err)
	}
	if s.SHA256 != real.SHA256 || string(s.Preamble) != pre {
		t.Errorf("served file: sha %s (want %s), preamble %q", s.SHA256, real.SHA256, s.Preamble)
	}

	if _, err := FromFile(filepath.Join(dir, "missing.sh")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := FromFile(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
	other := filepath.Join(dir, "other.sh")
	os.WriteFile(other, []byte("#!/bin/sh\necho hello\n"), 0o600)
	if _, err := FromFile(other); err == nil || !strings.Contains(err.Error(), "not a system-agent install script") {
		t.Errorf("unrelated script: %v", err)
	}
	// The marker words without the entry function: not a script the oracle can read.
	markers := filepath.Join(dir, "markers.sh")
	os.WriteFile(markers, []byte("#!/bin/sh\n# do_install CATTLE_CA_CHECKSUM rancher-system-agent\necho hello\n"), 0o600)
	if _, err := FromFile(markers); err == nil || !strings.Contains(err.Error(), "no do_install function") {
		t.Errorf("script with the markers only: %v", err)
	}
}

func TestFromURLAndRancher(t *testing.T) {
	real := fetch(t, "v0.3.11")
	html := "<!DOCTYPE html>\n<html><head><title>Rancher</title></head><body></body></html>\n"
	mux := http.NewServeMux()
	mux.HandleFunc("/good/assets/system-agent-install.sh", func(w http.ResponseWriter, r *http.Request) { w.Write(real.Body) })
	mux.HandleFunc("/good/system-agent-install.sh", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(preambleFor(false)))
		w.Write(real.Body)
	})
	// A Rancher without the asset answers with its dashboard page and 200.
	mux.HandleFunc("/dashboard/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(html)) })
	mux.HandleFunc("/slow/", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	s, err := FromRancher(ctx, srv.URL+"/good/", client)
	if err != nil {
		t.Fatal(err)
	}
	if s.SHA256 != real.SHA256 || len(s.Preamble) != 0 || !strings.HasSuffix(s.Source, "/good/assets/system-agent-install.sh") {
		t.Errorf("assets: sha %s source %s preamble %q", s.SHA256, s.Source, s.Preamble)
	}

	s, err = FromRancher(ctx, srv.URL+"/good/system-agent-install.sh", client)
	if err != nil {
		t.Fatal(err)
	}
	if s.SHA256 != real.SHA256 || !bytes.Contains(s.Preamble, []byte(`STRICT_VERIFY="true"`)) || s.Profile.Name != ProfileStrict {
		t.Errorf("served route: sha %s (want %s) preamble %q profile %s", s.SHA256, real.SHA256, s.Preamble, s.Profile)
	}

	_, err = FromRancher(ctx, srv.URL+"/dashboard", client)
	if err == nil || !strings.Contains(err.Error(), "HTML") || !strings.Contains(err.Error(), ServedPath) {
		t.Errorf("HTML page: %v", err)
	}

	s, err = FromURL(ctx, srv.URL+"/good/system-agent-install.sh", client)
	if err != nil || s.SHA256 != real.SHA256 {
		t.Errorf("FromURL served route: %v", err)
	}
	if _, err := FromURL(ctx, srv.URL+"/nothing-here", client); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: %v", err)
	}
	if _, err := FromURL(ctx, srv.URL+"/dashboard/x", client); err == nil || !strings.Contains(err.Error(), "HTML") {
		t.Errorf("HTML via FromURL: %v", err)
	}
	if _, err := FromURL(ctx, "rancher.example.test/install.sh", client); err == nil {
		t.Error("relative URL accepted")
	}
	if _, err := FromURL(ctx, srv.URL+"/good/assets/system-agent-install.sh", nil); err == nil {
		t.Error("default client should not trust the test server's certificate")
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := FromURL(tctx, srv.URL+"/slow/x", client); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("slow server: %v", err)
	}
}

func TestSplitPreambleRefusesOddPrefixes(t *testing.T) {
	// Text before the raw shebang that is not preamble-shaped is not stripped, and the body
	// is then refused: the first line is not the raw shebang.
	body := []byte("hello world\n#!/bin/sh\ndo_install CATTLE_CA_CHECKSUM rancher-system-agent\n")
	if _, err := newScript("", "test", body); err == nil {
		t.Error("accepted a body with prose before the shebang")
	}
	if _, err := newScript("", "test", []byte("  \n")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty body: %v", err)
	}
	if _, err := newScript("", "test", []byte("#!/bin/sh\x00\x01")); err == nil {
		t.Error("binary accepted")
	}
}

func TestParseProfileRoundTrip(t *testing.T) {
	bodies := map[string][]byte{}
	for _, v := range KnownServedVersions() {
		bodies[v] = fetch(t, v).Body
	}
	bodies["v0.3.7-like"] = brokenGuard(t, bodies["v0.3.11"])
	for name, b := range bodies {
		det := DetectProfile(b)
		parsed, err := ParseProfile(det.String())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		det.CANecessityGuard, det.Warnings = "", nil
		if fmt.Sprintf("%+v", parsed) != fmt.Sprintf("%+v", det) {
			t.Errorf("%s: ParseProfile(%q) = %+v, detected %+v", name, det.String(), parsed, det)
		}
	}
	if _, err := ParseProfile("modern"); err == nil || !strings.Contains(err.Error(), "pre-strict") {
		t.Errorf("unknown name: %v", err)
	}
}

func TestFromFileRefusesWhatIsNotARegularFile(t *testing.T) {
	// A device is endless; a FIFO (or a shell's process substitution) blocks until a writer
	// comes: either would hang the run before anything starts.
	if _, err := FromFile("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero: %v", err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := exec.Command("mkfifo", fifo).Run(); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := FromFile(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("fifo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("FromFile blocked on a FIFO")
	}
}

func TestSaveAndFromSaved(t *testing.T) {
	real := fetch(t, "v0.15.0")
	real.Preamble = []byte(preambleFor(true))
	path := filepath.Join(t.TempDir(), "install.sh")
	if err := real.Save(path); err != nil {
		t.Fatal(err)
	}
	s, err := FromSaved(path, "v0.15.0", "module x", real.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if s.SHA256 != real.SHA256 || s.Version != "v0.15.0" || s.Source != "module x" || !bytes.Equal(s.Preamble, real.Preamble) {
		t.Errorf("saved script came back as sha %s version %q source %q preamble %q", s.SHA256, s.Version, s.Source, s.Preamble)
	}
	if _, err := FromSaved(path, "", "x", strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("a script whose sha256 is not the resolved one: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://alice:s3cr3t@host/install.sh?token=abc&x=1": "https://REDACTED@host/install.sh?token=REDACTED&x=REDACTED",
		"https://host/install.sh":                            "https://host/install.sh",
		"http://host:8080/a/b.sh?sig=1":                      "http://host:8080/a/b.sh?sig=REDACTED",
		"%zz":                                                "REDACTED",
	} {
		got := RedactURL(in)
		if got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
		if IsRedacted(got) != (got != in) {
			t.Errorf("IsRedacted(%q) = %v", got, IsRedacted(got))
		}
	}
	// Nor do the errors of a download repeat the secret.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := FromURL(context.Background(), strings.Replace(srv.URL, "http://", "http://alice:s3cr3t@", 1)+"/x?token=abc", nil)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "abc") {
		t.Errorf("download error shows the credentials: %v", err)
	}
	_, err = FromURL(context.Background(), "http://alice:s3cr3t@127.0.0.1:1/x?token=abc", nil)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "abc") {
		t.Errorf("connection error shows the credentials: %v", err)
	}
}
