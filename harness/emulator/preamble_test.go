package emulator

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPreambleRenderBytes(t *testing.T) {
	script := []byte("#!/bin/sh\necho body\n")
	cases := []struct {
		name string
		p    Preamble
		want string
	}{
		{
			name: "export strict private",
			p:    Preamble{Style: StyleExport, Strict: true, ServerURL: "https://r.test", Host: "ignored", Checksum: sum},
			want: "#!/usr/bin/env sh\n" +
				"export STRICT_VERIFY='true'\n" +
				"\n" +
				"CATTLE_AGENT_BINARY_BASE_URL=\"https://r.test/assets\"\n" +
				"CATTLE_SERVER=https://r.test\n" +
				"CATTLE_CA_CHECKSUM=\"" + sum + "\"\n" +
				"\n" +
				"\n" +
				"#!/bin/sh\necho body\n\n",
		},
		{
			name: "export system-store public",
			p:    Preamble{Style: StyleExport, Strict: false, ServerURL: "https://r.test"},
			want: "#!/usr/bin/env sh\n" +
				"export STRICT_VERIFY='false'\n" +
				"\n" +
				"CATTLE_AGENT_BINARY_BASE_URL=\"https://r.test/assets\"\n" +
				"CATTLE_SERVER=https://r.test\n" +
				"\n" +
				"\n" +
				"\n" +
				"#!/bin/sh\necho body\n\n",
		},
		{
			name: "quoted strict private",
			p:    Preamble{Style: StyleQuoted, Strict: true, ServerURL: "https://r.test", Checksum: sum},
			want: "#!/usr/bin/env sh\n" +
				"STRICT_VERIFY=\"true\"\n" +
				"\n" +
				"CATTLE_AGENT_BINARY_BASE_URL=\"https://r.test/assets\"\n" +
				"CATTLE_SERVER=https://r.test\n" +
				"CATTLE_CA_CHECKSUM=\"" + sum + "\"\n" +
				"\n" +
				"\n" +
				"#!/bin/sh\necho body\n\n",
		},
		{
			name: "quoted system-store public",
			p:    Preamble{Style: StyleQuoted, ServerURL: "https://r.test"},
			want: "#!/usr/bin/env sh\n" +
				"STRICT_VERIFY=\"false\"\n" +
				"\n" +
				"CATTLE_AGENT_BINARY_BASE_URL=\"https://r.test/assets\"\n" +
				"CATTLE_SERVER=https://r.test\n" +
				"\n" +
				"\n" +
				"\n" +
				"#!/bin/sh\necho body\n\n",
		},
		{
			name: "none strict private",
			p:    Preamble{Style: StyleNone, Strict: true, ServerURL: "https://r.test", Checksum: sum},
			want: "#!/usr/bin/env sh\n" +
				"\n" +
				"CATTLE_AGENT_BINARY_BASE_URL=\"https://r.test/assets\"\n" +
				"CATTLE_SERVER=https://r.test\n" +
				"CATTLE_CA_CHECKSUM=\"" + sum + "\"\n" +
				"\n" +
				"\n" +
				"#!/bin/sh\necho body\n\n",
		},
		{
			name: "none public",
			p:    Preamble{Style: StyleNone, ServerURL: "https://r.test"},
			want: "#!/usr/bin/env sh\n" +
				"\n" +
				"CATTLE_AGENT_BINARY_BASE_URL=\"https://r.test/assets\"\n" +
				"CATTLE_SERVER=https://r.test\n" +
				"\n" +
				"\n" +
				"\n" +
				"#!/bin/sh\necho body\n\n",
		},
		{
			name: "no server-url uses Host for the binary URL only",
			p:    Preamble{Style: StyleExport, Strict: true, Host: "rancher.test:8443", Checksum: sum},
			want: "#!/usr/bin/env sh\n" +
				"export STRICT_VERIFY='true'\n" +
				"\n" +
				"CATTLE_AGENT_BINARY_BASE_URL=\"https://rancher.test:8443/assets\"\n" +
				"\n" +
				"CATTLE_CA_CHECKSUM=\"" + sum + "\"\n" +
				"\n" +
				"\n" +
				"#!/bin/sh\necho body\n\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(c.p.Render(script)); got != c.want {
				t.Fatalf("rendered:\n%q\nwant:\n%q", got, c.want)
			}
		})
	}
}

func TestShellSingleQuote(t *testing.T) {
	if got := shellSingleQuote("it's"); got != `'it'\''s'` {
		t.Fatalf("got %s", got)
	}
}

// TestPreambleInShell runs the rendered script with /bin/sh: the assignments must reach the
// script body, and only the export style must reach child processes.
func TestPreambleInShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	body := []byte("#!/bin/sh\n" +
		`echo "S=$STRICT_VERIFY C=$CATTLE_CA_CHECKSUM B=$CATTLE_AGENT_BINARY_BASE_URL V=$CATTLE_SERVER"` + "\n" +
		`sh -c 'echo "child=$STRICT_VERIFY"'` + "\n")
	for _, c := range []struct {
		style PreambleStyle
		want  string
	}{
		{StyleExport, "S=true C=" + sum + " B=https://r.test/assets V=https://r.test\nchild=true\n"},
		{StyleQuoted, "S=true C=" + sum + " B=https://r.test/assets V=https://r.test\nchild=\n"},
		{StyleNone, "S= C=" + sum + " B=https://r.test/assets V=https://r.test\nchild=\n"},
	} {
		t.Run(string(c.style), func(t *testing.T) {
			p := Preamble{Style: c.style, Strict: true, ServerURL: "https://r.test", Checksum: sum}
			f := filepath.Join(t.TempDir(), "install.sh")
			if err := os.WriteFile(f, p.Render(body), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(sh, f)
			cmd.Env = envWithout("STRICT_VERIFY")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("sh: %v\n%s", err, out)
			}
			if string(out) != c.want {
				t.Fatalf("output %q, want %q", out, c.want)
			}
		})
	}
}

// TestPreambleOverridesCaller: a STRICT_VERIFY given to sh loses to the preamble's assignment.
func TestPreambleOverridesCaller(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	p := Preamble{Style: StyleQuoted, Strict: true, ServerURL: "https://r.test"}
	f := filepath.Join(t.TempDir(), "install.sh")
	if err := os.WriteFile(f, p.Render([]byte(`echo "$STRICT_VERIFY"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sh, f)
	cmd.Env = append(envWithout("STRICT_VERIFY"), "STRICT_VERIFY=false")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "true\n" {
		t.Fatalf("got %q (%v), want the preamble's true", out, err)
	}
}

func envWithout(name string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func TestParsePreambleStyle(t *testing.T) {
	for _, s := range []string{"export", "quoted", "none"} {
		if _, err := ParsePreambleStyle(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParsePreambleStyle("Export"); err == nil || !strings.Contains(err.Error(), "quoted") {
		t.Errorf("bad style accepted or unhelpful error: %v", err)
	}
}
