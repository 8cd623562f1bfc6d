package oracle

import (
	"fmt"

	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

// ExpectCommand is Expect for the whole registration command, which first downloads the script
// with `curl -fL https://HOST/system-agent-install.sh` (insecureDownload: with --insecure, as in
// Rancher's insecureNodeCommand). Without --insecure, curl verifies the server against the
// node's system store; when that fails, curl prints its TLS error, sh reads an empty script and
// nothing of the install script runs: the node refused the server before the CA gate.
func ExpectCommand(c matrix.Cell, p script.Profile, s Server, insecureDownload bool) Expectation {
	if insecureDownload {
		e := Expect(c, p, s)
		e.Steps = append([]string{"script downloaded with --insecure"}, e.Steps...)
		e.Reason = joinReason(e.Steps)
		return e
	}
	issuer := presentedIssuer(c)
	if !systemTrusts(c, issuer) {
		steps := []string{fmt.Sprintf("script download: node store does not trust %s cert (%s) -> curl refuses, no script runs", pathWho(c.Path), issuer)}
		return Expectation{Verdict: verdict.RejectedUntrusted, Reason: joinReason(steps), Steps: steps}
	}
	e := Expect(c, p, s)
	e.Steps = append([]string{fmt.Sprintf("script download: node store trusts %s cert (%s)", pathWho(c.Path), issuer)}, e.Steps...)
	e.Reason = joinReason(e.Steps)
	return e
}

func joinReason(steps []string) string {
	out := ""
	for i, s := range steps {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}
