package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/agenttls/agenttls/harness/config"
)

// TestWorkflows reads .github/workflows the way a reviewer would, since GitHub cannot be
// reached from here: every job has a runner and steps, every step runs or uses something, and
// what the steps call exists: make targets in the Makefile, agenttls subcommands, and the
// AGENTTLS_* variables they set are read somewhere in the code.
func TestWorkflows(t *testing.T) {
	root, err := config.FindModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if len(files) < 3 {
		t.Fatalf("want the ci, gate and tag-watch workflows, found %v", files)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`).FindAllStringSubmatch(string(makefile), -1) {
		targets[m[1]] = true
	}
	var subcommands []string
	for _, c := range commands() {
		subcommands = append(subcommands, c.name)
	}
	code := goSources(t, root)

	makeCall := regexp.MustCompile(`\bmake ([a-z][a-z0-9-]*)`)
	agenttlsCall := regexp.MustCompile(`bin/agenttls ([a-z][a-z-]*)`)
	envName := regexp.MustCompile(`AGENTTLS_[A-Z_]+`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		var wf struct {
			On   any `yaml:"on"`
			Jobs map[string]struct {
				RunsOn any `yaml:"runs-on"`
				Steps  []struct {
					Name string `yaml:"name"`
					Run  string `yaml:"run"`
					Uses string `yaml:"uses"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal(data, &wf); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if wf.On == nil || len(wf.Jobs) == 0 {
			t.Errorf("%s: no triggers or no jobs", name)
		}
		for job, j := range wf.Jobs {
			if j.RunsOn == nil || len(j.Steps) == 0 {
				t.Errorf("%s: job %s has no runs-on or no steps", name, job)
			}
			for i, s := range j.Steps {
				if (s.Run == "") == (s.Uses == "") {
					t.Errorf("%s: job %s step %d (%s) needs exactly one of run and uses", name, job, i+1, s.Name)
				}
				for _, m := range makeCall.FindAllStringSubmatch(s.Run, -1) {
					if !targets[m[1]] {
						t.Errorf("%s: job %s runs `make %s`, which the Makefile lacks", name, job, m[1])
					}
				}
				for _, m := range agenttlsCall.FindAllStringSubmatch(s.Run, -1) {
					if !slices.Contains(subcommands, m[1]) {
						t.Errorf("%s: job %s runs `agenttls %s`, which is no subcommand (%v)", name, job, m[1], subcommands)
					}
				}
			}
		}
		for _, v := range envName.FindAllString(string(data), -1) {
			if !strings.Contains(code, `"`+v+`"`) {
				t.Errorf("%s sets %s, which no code reads", name, v)
			}
		}
	}
}

// goSources is the text of every non-test Go file of the module.
func goSources(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "artifacts") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
