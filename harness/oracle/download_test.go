package oracle

import (
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

func TestExpectCommandScriptDownload(t *testing.T) {
	p := script.Profile{Name: "strict", StrictAbort: true, CANecessityCheck: true, CANecessitySkippedWhenStrict: true, ValidatesConnection: true}
	s := Server{StrictVerify: PreambleExport}
	cell := func(ca matrix.CAKind, mode matrix.Mode, path matrix.Path) matrix.Cell {
		return matrix.Cell{CA: ca, Mode: mode, Checksum: matrix.ChecksumAbsent, StrictVerify: matrix.StrictFalse, Path: path}
	}
	// A public-CA node that downloads without --insecure refuses an untrusted MITM before
	// any of the install script runs, even though the script itself would be exposed.
	untrusted := cell(matrix.CAPublic, matrix.ModeSystemStore, matrix.PathMITM)
	if got := ExpectCommand(untrusted, p, s, false); got.Verdict != verdict.RejectedUntrusted || !strings.Contains(got.Reason, "script download") {
		t.Errorf("secure download through an untrusted MITM: %+v", got)
	}
	// With --insecure the script runs and its own connection check refuses the forged cert.
	if got := ExpectCommand(untrusted, p, s, true); got.Verdict != verdict.RejectedUntrusted || strings.Contains(got.Reason, "curl refuses") {
		t.Errorf("--insecure download through an untrusted MITM must be refused by the script's /healthz check, got %+v", got)
	}
	// A trusted interception CA passes the download and the script: exposed.
	trusted := cell(matrix.CAPublic, matrix.ModeSystemStore, matrix.PathMITMTrusted)
	if got := ExpectCommand(trusted, p, s, false); got.Verdict != verdict.Exposed {
		t.Errorf("trusted MITM: %+v", got)
	}
	// When the download passes, the answer is Expect's, with the download step first.
	direct := cell(matrix.CAPublic, matrix.ModeStrict, matrix.PathDirect)
	got, want := ExpectCommand(direct, p, s, false), Expect(direct, p, s)
	if got.Verdict != want.Verdict || !strings.HasPrefix(got.Reason, "script download: node store trusts") {
		t.Errorf("direct public: %+v vs %+v", got, want)
	}
}
