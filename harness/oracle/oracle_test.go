package oracle

import (
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

// The three eras, as DetectProfile reports them for the real scripts (checked against the real
// scripts in harness/script's tests).
var (
	preStrict = script.Profile{Name: script.ProfilePreStrict, CANecessityCheck: true}
	broken    = script.Profile{Name: script.ProfileStrictBrokenGuard, StrictAbort: true, CANecessityCheck: true,
		CANecessitySkippedWhenStrict: true, StrictGuardBroken: true}
	strict = script.Profile{Name: script.ProfileStrict, StrictAbort: true, CANecessityCheck: true,
		CANecessitySkippedWhenStrict: true, ValidatesConnection: true}
	profiles = []script.Profile{preStrict, broken, strict}
	styles   = []PreambleStyle{PreambleExport, PreambleQuoted, PreambleNone}
)

// cell parses a cell ID, failing the test on a typo.
func cell(t *testing.T, id string) matrix.Cell {
	t.Helper()
	c, err := matrix.ParseID(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type named struct {
	name    string
	id      string
	profile script.Profile
	style   PreambleStyle
	want    verdict.Verdict
	// why is the reasoning written by hand from contract.md and field-cases.md; it is what the
	// row checks, independent of how Expect is written.
	why string
}

var (
	R  = verdict.Registered
	X  = verdict.Exposed
	F  = verdict.FatalStrictNoChecksum
	M  = verdict.RejectedChecksumMismatch
	N  = verdict.RejectedNoCACerts
	G  = verdict.RejectedNotX509
	U  = verdict.RejectedUntrusted
	ex = PreambleExport
)

var namedCells = []named{
	// B01 / the problem statement: strict default, public CA, no checksum.
	{"B01", "public/strict/cs-absent/sv-unset/direct", strict, ex, F,
		"preamble STRICT_VERIFY=true, public CA has no checksum: strict abort"},
	{"B01 on the broken-guard script", "public/strict/cs-absent/sv-unset/direct", broken, ex, F,
		"v0.3.7's strict abort itself is well formed"},
	{"B01 on a pre-strict script", "public/strict/cs-absent/sv-unset/direct", preStrict, ex, R,
		"no strict step exists: no checksum means nothing is checked, the public chain is trusted"},

	// B02 variants.
	{"B02 STRICT_VERIFY=false to sh", "public/strict/cs-absent/sv-false/direct/at-sh-legacy-name", strict, ex, F,
		"the preamble assigns STRICT_VERIFY after the caller's value: still strict"},
	{"B02 CATTLE_AGENT_STRICT_VERIFY=false to sh", "public/strict/cs-absent/sv-false/direct", strict, ex, R,
		"the non-empty CATTLE_AGENT_STRICT_VERIFY wins; no checksum; public chain trusted"},
	{"B02 TRUE is strict", "public/system-store/cs-absent/sv-TRUE/direct", strict, ex, F,
		"TRUE lower-cases to true, beating the preamble's false; no checksum"},
	{"contract: 1 is not strict", "public/strict/cs-absent/sv-1/direct", strict, ex, R,
		"1 is not \"true\", and it beats the preamble's true"},
	{"B02 legacy name without a preamble line", "public/strict/cs-absent/sv-false/direct/at-sh-legacy-name", strict, PreambleNone, R,
		"Rancher 2.8.0-2.8.5 sets no STRICT_VERIFY, so the caller's STRICT_VERIFY=false stands"},
	{"legacy name true without a preamble line", "public/system-store/cs-absent/sv-true/direct/at-sh-legacy-name", strict, PreambleNone, F,
		"nothing overwrites STRICT_VERIFY=true, and there is no checksum"},
	{"no preamble line, mode strict", "public/strict/cs-absent/sv-unset/direct", strict, PreambleNone, R,
		"the mode never reaches the script without the STRICT_VERIFY line: defaults to false"},
	{"quoted preamble acts like export", "public/strict/cs-absent/sv-unset/direct", strict, PreambleQuoted, F,
		"the script reads STRICT_VERIFY in-process; export makes no difference"},

	// B03 variants.
	{"B03 hash of the served private CA", "private/strict/cs-correct/sv-unset/direct", strict, ex, R,
		"checksum matches Rancher's bytes; pinned root verifies Rancher's chain"},
	{"B03 hash of an empty /cacerts", "public/strict/cs-correct/sv-unset/direct", strict, ex, N,
		"e3b0... is set, strict skips the CA check, /cacerts is 0 bytes"},
	{"B03 hash of an empty /cacerts, strict off", "public/system-store/cs-correct/sv-unset/direct", strict, ex, R,
		"the CA check finds the public chain trusted and clears the checksum before /cacerts is read"},
	{"B03 variable before curl", "public/strict/cs-absent/sv-false/direct/at-curl", strict, ex, F,
		"the variable only reaches curl; sh sees the preamble's true"},
	{"B03 variable after sudo", "public/strict/cs-absent/sv-false/direct", strict, ex, R,
		"reaches sh and wins"},

	// B04 / B06: another valid CA at /cacerts.
	{"B04 pre-strict, LB serves another CA", "private/system-store/cs-correct/sv-unset/tamper", preStrict, ex, M,
		"private chain is not in the node store: CA necessary; /cacerts bytes differ"},
	{"B06 strict path", "private/strict/cs-correct/sv-unset/tamper", strict, ex, M,
		"strict skips the CA check; the tampered /cacerts differs"},

	// B05: preamble checksum; flag beats preamble.
	{"B05 preamble checksum enforced", "private/strict/cs-absent/sv-unset/tamper", strict, ex, M,
		"the preamble's checksum is compared exactly like a flag's"},
	{"B05 bad checksum masked with strict off", "public/system-store/cs-wrong/sv-unset/direct", strict, ex, R,
		"the public chain is trusted, so the CA check clears the stale checksum"},
	{"B05 flag beats preamble (correct)", "private/strict/cs-correct/sv-unset/direct", strict, ex, R,
		"flag value equals Rancher's; pinned"},
	{"B05 flag beats preamble (wrong)", "private/strict/cs-wrong/sv-unset/direct", strict, ex, M,
		"the flag replaces the preamble's correct value with a stale one"},
	{"B05 flag beats preamble (empty)", "private/strict/cs-empty/sv-unset/direct", strict, ex, F,
		"--ca-checksum \"\" clears the preamble's value: strict with no checksum"},
	{"empty flag, strict off", "private/system-store/cs-empty/sv-unset/direct", strict, ex, U,
		"no checksum, so nothing is pinned; the private chain is not in the node store"},

	// B11: trimmed bundle.
	{"B11 bundle, served checksum", "private-bundle/strict/cs-correct/sv-unset/direct", strict, ex, R,
		"Rancher's checksum is of the trimmed bytes it serves"},
	{"B11 bundle, other checksum", "private-bundle/strict/cs-wrong/sv-unset/direct", strict, ex, M,
		"any other checksum fails the byte comparison"},

	// B13: v0.3.7's broken guard.
	{"B13 broken guard enforces a stale checksum", "public/system-store/cs-wrong/sv-unset/direct", broken, ex, N,
		"the CA check never runs; public Rancher serves 0 bytes at /cacerts"},
	{"B13 broken guard, tampered /cacerts", "public/system-store/cs-wrong/sv-unset/tamper", broken, ex, M,
		"the CA check never runs; another CA's bytes do not match the stale checksum"},
	{"B13 fixed script clears it", "public/system-store/cs-wrong/sv-unset/tamper", strict, ex, R,
		"the CA check trusts Rancher's public chain and clears the checksum; /cacerts is never read"},
	{"B13 broken guard resists a trusted MITM", "private/system-store/cs-absent/sv-unset/mitm-trusted", broken, ex, M,
		"with the check skipped, the preamble checksum is compared with the attacker's /cacerts"},
	{"B13 fixed script under a trusted MITM", "private/system-store/cs-absent/sv-unset/mitm-trusted", strict, ex, X,
		"the CA check trusts the attacker chain and clears the checksum: registration via the proxy"},

	// The problem statement's remedies (scenarios/remedies.yaml).
	{"remedy 1 pin private CA", "private/strict/cs-correct/sv-unset/direct", strict, ex, R, "pinned Rancher CA"},
	{"remedy 1 untrusted MITM", "private/strict/cs-correct/sv-unset/mitm", strict, ex, M,
		"strict: no CA check; attacker's /cacerts differs"},
	{"remedy 1 trusted MITM", "private/strict/cs-correct/sv-unset/mitm-trusted", strict, ex, M,
		"strict skips the CA check that would have trusted the attacker; the pin holds"},
	{"remedy 2 system-store", "public/system-store/cs-absent/sv-unset/direct", strict, ex, R,
		"no checksum, strict off, public chain trusted"},
	{"remedy 2 untrusted MITM", "public/system-store/cs-absent/sv-unset/mitm", strict, ex, U,
		"system store does not trust the attacker root"},
	{"remedy 2 trusted MITM", "public/system-store/cs-absent/sv-unset/mitm-trusted", strict, ex, X,
		"system store trusts the interception CA: the documented cost"},
	{"remedy 3 strict off", "public/strict/cs-absent/sv-false/direct", strict, ex, R, "env beats preamble"},
	{"remedy 3 untrusted MITM", "public/strict/cs-absent/sv-false/mitm", strict, ex, U,
		"nothing pinned; attacker root not in the store"},
	{"remedy 3 trusted MITM", "public/strict/cs-absent/sv-false/mitm-trusted", strict, ex, X,
		"nothing pinned; store trusts the interception CA"},
	{"remedy 3 private CA, untrusted MITM", "private/strict/cs-absent/sv-false/mitm", strict, ex, M,
		"preamble checksum stays; CA check says necessary (attacker untrusted); attacker /cacerts differs"},
	{"remedy 3 private CA, trusted MITM", "private/strict/cs-absent/sv-false/mitm-trusted", strict, ex, X,
		"strict off lets the CA check trust the attacker chain and clear the checksum"},
	{"remedy 3 private CA, direct", "private/strict/cs-absent/sv-false/direct", strict, ex, R,
		"CA necessary (private chain not in store); preamble checksum matches; pinned"},

	// /cacerts contents.
	{"tamper garbage", "private/strict/cs-correct/sv-unset/tamper-garbage", strict, ex, G, "not x509"},
	{"tamper empty", "private/strict/cs-correct/sv-unset/tamper-empty", strict, ex, N, "0 bytes with a checksum set"},
	{"tamper never consulted without a checksum", "public/system-store/cs-absent/sv-unset/tamper-garbage", strict, ex, R,
		"no checksum: /cacerts is never fetched; Rancher's public chain trusted"},
	{"public, stale checksum, strict", "public/strict/cs-wrong/sv-unset/direct", strict, ex, N,
		"strict skips the CA check; Rancher serves 0 bytes"},
	{"public, stale checksum, untrusted MITM", "public/system-store/cs-wrong/sv-unset/mitm", strict, ex, M,
		"attacker chain untrusted: CA necessary; the attacker's /cacerts differs"},

	// Pre-strict specifics.
	{"pre-strict, private, trusted MITM", "private/strict/cs-correct/sv-true/mitm-trusted", preStrict, ex, X,
		"no strict step: the CA check trusts the attacker and clears even a correct checksum"},
	{"pre-strict ignores CATTLE_AGENT_STRICT_VERIFY", "public/strict/cs-empty/sv-TRUE/direct", preStrict, ex, R,
		"the variable is not read; no checksum; public chain trusted"},
	{"pre-strict, private, direct", "private/strict/cs-absent/sv-unset/direct", preStrict, ex, R,
		"CA necessary; preamble checksum matches; pinned"},
	{"pre-strict, private, no checksum", "private/system-store/cs-empty/sv-unset/direct", preStrict, ex, U,
		"nothing pinned; private chain not in the store"},
}

func TestNamedCells(t *testing.T) {
	for _, n := range namedCells {
		t.Run(n.name, func(t *testing.T) {
			got := Expect(cell(t, n.id), n.profile, Server{StrictVerify: n.style})
			if got.Verdict != n.want {
				t.Errorf("%s [%s, preamble %s]: got %s, want %s (%s)\nreason: %s", n.id, n.profile.Name, n.style, got.Verdict, n.want, n.why, got.Reason)
			}
		})
	}
	t.Logf("%d named cells", len(namedCells))
}

func TestReasonReadsAsADerivation(t *testing.T) {
	got := Expect(cell(t, "private/strict/cs-absent/sv-unset/tamper"), strict, Server{})
	for _, want := range []string{"strict=true (preamble, mode strict)", "checksum=correct (preamble value)", "strict gate passed", "via tamper", "mismatch"} {
		if !strings.Contains(got.Reason, want) {
			t.Errorf("reason %q lacks %q", got.Reason, want)
		}
	}
	got = Expect(cell(t, "public/strict/cs-absent/sv-false/direct/at-curl"), strict, Server{})
	if !strings.Contains(got.Reason, "before curl does not reach sh") {
		t.Errorf("reason %q does not say why the variable was ignored", got.Reason)
	}
	got = Expect(cell(t, "public/strict/cs-absent/sv-TRUE/direct"), strict, Server{})
	if !strings.Contains(got.Reason, "strict=TRUE -> on") {
		t.Errorf("reason %q does not spell out that TRUE is strict", got.Reason)
	}
	got = Expect(cell(t, "public/strict/cs-absent/sv-false/direct/at-sh-legacy-name"), strict, Server{})
	if !strings.Contains(got.Reason, "overwritten by the preamble") {
		t.Errorf("reason %q does not say the legacy name was overwritten", got.Reason)
	}
}

func TestInvalidInputs(t *testing.T) {
	c := cell(t, "private/strict/cs-correct/sv-unset/direct")
	got := Expect(c, strict, Server{StrictVerify: "yaml"})
	if got.Verdict != verdict.Unexpected || !strings.Contains(got.Reason, "preamble style") {
		t.Errorf("bad style: %+v", got)
	}
	c.Path = "carrier-pigeon"
	got = Expect(c, strict, Server{})
	if got.Verdict != verdict.Unexpected || !strings.Contains(got.Reason, "carrier-pigeon") {
		t.Errorf("bad cell: %+v", got)
	}
}
