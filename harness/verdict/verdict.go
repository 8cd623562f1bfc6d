// Package verdict is the one taxonomy of outcomes shared by the oracle, the classifier and the
// reports. A verdict names what the node ended with; the evidence says which observation proved it.
package verdict

import "fmt"

// Verdict is the outcome of one registration attempt.
type Verdict string

const (
	// Registered: the CA gate was passed and connection info was fetched from the real server
	// (emulator or Rancher recorded the registration, not through an attacker).
	Registered Verdict = "registered"
	// FatalStrictNoChecksum: the strict abort, before any request to Rancher.
	FatalStrictNoChecksum Verdict = "fatal-strict-no-checksum"
	// RejectedChecksumMismatch: the /cacerts bytes the node fetched hash to another value.
	RejectedChecksumMismatch Verdict = "rejected-checksum-mismatch"
	// RejectedNoCACerts: a checksum was given but /cacerts served no CA (0 bytes).
	RejectedNoCACerts Verdict = "rejected-no-cacerts"
	// RejectedNotX509: /cacerts served bytes that are not a PEM certificate.
	RejectedNotX509 Verdict = "rejected-not-x509"
	// RejectedUntrusted: the server could not be verified on the connection check (TLS failure).
	RejectedUntrusted Verdict = "rejected-untrusted"
	// Exposed: registration completed through an attacker's proxy. Expected under some settings
	// (system-store with a trusted interception CA, CATTLE_AGENT_STRICT_VERIFY=false) but always
	// shown loudly.
	Exposed Verdict = "exposed"
	// Unexpected: the script ended in a way no verdict above describes.
	Unexpected Verdict = "unexpected"
	// Timeout: no verdict was proven within the cell's time bound.
	Timeout Verdict = "timeout"
)

// All lists every verdict in report order.
var All = []Verdict{Registered, Exposed, FatalStrictNoChecksum, RejectedChecksumMismatch,
	RejectedNoCACerts, RejectedNotX509, RejectedUntrusted, Unexpected, Timeout}

// Parse returns the verdict named s, or an error listing the known ones.
func Parse(s string) (Verdict, error) {
	for _, v := range All {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown verdict %q: use one of %v", s, All)
}

// IsFailureClass reports whether v can never be an expected outcome (harness-level failures).
func (v Verdict) IsFailureClass() bool { return v == Unexpected || v == Timeout }

// Evidence is the observation that proves a verdict: a transcript line, a server-side record,
// or both.
type Evidence struct {
	// Line is the transcript line (or server record) that decided the verdict.
	Line string `json:"line"`
	// Source says where Line came from: "stdout", "stderr", "exit", "server", "proxy", "timer".
	Source string `json:"source"`
}

func (e Evidence) String() string {
	if e.Line == "" {
		return e.Source
	}
	return e.Source + ": " + e.Line
}
