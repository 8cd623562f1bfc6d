package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validJSON = `{
  "kubeConfig": "not parsed: any non-empty text passes",
  "namespace": "fleet-default",
  "secretName": "custom-0123456789ab-machine-plan"
}
`

func write(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func runArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateConnection(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		content string
		mode    os.FileMode
		wantErr string // "" = valid
	}{
		{"script's temp file", "rancher2_connection_info.json.tmp", validJSON, 0o600, ""},
		{"yaml", "conn.yaml", "kubeConfig: k\nnamespace: n\nsecretName: s\n", 0o600, ""},
		{"json wins over yaml in the name", "conn.yaml.json", "kubeConfig: k\nnamespace: n\nsecretName: s\n", 0o600, "does not decode as JSON"},
		{"trailing bytes after the JSON value are ignored", "c.json", validJSON + "garbage", 0o600, ""},
		{"mode 0644", "c.json", validJSON, 0o644, "0644"},
		{"mode 0400", "c.json", validJSON, 0o400, "0400"},
		{"mode 0660", "c.json", validJSON, 0o660, "0660"},
		{"setuid", "c.json", validJSON, 0o600 | os.ModeSetuid, "4600"},
		{"unknown format", "conn.txt", validJSON, 0o600, "neither .json nor .yaml"},
		{"not JSON", "c.json", "<html>index</html>", 0o600, "does not decode as JSON"},
		{"empty file", "c.json", "", 0o600, "does not decode as JSON"},
		{"all missing: kubeConfig first", "c.json", `{}`, 0o600, "kubeConfig"},
		{"namespace second", "c.json", `{"kubeConfig":"k","secretName":""}`, 0o600, "namespace"},
		{"secretName last", "c.json", `{"kubeConfig":"k","namespace":"n"}`, 0o600, "secretName"},
		{"bad mode is checked before content", "c.txt", "", 0o644, "0644"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, c.file, c.content, c.mode)
			code, stdout, stderr := runArgs("validate-connection", p)
			if c.wantErr == "" {
				if code != 0 {
					t.Fatalf("exit %d, stderr %q; want 0", code, stderr)
				}
				if !strings.Contains(stdout, "valid") {
					t.Errorf("stdout %q", stdout)
				}
				return
			}
			if code != 1 || !strings.Contains(stderr, c.wantErr) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, stderr, c.wantErr)
			}
		})
	}
}

func TestValidateConnectionMissing(t *testing.T) {
	code, _, stderr := runArgs("validate-connection", filepath.Join(t.TempDir(), "rancher2_connection_info.json.tmp"))
	if code != 1 || !strings.Contains(stderr, "no connection info file") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestValidateConnectionOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	for _, c := range []struct {
		name     string
		uid, gid int
	}{{"other user", 12345, os.Getgid()}, {"other group", os.Getuid(), 12345}} {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, "c.json", validJSON, 0o600)
			if err := os.Chown(p, c.uid, c.gid); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runArgs("validate-connection", p)
			if code != 1 || !strings.Contains(stderr, "belongs to") {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	if code, stdout, _ := runArgs("sentinel"); code != 0 || !strings.Contains(stdout, "agenttls stand-in") {
		t.Errorf("sentinel: %d %q", code, stdout)
	}
	for _, args := range [][]string{nil, {"run"}, {"validate-connection"}, {"validate-connection", "a", "b"}, {"--version"}} {
		if code, _, stderr := runArgs(args...); code != 2 || !strings.Contains(stderr, "usage:") {
			t.Errorf("%q: exit %d, stderr %q; want 2 with usage", args, code, stderr)
		}
	}
}
