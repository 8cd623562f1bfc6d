// Package matrix defines the conformance matrix: its axes, the cells they span, the stable cell
// IDs and labels, and the declarative scenario files in scenarios/ that select cells.
package matrix

import (
	"fmt"
	"strings"
)

// Axis names one dimension of the matrix, as written in scenario files and labels.
type Axis string

const (
	AxisCA             Axis = "ca"
	AxisMode           Axis = "mode"
	AxisChecksum       Axis = "checksum"
	AxisStrictVerify   Axis = "strict-verify"
	AxisPath           Axis = "path"
	AxisStrictVerifyAt Axis = "strict-verify-at"
)

// CAKind is how Rancher's TLS is set up.
type CAKind string

const (
	// CAPrivate: Rancher serves a certificate from the private root (via an intermediate) and
	// has the private root as cacerts; its served script embeds the checksum.
	CAPrivate CAKind = "private"
	// CAPublic: Rancher runs --no-cacerts with a certificate from the "public" root, which the
	// node's system store trusts (standing in for Let's Encrypt). /cacerts is empty.
	CAPublic CAKind = "public"
	// CAPrivateBundle: like private, but the cacerts file given to Rancher is intermediate+root
	// with a leading blank line and two trailing newlines (field case B11). Rancher trims it.
	CAPrivateBundle CAKind = "private-bundle"
)

// Mode is Rancher's agent-tls-mode setting.
type Mode string

const (
	ModeStrict      Mode = "strict"
	ModeSystemStore Mode = "system-store"
)

// Checksum is what the command passes as --ca-checksum.
type Checksum string

const (
	// ChecksumAbsent: no --ca-checksum flag; the served script's preamble value (if any) stands.
	ChecksumAbsent Checksum = "absent"
	// ChecksumCorrect: sha256 of the exact bytes Rancher serves at /cacerts (what Rancher's
	// nodeCommand carries, and what a user gets by hashing a downloaded /cacerts).
	ChecksumCorrect Checksum = "correct"
	// ChecksumWrong: sha256 of a stale CA that Rancher does not serve.
	ChecksumWrong Checksum = "wrong"
	// ChecksumEmpty: --ca-checksum "" given explicitly, which clears the preamble's value.
	ChecksumEmpty Checksum = "empty"
)

// StrictVerify is the CATTLE_AGENT_STRICT_VERIFY value handed to sh ("unset" = not given).
type StrictVerify string

const (
	StrictUnset StrictVerify = "unset"
	StrictTrue  StrictVerify = "true"
	StrictFalse StrictVerify = "false"
	// StrictTrueUpper: "TRUE", which the script lower-cases to strict (field case B02).
	StrictTrueUpper StrictVerify = "TRUE"
	// StrictOne: "1", which is not "true" and so is not strict.
	StrictOne StrictVerify = "1"
)

// Path is the network path between node and Rancher. The Rancher hostname is the same on every
// path; the node resolves it to the proxy on intercepted paths.
type Path string

const (
	PathDirect Path = "direct"
	// PathMITM: a proxy with a certificate forged by an attacker root the node does not trust,
	// serving the attacker's own /cacerts.
	PathMITM Path = "mitm"
	// PathMITMTrusted: the same proxy, with the attacker root in the node's system store
	// (a corporate interception CA).
	PathMITMTrusted Path = "mitm-trusted"
	// PathTamper: a proxy holding Rancher's real certificate that replaces /cacerts with another
	// valid CA certificate (a misrouted listener or load balancer: field cases B04, B06).
	PathTamper Path = "tamper"
	// PathTamperGarbage: as tamper, but /cacerts becomes bytes that are not a certificate.
	PathTamperGarbage Path = "tamper-garbage"
	// PathTamperEmpty: as tamper, but /cacerts becomes 0 bytes.
	PathTamperEmpty Path = "tamper-empty"
)

// Intercepted reports whether the path runs through an attacker-controlled proxy whose
// certificate is not Rancher's.
func (p Path) Intercepted() bool { return p == PathMITM || p == PathMITMTrusted }

// Tampered reports whether the path changes /cacerts while presenting Rancher's certificate.
func (p Path) Tampered() bool { return strings.HasPrefix(string(p), "tamper") }

// StrictVerifyAt is where the strict-verify variable is placed in the command line.
type StrictVerifyAt string

const (
	// AtSh: `curl ... | sudo CATTLE_AGENT_STRICT_VERIFY=v sh -s - ...` (reaches the script).
	AtSh StrictVerifyAt = "sh"
	// AtCurl: `CATTLE_AGENT_STRICT_VERIFY=v curl ... | sudo sh -s - ...` (reaches only curl).
	AtCurl StrictVerifyAt = "curl"
	// AtShLegacyName: `sudo STRICT_VERIFY=v sh -s - ...`, which the preamble overwrites (B02).
	AtShLegacyName StrictVerifyAt = "sh-legacy-name"
)

// Values lists the allowed values of each axis, in matrix order. The first value of
// strict-verify-at is its default and is left out of cell IDs.
var Values = map[Axis][]string{
	AxisCA:             {string(CAPrivate), string(CAPublic), string(CAPrivateBundle)},
	AxisMode:           {string(ModeStrict), string(ModeSystemStore)},
	AxisChecksum:       {string(ChecksumAbsent), string(ChecksumCorrect), string(ChecksumWrong), string(ChecksumEmpty)},
	AxisStrictVerify:   {string(StrictUnset), string(StrictTrue), string(StrictFalse), string(StrictTrueUpper), string(StrictOne)},
	AxisPath:           {string(PathDirect), string(PathMITM), string(PathMITMTrusted), string(PathTamper), string(PathTamperGarbage), string(PathTamperEmpty)},
	AxisStrictVerifyAt: {string(AtSh), string(AtCurl), string(AtShLegacyName)},
}

// Axes lists the axes in cell-ID order.
var Axes = []Axis{AxisCA, AxisMode, AxisChecksum, AxisStrictVerify, AxisPath, AxisStrictVerifyAt}

// Required lists the axes every cell must set; the others have defaults.
var Required = []Axis{AxisCA, AxisMode, AxisChecksum, AxisStrictVerify, AxisPath}

// CheckValue returns an error naming the allowed values if v is not a value of axis a.
func CheckValue(a Axis, v string) error {
	allowed, ok := Values[a]
	if !ok {
		return fmt.Errorf("unknown axis %q: use one of %s", a, axisList())
	}
	for _, x := range allowed {
		if x == v {
			return nil
		}
	}
	return fmt.Errorf("unknown %s value %q: use one of %s", a, v, strings.Join(allowed, ", "))
}

func axisList() string {
	s := make([]string, len(Axes))
	for i, a := range Axes {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}
