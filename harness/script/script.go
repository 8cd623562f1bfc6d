// Package script obtains the real system-agent install script at run time and describes it.
//
// The script is never committed to this repository. It comes from the Go module cache
// (FromModule), a local file (FromFile), any URL (FromURL) or a running Rancher (FromRancher).
// Whatever the source, the result is the raw script: a Rancher preamble, if present, is cut off
// and kept aside. DetectProfile reads the script's structure to decide which era of CA handling
// it implements, so that the oracle never has to guess from a version string.
package script

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/agenttls/agenttls/harness/bounded"
)

// Script is one install script, ready to be served to a node.
type Script struct {
	// Version is the system-agent version the script belongs to, when the source names one
	// (FromModule); empty otherwise.
	Version string
	// Source says where the script came from, in a form a reader can follow (a module path and
	// version with its cache directory, a file path, a URL).
	Source string
	// Body is the raw script, starting with its own "#!/bin/sh" line.
	Body []byte
	// Preamble is what a Rancher put in front of the raw script when the source served it that
	// way (the /system-agent-install.sh route); empty for raw sources.
	Preamble []byte
	// SHA256 is the hex sha256 of Body.
	SHA256 string
	// Profile is the CA-handling era read from Body's structure.
	Profile Profile
}

// maxBody bounds what any source may hand us; real scripts are about 40 KiB.
const maxBody = 4 << 20

// rawShebang is the first line of every raw install script (checked on v0.3.4 through v0.15.0).
const rawShebang = "#!/bin/sh"

// FromFile reads a script from a local file. A file saved from Rancher's
// /system-agent-install.sh route is accepted too: its preamble is cut off and kept in Preamble.
func FromFile(path string) (*Script, error) {
	b, err := bounded.ReadFile(path, maxBody, "install script")
	if err != nil {
		return nil, err
	}
	return newScript("", "file "+path, b)
}

// Save writes the script as it was obtained (preamble, if any, then the raw script) to path,
// so that another process can run exactly these bytes (FromSaved).
func (s *Script) Save(path string) error {
	b := append(append([]byte(nil), s.Preamble...), s.Body...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("save the install script: %w", err)
	}
	return nil
}

// FromSaved reads a script that Save wrote, gives it back the version and source it had, and
// checks that it is still the script whose sha256 is want.
func FromSaved(path, version, source, want string) (*Script, error) {
	s, err := FromFile(path)
	if err != nil {
		return nil, err
	}
	if want != "" && s.SHA256 != want {
		return nil, fmt.Errorf("the saved install script %s changed: sha256 %s, the run resolved %s", path, s.SHA256, want)
	}
	s.Version, s.Source = version, source
	return s, nil
}

// newScript validates body, splits off a Rancher preamble, hashes and profiles the raw script.
func newScript(version, source string, body []byte) (*Script, error) {
	preamble, raw, err := splitPreamble(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if err := checkInstallScript(raw); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	sum := sha256.Sum256(raw)
	profile := DetectProfile(raw)
	if slices.Contains(profile.Warnings, noDoInstall) {
		// The markers are there, but no entry function: the oracle would judge a script it
		// cannot read.
		return nil, fmt.Errorf("%s: defines no do_install function, the entry point of every system-agent install script: not one the oracle can read", source)
	}
	return &Script{
		Version:  version,
		Source:   source,
		Body:     raw,
		Preamble: preamble,
		SHA256:   hex.EncodeToString(sum[:]),
		Profile:  profile,
	}, nil
}

// preambleLine matches what Rancher writes before the raw script: its own shebang, blank lines,
// and NAME=value or export NAME=value assignments.
var preambleLine = regexp.MustCompile(`^(#!.*|\s*|(export\s+)?[A-Za-z_][A-Za-z0-9_]*=.*)$`)

// splitPreamble returns (preamble, raw script). A body that already starts with the raw
// shebang has no preamble. Otherwise everything before the first line that is exactly the raw
// shebang is the preamble, provided it only holds preamble-shaped lines.
func splitPreamble(body []byte) ([]byte, []byte, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, errors.New("the install script is empty")
	}
	if firstLine(body) == rawShebang {
		return nil, body, nil
	}
	off := 0
	for off < len(body) {
		end := bytes.IndexByte(body[off:], '\n')
		var line []byte
		next := len(body)
		if end >= 0 {
			line, next = body[off:off+end], off+end+1
		} else {
			line = body[off:]
		}
		l := strings.TrimRight(string(line), "\r")
		if l == rawShebang {
			if off == 0 {
				return nil, body, nil
			}
			return body[:off], body[off:], nil
		}
		if !preambleLine.MatchString(l) {
			break
		}
		off = next
	}
	return nil, body, nil // no preamble recognised; checkInstallScript decides
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return strings.TrimRight(string(b), "\r")
}

// checkInstallScript refuses bodies that are not a system-agent install script: HTML (Rancher
// answers a missing asset with its dashboard page and status 200), other scripts, binaries.
func checkInstallScript(b []byte) error {
	head := strings.ToLower(string(bytes.TrimSpace(b[:min(len(b), 512)])))
	if strings.HasPrefix(head, "<!doctype html") || strings.HasPrefix(head, "<html") || strings.Contains(head, "<head>") {
		return errors.New("got an HTML page, not the install script (Rancher answers a missing asset with its dashboard page and status 200); check the URL or use another source")
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return errors.New("got binary data, not the install script; check the URL or path")
	}
	if firstLine(b) != rawShebang {
		return fmt.Errorf("does not start with %q (first line %q): not a system-agent install script", rawShebang, truncate(firstLine(b), 60))
	}
	// Markers every install.sh since v0.1.0 carries: the entry function, the CA checksum
	// variable and the agent binary name.
	for _, m := range []string{"do_install", "CATTLE_CA_CHECKSUM", "rancher-system-agent"} {
		if !bytes.Contains(b, []byte(m)) {
			return fmt.Errorf("has no %q: not a system-agent install script", m)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Load obtains the script from the one source given: a file, a URL, or else the system-agent
// version from the Go module cache. A URL whose credentials were redacted (RedactURL) is
// refused: it cannot be fetched as it is.
func Load(ctx context.Context, file, url, version string) (*Script, error) {
	switch {
	case file != "":
		return FromFile(file)
	case IsRedacted(url):
		return nil, fmt.Errorf("the script URL %s was recorded without its credentials: give -script-url again", url)
	case url != "":
		return FromURL(ctx, url, nil)
	}
	return FromModule(ctx, version)
}
