package oracle

import (
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

// allCells is the full product of every value of every axis in matrix.Values, built here from
// the axis table itself so that a new axis value is covered the day it is added.
func allCells(t *testing.T) []matrix.Cell {
	t.Helper()
	ids := []string{""}
	for _, a := range matrix.Axes {
		var next []string
		for _, prefix := range ids {
			for _, v := range matrix.Values[a] {
				part := v
				switch a {
				case matrix.AxisChecksum:
					part = "cs-" + v
				case matrix.AxisStrictVerify:
					part = "sv-" + v
				case matrix.AxisStrictVerifyAt:
					if v == matrix.Values[a][0] {
						next = append(next, prefix)
						continue
					}
					part = "at-" + v
				}
				if prefix == "" {
					next = append(next, part)
				} else {
					next = append(next, prefix+"/"+part)
				}
			}
		}
		ids = next
	}
	cells := make([]matrix.Cell, 0, len(ids))
	for _, id := range ids {
		cells = append(cells, cell(t, id))
	}
	want := 1
	for _, a := range matrix.Axes {
		want *= len(matrix.Values[a])
	}
	if len(cells) != want {
		t.Fatalf("built %d cells, the product of the axes is %d", len(cells), want)
	}
	return cells
}

// strictByConstruction is what a reader of the command line concludes, written as a table of
// the placements rather than as the script's algorithm: which value the script ends up with,
// and whether that value is one of the spellings of "true" among the axis values.
func strictByConstruction(c matrix.Cell, style PreambleStyle) bool {
	var value matrix.StrictVerify
	switch {
	case c.StrictVerify != matrix.StrictUnset && c.At() == matrix.AtSh:
		value = c.StrictVerify // reaches sh under the name that beats the preamble
	case c.StrictVerify != matrix.StrictUnset && c.At() == matrix.AtShLegacyName && style == PreambleNone:
		value = c.StrictVerify // nothing overwrites it
	case style != PreambleNone && c.Mode == matrix.ModeStrict:
		value = matrix.StrictTrue
	default:
		value = matrix.StrictFalse
	}
	return value == matrix.StrictTrue || value == matrix.StrictTrueUpper
}

// noChecksumByConstruction: the command clears it, or nothing ever set it.
func noChecksumByConstruction(c matrix.Cell) bool {
	return c.Checksum == matrix.ChecksumEmpty || (c.Checksum == matrix.ChecksumAbsent && c.CA == matrix.CAPublic)
}

type evaluated struct {
	c     matrix.Cell
	p     script.Profile
	style PreambleStyle
	e     Expectation
}

func evaluateAll(t *testing.T) []evaluated {
	t.Helper()
	var out []evaluated
	for _, p := range profiles {
		for _, st := range styles {
			for _, c := range allCells(t) {
				out = append(out, evaluated{c, p, st, Expect(c, p, Server{StrictVerify: st})})
			}
		}
	}
	return out
}

func with(c matrix.Cell, f func(*matrix.Cell)) matrix.Cell { f(&c); return c }

func isRejected(v verdict.Verdict) bool { return strings.HasPrefix(string(v), "rejected-") }

func TestPropertiesOverAllCells(t *testing.T) {
	all := evaluateAll(t)
	perProfile := len(all) / len(profiles) / len(styles)
	t.Logf("evaluated %d cells x %d profiles x %d preamble styles = %d expectations", perProfile, len(profiles), len(styles), len(all))

	count := map[verdict.Verdict]int{}
	for _, x := range all {
		c, p, st, e := x.c, x.p, x.style, x.e
		srv := Server{StrictVerify: st}
		at := func(what string) string {
			return what + ": " + c.ID() + " [" + p.Name + ", " + string(st) + "]: " + string(e.Verdict) + " (" + e.Reason + ")"
		}
		count[e.Verdict]++

		// Every answer is a real verdict with a one-line derivation.
		if _, err := verdict.Parse(string(e.Verdict)); err != nil || e.Verdict.IsFailureClass() {
			t.Errorf("%s", at("not an outcome verdict"))
		}
		if e.Reason == "" || strings.ContainsAny(e.Reason, "\n\r") || e.Reason != strings.Join(e.Steps, "; ") {
			t.Errorf("%s", at("reason is not a one-line join of the steps"))
		}
		// Pure: the same question gives the same answer.
		if again := Expect(c, p, srv); again.Verdict != e.Verdict || again.Reason != e.Reason {
			t.Errorf("%s", at("not deterministic"))
		}

		// Nothing is exposed unless an attacker proxy is on the path.
		if !c.Path.Intercepted() && e.Verdict == verdict.Exposed {
			t.Errorf("%s", at("exposed without an attacker on the path"))
		}
		// Through an attacker proxy, registering is always exposure, never "registered".
		if c.Path.Intercepted() && e.Verdict == verdict.Registered {
			t.Errorf("%s", at("registered through an attacker proxy"))
		}
		// An attacker the node does not trust never gets a registration, strict or not.
		if c.Path == matrix.PathMITM && e.Verdict == verdict.Exposed {
			t.Errorf("%s", at("exposed to an untrusted attacker"))
		}
		// The pre-strict era has no strict abort.
		if p.Name == script.ProfilePreStrict && e.Verdict == verdict.FatalStrictNoChecksum {
			t.Errorf("%s", at("strict fatal from a pre-strict script"))
		}
		// Strict-era scripts: the fatal happens exactly when strict is effective and no
		// checksum is left, and then nothing else happens.
		if p.StrictAbort {
			wantFatal := strictByConstruction(c, st) && noChecksumByConstruction(c)
			if (e.Verdict == verdict.FatalStrictNoChecksum) != wantFatal {
				t.Errorf("%s", at("strict fatal iff strict and no checksum"))
			}
		}
		// A strict, pinning script resists even an interception CA the node trusts.
		if p.StrictAbort && strictByConstruction(c, st) && c.Path == matrix.PathMITMTrusted && e.Verdict == verdict.Exposed {
			t.Errorf("%s", at("strict verification exposed to a trusted attacker"))
		}
		// Scripts without a strict step cannot resist a trusted interception CA: the CA check
		// trusts the attacker and clears any checksum.
		if p.Name == script.ProfilePreStrict && c.Path == matrix.PathMITMTrusted && e.Verdict != verdict.Exposed {
			t.Errorf("%s", at("pre-strict script not exposed to a trusted attacker"))
		}

		// The fatal comes before any request, so the path cannot matter for it.
		direct := Expect(with(c, func(c *matrix.Cell) { c.Path = matrix.PathDirect }), p, srv)
		if (direct.Verdict == verdict.FatalStrictNoChecksum) != (e.Verdict == verdict.FatalStrictNoChecksum) {
			t.Errorf("%s", at("strict fatal depends on the path"))
		}
		// Moving a rejected cell from direct to an attacker path never lets it through.
		if c.Path.Intercepted() && isRejected(direct.Verdict) && (e.Verdict == verdict.Registered || (c.Path == matrix.PathMITM && e.Verdict == verdict.Exposed)) {
			t.Errorf("%s", at("direct was "+string(direct.Verdict)+", the attacker path lets it through"))
		}
		// Tamper paths only change /cacerts: where the direct cell never reads it (no
		// checksum reaches that step), they answer like direct.
		if c.Path.Tampered() && (noChecksumByConstruction(c) || direct.Verdict == verdict.RejectedUntrusted) && e.Verdict != direct.Verdict {
			t.Errorf("%s", at("tamper path differs from direct ("+string(direct.Verdict)+") although /cacerts is never read"))
		}

		// Metamorphic relations between cells.
		unset := Expect(with(c, func(c *matrix.Cell) { c.StrictVerify = matrix.StrictUnset; c.StrictVerifyAt = "" }), p, srv)
		if c.At() == matrix.AtCurl && e.Verdict != unset.Verdict {
			t.Errorf("%s", at("variable before curl changed the outcome ("+string(unset.Verdict)+" unset)"))
		}
		if c.At() == matrix.AtShLegacyName && st != PreambleNone && e.Verdict != unset.Verdict {
			t.Errorf("%s", at("STRICT_VERIFY to sh changed the outcome although the preamble overwrites it"))
		}
		if c.At() == matrix.AtShLegacyName && st == PreambleNone {
			asEnv := Expect(with(c, func(c *matrix.Cell) { c.StrictVerifyAt = matrix.AtSh }), p, srv)
			if e.Verdict != asEnv.Verdict {
				t.Errorf("%s", at("without a preamble line, STRICT_VERIFY should act like CATTLE_AGENT_STRICT_VERIFY"))
			}
		}
		if p.Name == script.ProfilePreStrict {
			// Neither variable nor mode reaches a pre-strict script.
			base := Expect(with(c, func(c *matrix.Cell) {
				c.StrictVerify, c.StrictVerifyAt, c.Mode = matrix.StrictUnset, "", matrix.ModeStrict
			}), p, srv)
			if e.Verdict != base.Verdict {
				t.Errorf("%s", at("pre-strict outcome depends on strict-verify or mode"))
			}
		}
		switch c.StrictVerify {
		case matrix.StrictTrueUpper:
			if lower := Expect(with(c, func(c *matrix.Cell) { c.StrictVerify = matrix.StrictTrue }), p, srv); e.Verdict != lower.Verdict {
				t.Errorf("%s", at("TRUE differs from true"))
			}
		case matrix.StrictOne:
			if f := Expect(with(c, func(c *matrix.Cell) { c.StrictVerify = matrix.StrictFalse }), p, srv); e.Verdict != f.Verdict {
				t.Errorf("%s", at("1 differs from false"))
			}
		}
		if st == PreambleQuoted {
			if exp := Expect(c, p, Server{StrictVerify: PreambleExport}); e.Verdict != exp.Verdict {
				t.Errorf("%s", at("quoted preamble differs from export"))
			}
		}
		if c.CA == matrix.CAPrivateBundle {
			if priv := Expect(with(c, func(c *matrix.Cell) { c.CA = matrix.CAPrivate }), p, srv); e.Verdict != priv.Verdict {
				t.Errorf("%s", at("private-bundle differs from private"))
			}
		}
		if c.CA == matrix.CAPublic && c.Checksum == matrix.ChecksumEmpty {
			if abs := Expect(with(c, func(c *matrix.Cell) { c.Checksum = matrix.ChecksumAbsent }), p, srv); e.Verdict != abs.Verdict {
				t.Errorf("%s", at("public: an empty flag differs from no flag"))
			}
		}
		// The broken guard only matters where the CA check would have run: with strict
		// effective the check is skipped anyway, so v0.3.7 and the fixed script agree.
		if p.Name == script.ProfileStrictBrokenGuard && strictByConstruction(c, st) {
			if fixed := Expect(c, strict, srv); e.Verdict != fixed.Verdict {
				t.Errorf("%s", at("broken guard differs from fixed ("+string(fixed.Verdict)+") with strict on"))
			}
		}
	}
	t.Logf("verdicts over all expectations: %v", count)
	for _, v := range []verdict.Verdict{verdict.Registered, verdict.Exposed, verdict.FatalStrictNoChecksum,
		verdict.RejectedChecksumMismatch, verdict.RejectedNoCACerts, verdict.RejectedNotX509, verdict.RejectedUntrusted} {
		if count[v] == 0 {
			t.Errorf("no cell yields %s: the matrix or the oracle lost a branch", v)
		}
	}
}

// TestDefaultMatrixCounts pins the verdict counts of DESIGN's default 144-cell matrix for the
// current script, computed by hand per group below, so that a change in the oracle that moves
// any cell shows up as a count change.
func TestDefaultMatrixCounts(t *testing.T) {
	got := map[verdict.Verdict]int{}
	n := 0
	for _, c := range allCells(t) {
		if c.At() != matrix.AtSh || c.CA == matrix.CAPrivateBundle || c.Checksum == matrix.ChecksumEmpty ||
			c.StrictVerify == matrix.StrictTrueUpper || c.StrictVerify == matrix.StrictOne ||
			(c.Path != matrix.PathDirect && c.Path != matrix.PathMITM && c.Path != matrix.PathMITMTrusted && c.Path != matrix.PathTamper) {
			continue
		}
		n++
		got[Expect(c, strict, Server{}).Verdict]++
	}
	if n != 144 {
		t.Fatalf("default matrix has %d cells, want 144", n)
	}
	// Hand count, by (ca, strict effective, checksum) group; each group has 4 paths.
	//  public, strict on (mode strict & sv unset|true, mode system-store & sv true = 3 combos):
	//    absent: fatal x4 paths -> 12 F
	//    correct (hash of 0 bytes): direct N, mitm M, mitm-trusted M, tamper M -> 3 N, 9 M
	//    wrong: direct N, others M -> 3 N, 9 M
	//  public, strict off (3 combos):
	//    absent: direct R, mitm U, mitm-trusted X, tamper R -> 6 R, 3 U, 3 X
	//    correct/wrong: CA check trusts public on direct/tamper -> cleared -> R; mitm -> necessary -> M;
	//      mitm-trusted -> cleared -> X: per checksum 6 R, 3 M, 3 X
	//  private, strict on (3 combos):
	//    absent/correct: direct R, mitm M, mitm-trusted M, tamper M -> 6 R, 18 M
	//    wrong: M x4 -> 12 M
	//  private, strict off (3 combos):
	//    absent/correct: CA check: direct necessary -> R; mitm necessary -> M; mitm-trusted cleared -> X;
	//      tamper necessary -> M: 6 R, 12 M, 6 X
	//    wrong: direct M, mitm M, mitm-trusted X, tamper M -> 9 M, 3 X
	want := map[verdict.Verdict]int{
		verdict.FatalStrictNoChecksum:    12,
		verdict.RejectedNoCACerts:        3 + 3,
		verdict.RejectedChecksumMismatch: 9 + 9 + 3 + 3 + 18 + 12 + 12 + 9,
		verdict.Registered:               6 + 6 + 6 + 6 + 6,
		verdict.RejectedUntrusted:        3,
		verdict.Exposed:                  3 + 3 + 3 + 6 + 3,
	}
	for _, v := range verdict.All {
		if got[v] != want[v] {
			t.Errorf("%s: %d cells, hand count %d", v, got[v], want[v])
		}
	}
	t.Logf("default 144-cell matrix on the current script: %v", got)
}
