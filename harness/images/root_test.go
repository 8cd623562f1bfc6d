package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModuleRootIsFoundFromASubdirectory(t *testing.T) {
	var o options
	root, err := o.moduleRoot()
	if err != nil {
		t.Fatalf("moduleRoot: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !declares(data, modulePath) {
		t.Fatalf("root %s does not hold the %s go.mod (%v)", root, modulePath, err)
	}
	wd, _ := os.Getwd()
	if !strings.HasPrefix(wd, root+string(filepath.Separator)) {
		t.Errorf("root %s is not above the working dir %s", root, wd)
	}
}

func TestModuleRootRefusesAnotherModule(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	var o options
	if _, err := o.moduleRoot(); err == nil || !strings.Contains(err.Error(), "WithModuleRoot") {
		t.Fatalf("moduleRoot under another module: err %v, want one pointing at WithModuleRoot", err)
	}
	if err := WithModuleRoot(dir)(&o); err != nil {
		t.Fatalf("WithModuleRoot: %v", err)
	}
	if got, err := o.moduleRoot(); err != nil || got != dir {
		t.Fatalf("moduleRoot with WithModuleRoot = %s, %v; want %s", got, err, dir)
	}
	if err := WithModuleRoot(filepath.Join(dir, "a"))(&o); err == nil {
		t.Error("WithModuleRoot of a dir without go.mod: no error")
	}
}

func TestDeclares(t *testing.T) {
	for gomod, want := range map[string]bool{
		"module github.com/agenttls/agenttls\n\ngo 1.26\n": true,
		"// c\nmodule \"github.com/agenttls/agenttls\"\n":  true,
		"module github.com/agenttls/agenttls/v2\n":         false,
		"go 1.26\n": false,
	} {
		if got := declares([]byte(gomod), modulePath); got != want {
			t.Errorf("declares(%q) = %v, want %v", gomod, got, want)
		}
	}
}

func TestTrustInputChecks(t *testing.T) {
	for _, name := range []string{"", "a/b", "x y", "../up"} {
		if checkName(name) == nil {
			t.Errorf("checkName(%q): no error", name)
		}
	}
	if err := checkName("public-ca_1.2"); err != nil {
		t.Errorf("checkName: %v", err)
	}
	if checkRoots([]byte("not pem")) == nil {
		t.Error("checkRoots accepts non-PEM")
	}
	if got := tagSafe("abc/def:ghi"); got != "abc_def_ghi" {
		t.Errorf("tagSafe = %q", got)
	}
	if got := tagSafe(strings.Repeat("a", 200)); len(got) != 128 {
		t.Errorf("tagSafe length = %d, want 128", len(got))
	}
}
