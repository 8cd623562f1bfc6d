package classify

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

const transcriptDir = "../../fixtures/transcripts"

// expectedFromName reads the verdict a transcript file name starts with: "<verdict>__rest.txt"
// (or "<verdict>.txt"). The longest verdict name that fits wins.
func expectedFromName(name string) (verdict.Verdict, bool) {
	base := strings.TrimSuffix(name, filepath.Ext(name))
	var best verdict.Verdict
	for _, v := range verdict.All {
		s := string(v)
		if (base == s || strings.HasPrefix(base, s+"__")) && len(s) > len(best) {
			best = v
		}
	}
	return best, best != ""
}

// profileFor takes the profile from the "profile" header, or reads it from the real script
// named by the "script" header (fetched through the go command).
func profileFor(t *testing.T, tr Transcript, cache map[string]script.Profile) script.Profile {
	t.Helper()
	if s, ok := tr.Header["profile"]; ok {
		p, err := script.ParseProfile(s)
		if err != nil {
			t.Fatalf("profile header: %v", err)
		}
		return p
	}
	v, ok := tr.Header["script"]
	if !ok {
		t.Fatalf(`no "# profile:" or "# script: <system-agent version>" header`)
	}
	v, _, _ = strings.Cut(v, " ")
	if p, ok := cache[v]; ok {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := script.FromModule(ctx, v)
	if err != nil {
		t.Fatalf("script header: %v", err)
	}
	cache[v] = s.Profile
	return s.Profile
}

// TestTranscriptFiles classifies every transcript in fixtures/transcripts against the verdict
// its file name or its "# expect:" header names, and, where an "# evidence:" header is given,
// checks the evidence line too. New files are picked up automatically.
func TestTranscriptFiles(t *testing.T) {
	entries, err := os.ReadDir(transcriptDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".txt") {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatalf("no transcripts in %s", transcriptDir)
	}
	cache := map[string]script.Profile{}
	seen := map[verdict.Verdict]int{}
	for _, name := range files {
		t.Run(strings.TrimSuffix(name, ".txt"), func(t *testing.T) {
			f, err := os.Open(filepath.Join(transcriptDir, name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tr, err := ParseTranscript(f)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want, fromName := expectedFromName(name)
			if h, ok := tr.Header["expect"]; ok {
				hv, err := verdict.Parse(h)
				if err != nil {
					t.Fatalf("expect header: %v", err)
				}
				if fromName && hv != want {
					t.Fatalf("file name says %s, expect header says %s", want, hv)
				}
				want, fromName = hv, true
			}
			if !fromName {
				t.Fatalf(`name the expected verdict: "<verdict>__<what>.txt" or a "# expect: <verdict>" header`)
			}
			sv, err := tr.ServerView()
			if err != nil {
				t.Fatal(err)
			}
			obs := tr.Replay(New(profileFor(t, tr, cache)), sv)
			if obs.Verdict != want {
				t.Errorf("observed %s, want %s\nevidence: %s\ndetail: %s", obs.Verdict, want, obs.Evidence, obs.Detail)
			}
			if obs.Evidence.Line == "" || obs.Evidence.Source == "" {
				t.Errorf("no evidence: %+v", obs)
			}
			if h, ok := tr.Header["evidence"]; ok && obs.Evidence.String() != h {
				t.Errorf("evidence %q, the evidence header says %q", obs.Evidence, h)
			}
			seen[obs.Verdict]++
			t.Logf("%s <- %s (%s)", obs.Verdict, obs.Evidence, obs.Detail)
		})
	}
	t.Logf("%d transcripts; verdicts: %v", len(files), seen)
}

func TestExpectedFromName(t *testing.T) {
	for name, want := range map[string]verdict.Verdict{
		"registered__x.txt":                 verdict.Registered,
		"rejected-untrusted__mitm-real.txt": verdict.RejectedUntrusted,
		"rejected-not-x509.txt":             verdict.RejectedNotX509,
		"fatal-strict-no-checksum__B01.txt": verdict.FatalStrictNoChecksum,
	} {
		if got, ok := expectedFromName(name); !ok || got != want {
			t.Errorf("%s: %s %v", name, got, ok)
		}
	}
	for _, name := range []string{"registeredx.txt", "rejected__x.txt", "notes.txt"} {
		if got, ok := expectedFromName(name); ok {
			t.Errorf("%s: got %s", name, got)
		}
	}
}
