// Package oracle says, for one matrix cell, what the real install script must end with, and why.
//
// Expect is a pure function of the cell, the script's profile (its CA-handling era, read from
// the script's structure) and what the Rancher under test serves. It walks the script's
// decision flow (reference/contract.md, section 1.2) one step at a time and records each step
// in the Reason, so a report shows the derivation next to the verdict.
//
// The model of the test network it assumes:
//   - The node's system store trusts the "public" root (used when ca=public) and, on
//     mitm-trusted only, the attacker root. It never trusts the private root.
//   - On direct and tamper* paths the node sees Rancher's own certificate chain; on mitm* paths
//     a chain forged by the attacker root.
//   - /cacerts fetched with --insecure returns: Rancher's bytes on direct (the private root, or
//     intermediate+root for private-bundle, or 0 bytes for public); the attacker root on mitm*;
//     another valid CA on tamper (not the stale CA whose checksum "wrong" is); bytes that are
//     not a certificate on tamper-garbage; 0 bytes on tamper-empty.
//   - Every other request is relayed unchanged to Rancher, and the script with its preamble
//     reaches the node unchanged on every path.
package oracle

import (
	"fmt"
	"strings"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

// PreambleStyle is how the served script's preamble sets STRICT_VERIFY.
type PreambleStyle string

const (
	// PreambleExport: `export STRICT_VERIFY='true'` (Rancher v2.13.7+, v2.14.3+, v2.15.0+).
	PreambleExport PreambleStyle = "export"
	// PreambleQuoted: `STRICT_VERIFY="true"`, not exported (v2.8.6 to v2.13.6, v2.14.0-2.14.2).
	// The script reads it in-process, so it behaves exactly like PreambleExport.
	PreambleQuoted PreambleStyle = "quoted"
	// PreambleNone: no STRICT_VERIFY line (v2.8.0-2.8.5), so a STRICT_VERIFY given to sh is
	// not overwritten and agent-tls-mode does not reach the script.
	PreambleNone PreambleStyle = "none"
)

// Server describes what the Rancher under test serves to a registering node.
type Server struct {
	// StrictVerify is the preamble's STRICT_VERIFY style. The zero value means PreambleExport
	// (what current Rancher serves).
	StrictVerify PreambleStyle `json:"strictVerify"`
}

// Expectation is the oracle's answer for one cell.
type Expectation struct {
	Verdict verdict.Verdict `json:"verdict"`
	// Reason is the derivation, step by step, on one line ("; " between steps).
	Reason string `json:"reason"`
	// Steps are the same steps, one per element.
	Steps []string `json:"steps"`
}

// checksumKind is what CATTLE_CA_CHECKSUM holds after parse_args.
type checksumKind int

const (
	csNone    checksumKind = iota // empty: no checksum
	csCorrect                     // sha256 of the bytes Rancher serves at /cacerts
	csStale                       // sha256 of a CA Rancher does not serve
)

// root names a certificate authority in the test network.
type root string

const (
	rootPrivate  root = "private root"
	rootPublic   root = "public root"
	rootAttacker root = "attacker root"
	rootTamper   root = "another valid CA"
)

// cacertsBody is what a /cacerts fetch through a path returns.
type cacertsBody struct {
	desc    string
	empty   bool
	garbage bool
	ca      root // the CA the PEM holds, when it is one
	// served: these are exactly the bytes Rancher serves, so a csCorrect checksum matches.
	served bool
}

// Expect derives the verdict the real script must reach for cell c.
func Expect(c matrix.Cell, p script.Profile, s Server) Expectation {
	var steps []string
	step := func(format string, a ...any) { steps = append(steps, fmt.Sprintf(format, a...)) }
	done := func(v verdict.Verdict) Expectation {
		return Expectation{Verdict: v, Reason: strings.Join(steps, "; "), Steps: steps}
	}
	if err := check(c, s); err != nil {
		step("cannot derive: %v", err)
		return done(verdict.Unexpected)
	}
	style := s.StrictVerify
	if style == "" {
		style = PreambleExport
	}

	// Step 1: effective strict value (setup_env), only read by strict-era scripts.
	readsStrict := p.StrictAbort || p.CANecessitySkippedWhenStrict
	strict := false
	if readsStrict {
		var value, why string
		strict, value, why = effectiveStrict(c, style)
		step("strict=%s%s (%s)", value, onOff(strict, value), why)
	} else {
		step("script has no strict step (%s)", p.Name)
	}

	// Step 2: effective checksum (preamble, then the --ca-checksum flag in parse_args).
	cs, why := effectiveChecksum(c)
	step("%s", why)

	// Step 3: the strict abort, before any request.
	if p.StrictAbort {
		switch {
		case strict && cs == csNone:
			step("strict with no checksum -> strict fatal before any request")
			return done(verdict.FatalStrictNoChecksum)
		case strict:
			step("strict gate passed")
		default:
			step("strict gate not armed")
		}
	}

	// Step 4: the CA-necessity check (validate_ca_required) may clear the checksum.
	if cs != csNone {
		switch {
		case !p.CANecessityCheck:
			step("no CA-necessity check in this script")
		case p.StrictGuardBroken:
			step("CA-necessity check never runs (its guard is malformed)")
		case p.CANecessitySkippedWhenStrict && strict:
			step("CA-necessity check skipped (strict)")
		default:
			issuer := presentedIssuer(c)
			if systemTrusts(c, issuer) {
				step("CA-necessity: node store trusts %s cert (%s) -> CA not necessary, checksum cleared", pathWho(c.Path), issuer)
				cs = csNone
			} else {
				step("CA-necessity: node store does not trust %s cert (%s) -> CA necessary", pathWho(c.Path), issuer)
			}
		}
	}

	// Step 5: /cacerts fetched with --insecure through the path, checked, hashed, pinned.
	var pinned root
	if cs != csNone {
		body := fetchCACerts(c)
		switch {
		case body.empty:
			step("/cacerts via %s is 0 bytes -> no CA", c.Path)
			return done(verdict.RejectedNoCACerts)
		case body.garbage:
			step("/cacerts via %s is not x509", c.Path)
			return done(verdict.RejectedNotX509)
		case !(cs == csCorrect && body.served):
			step("/cacerts via %s (%s) differs from the checksum -> mismatch", c.Path, body.desc)
			return done(verdict.RejectedChecksumMismatch)
		}
		pinned = body.ca
		step("/cacerts via %s (%s) matches -> pinned", c.Path, body.desc)
	}

	// Step 6: /healthz with the pinned CA or the system store.
	issuer := presentedIssuer(c)
	if pinned != "" {
		if pinned != issuer {
			step("/healthz: %s cert (%s) fails against the pinned %s -> untrusted", pathWho(c.Path), issuer, pinned)
			return done(verdict.RejectedUntrusted)
		}
		step("/healthz: %s cert verifies with the pinned CA", pathWho(c.Path))
	} else {
		if !systemTrusts(c, issuer) {
			step("/healthz: %s cert (%s) not in the node store -> untrusted", pathWho(c.Path), issuer)
			return done(verdict.RejectedUntrusted)
		}
		step("/healthz: %s cert (%s) trusted by the node store", pathWho(c.Path), issuer)
	}

	// Step 7: assets and connection info use the same trust, through the same path.
	if c.Path.Intercepted() {
		step("connection info fetched through the %s proxy -> exposed", c.Path)
		return done(verdict.Exposed)
	}
	step("connection info fetched from Rancher -> registered")
	return done(verdict.Registered)
}

func check(c matrix.Cell, s Server) error {
	for _, a := range matrix.Axes {
		if err := matrix.CheckValue(a, c.Get(a)); err != nil {
			return fmt.Errorf("cell %s: %w", c.ID(), err)
		}
	}
	switch s.StrictVerify {
	case "", PreambleExport, PreambleQuoted, PreambleNone:
		return nil
	}
	return fmt.Errorf("unknown preamble style %q: use export, quoted or none", s.StrictVerify)
}

// effectiveStrict follows setup_env: a non-empty CATTLE_AGENT_STRICT_VERIFY that reaches sh
// wins; otherwise STRICT_VERIFY as the script sees it (the preamble's assignment overwrites one
// given to sh), else "false". Strict is lower(value) == "true".
func effectiveStrict(c matrix.Cell, style PreambleStyle) (strict bool, value, why string) {
	given := string(c.StrictVerify)
	if c.StrictVerify == matrix.StrictUnset {
		given = ""
	}
	preamble := ""
	if style != PreambleNone {
		preamble = "false"
		if c.Mode == matrix.ModeStrict {
			preamble = "true"
		}
	}
	var notes []string
	env, legacy := "", ""
	switch c.At() {
	case matrix.AtSh:
		env = given
	case matrix.AtCurl:
		if given != "" {
			notes = append(notes, "CATTLE_AGENT_STRICT_VERIFY="+given+" before curl does not reach sh")
		}
	case matrix.AtShLegacyName:
		legacy = given
	}
	switch {
	case env != "":
		value, why = env, "CATTLE_AGENT_STRICT_VERIFY given to sh"
	case preamble != "":
		value, why = preamble, "preamble, mode "+string(c.Mode)
		if legacy != "" {
			notes = append(notes, "STRICT_VERIFY="+legacy+" given to sh is overwritten by the preamble")
		}
	case legacy != "":
		value, why = legacy, "STRICT_VERIFY given to sh; the preamble sets none"
	default:
		value, why = "false", "nothing set"
		if style == PreambleNone {
			why = "the preamble sets no STRICT_VERIFY"
		}
	}
	if len(notes) > 0 {
		why += "; " + strings.Join(notes, "; ")
	}
	return strings.ToLower(value) == "true", value, why
}

// onOff spells out the outcome when the value is not literally "true" or "false".
func onOff(strict bool, value string) string {
	switch {
	case value == "true" || value == "false":
		return ""
	case strict:
		return " -> on"
	}
	return " -> off"
}

// effectiveChecksum follows the preamble (CATTLE_CA_CHECKSUM present iff Rancher has cacerts,
// i.e. the private kinds) and then parse_args (the flag, even an empty one, overrides it).
func effectiveChecksum(c matrix.Cell) (checksumKind, string) {
	switch c.Checksum {
	case matrix.ChecksumCorrect:
		if c.CA == matrix.CAPublic {
			return csCorrect, "checksum=sha256 of the empty /cacerts (flag)"
		}
		return csCorrect, "checksum=correct (flag)"
	case matrix.ChecksumWrong:
		return csStale, "checksum=stale CA's (flag)"
	case matrix.ChecksumEmpty:
		return csNone, `checksum cleared (--ca-checksum "")`
	}
	if c.CA == matrix.CAPublic {
		return csNone, "checksum=none (public CA: no flag, preamble has none)"
	}
	return csCorrect, "checksum=correct (preamble value)"
}

// presentedIssuer is the root that issued the certificate the node sees on c's path.
func presentedIssuer(c matrix.Cell) root {
	if c.Path.Intercepted() {
		return rootAttacker
	}
	if c.CA == matrix.CAPublic {
		return rootPublic
	}
	return rootPrivate
}

// systemTrusts reports whether the node's system store trusts a chain from r on c's node.
func systemTrusts(c matrix.Cell, r root) bool {
	switch r {
	case rootPublic:
		return true
	case rootAttacker:
		return c.Path == matrix.PathMITMTrusted
	}
	return false
}

func pathWho(p matrix.Path) string {
	if p.Intercepted() {
		return "the attacker-forged"
	}
	return "Rancher's"
}

// fetchCACerts is what `curl --insecure $SERVER/cacerts` returns on c's path.
func fetchCACerts(c matrix.Cell) cacertsBody {
	switch c.Path {
	case matrix.PathMITM, matrix.PathMITMTrusted:
		return cacertsBody{desc: "the attacker root", ca: rootAttacker}
	case matrix.PathTamper:
		return cacertsBody{desc: "another valid CA", ca: rootTamper}
	case matrix.PathTamperGarbage:
		return cacertsBody{desc: "not a certificate", garbage: true}
	case matrix.PathTamperEmpty:
		return cacertsBody{desc: "0 bytes", empty: true}
	}
	switch c.CA {
	case matrix.CAPublic:
		return cacertsBody{desc: "Rancher serves 0 bytes (no cacerts)", empty: true, served: true}
	case matrix.CAPrivateBundle:
		return cacertsBody{desc: "Rancher's intermediate+root", ca: rootPrivate, served: true}
	}
	return cacertsBody{desc: "Rancher's private root", ca: rootPrivate, served: true}
}
