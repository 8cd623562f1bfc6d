package emulator

import (
	"fmt"
	"strings"
)

// PreambleStyle is how the served install script assigns STRICT_VERIFY; it changed across
// Rancher releases (reference/contract.md, section 2.1).
type PreambleStyle string

const (
	// StyleExport: `export STRICT_VERIFY='true'` (Rancher v2.13.7+, v2.14.3+, v2.15.0+).
	StyleExport PreambleStyle = "export"
	// StyleQuoted: `STRICT_VERIFY="true"`, not exported (v2.8.6 to v2.13.6, v2.14.0 to v2.14.2).
	StyleQuoted PreambleStyle = "quoted"
	// StyleNone: no STRICT_VERIFY line at all (v2.8.0 to v2.8.5).
	StyleNone PreambleStyle = "none"
)

// ParsePreambleStyle checks s names a known style.
func ParsePreambleStyle(s string) (PreambleStyle, error) {
	switch p := PreambleStyle(s); p {
	case StyleExport, StyleQuoted, StyleNone:
		return p, nil
	}
	return "", fmt.Errorf("unknown preamble style %q: use %q (Rancher 2.13.7+), %q (2.8.6 to 2.13.6) or %q (2.8.0 to 2.8.5)",
		s, StyleExport, StyleQuoted, StyleNone)
}

// Preamble is what Rancher puts in front of the raw install script on the public
// /system-agent-install.sh route (no token, no cluster variables).
type Preamble struct {
	Style PreambleStyle
	// Strict is agent-tls-mode == strict.
	Strict bool
	// ServerURL is the server-url setting; when empty the binary URL is built from Host and
	// no CATTLE_SERVER line is written.
	ServerURL string
	// Host is the request's Host header.
	Host string
	// Checksum is CATTLE_CA_CHECKSUM; no line when empty.
	Checksum string
}

// Render returns the served script: "#!/usr/bin/env sh", the variable lines, an empty line and
// script followed by "\n". The line layout follows Rancher's template, including the empty
// lines left where an optional part (server, checksum, token) is absent.
func (p Preamble) Render(script []byte) []byte {
	var env string
	if p.Style != StyleNone {
		v := "false"
		if p.Strict {
			v = "true"
		}
		if p.Style == StyleExport {
			env = "export STRICT_VERIFY=" + shellSingleQuote(v) + "\n"
		} else {
			env = `STRICT_VERIFY="` + v + `"` + "\n"
		}
	}
	var binaryURL, server, checksum string
	switch {
	case p.ServerURL != "":
		binaryURL = `CATTLE_AGENT_BINARY_BASE_URL="` + p.ServerURL + `/assets"`
		server = "CATTLE_SERVER=" + p.ServerURL
	case p.Host != "":
		binaryURL = `CATTLE_AGENT_BINARY_BASE_URL="https://` + p.Host + `/assets"`
	}
	if p.Checksum != "" {
		checksum = `CATTLE_CA_CHECKSUM="` + p.Checksum + `"`
	}
	const token = "" // the public route never carries a token
	var b strings.Builder
	b.WriteString("#!/usr/bin/env sh\n")
	for _, part := range []string{env, binaryURL, server, checksum, token} {
		b.WriteString(part)
		b.WriteString("\n")
	}
	b.WriteString("\n")
	b.Write(script)
	b.WriteString("\n")
	return []byte(b.String())
}

// shellSingleQuote quotes v for sh: inside single quotes nothing is special except the quote
// itself, which is closed, escaped and reopened.
func shellSingleQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
