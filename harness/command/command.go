// Package command builds the registration command a node runs, in the shape Rancher's
// cluster registration token carries (nodeCommand / insecureNodeCommand), and changes it only in
// the ways a matrix cell asks: the --ca-checksum flag, where CATTLE_AGENT_STRICT_VERIFY goes,
// --insecure on the script download, and a role flag.
package command

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/agenttls/agenttls/harness/matrix"
)

// StrictVerifyVar is the variable that, given to sh, beats the served preamble.
const StrictVerifyVar = "CATTLE_AGENT_STRICT_VERIFY"

// LegacyStrictVerifyVar is the name the served preamble assigns, so giving it to sh is useless.
const LegacyStrictVerifyVar = "STRICT_VERIFY"

// NodeCommand renders the command the way Rancher's registration token status does: cluster
// agent env vars before curl and after sudo, the script URL, the server, the token, and
// --ca-checksum only when Rancher has a cacerts checksum. No role flag, like Rancher's.
func NodeCommand(serverURL, token, caChecksum string, agentEnv []string) string {
	env := strings.Join(agentEnv, " ")
	cmd := fmt.Sprintf("%s curl -fL %s/system-agent-install.sh | sudo %s sh -s - --server %s --label 'cattle.io/os=linux' --token %s",
		env, serverURL, env, serverURL, token)
	if caChecksum != "" {
		cmd += " --ca-checksum " + caChecksum
	}
	return normalize(cmd)
}

// Checksums are the values a cell's checksum axis maps to.
type Checksums struct {
	// Correct is sha256 of the bytes Rancher serves at /cacerts (for no CA: of 0 bytes).
	Correct string
	// Wrong is the checksum of a CA that Rancher does not serve.
	Wrong string
}

var (
	checksumFlag = regexp.MustCompile(`\s--ca-checksum\s+("[^"]*"|'[^']*'|\S+)`)
	roleFlag     = regexp.MustCompile(`\s--(worker|etcd|controlplane|no-roles)\b`)
	pipeSudo     = regexp.MustCompile(`\|\s*sudo\s+`)
	firstCurl    = regexp.MustCompile(`(^|\s)curl\s`)
	shDash       = regexp.MustCompile(`(^|\s)sh -s -`)
)

// ForCell changes a Rancher-generated nodeCommand as cell c asks. insecure adds --insecure to the
// script download, as Rancher's insecureNodeCommand does (what a user with a private CA runs).
func ForCell(nodeCommand string, c matrix.Cell, sums Checksums, insecure bool) (string, error) {
	cmd := " " + normalize(nodeCommand)
	if !pipeSudo.MatchString(cmd) || !shDash.MatchString(cmd) || !firstCurl.MatchString(cmd) {
		return "", fmt.Errorf("node command %q is not of the form `curl ... | sudo ... sh -s - ...`: check the backend's registration token", nodeCommand)
	}
	cmd = checksumFlag.ReplaceAllString(cmd, "")
	switch c.Checksum {
	case matrix.ChecksumAbsent:
	case matrix.ChecksumCorrect:
		cmd += " --ca-checksum " + sums.Correct
	case matrix.ChecksumWrong:
		cmd += " --ca-checksum " + sums.Wrong
	case matrix.ChecksumEmpty:
		cmd += ` --ca-checksum ""`
	default:
		return "", fmt.Errorf("cell %s: unknown checksum %q", c.ID(), c.Checksum)
	}
	if insecure && !strings.Contains(cmd, "curl --insecure") {
		cmd = firstCurl.ReplaceAllString(cmd, "${1}curl --insecure ")
	}
	if c.StrictVerify != matrix.StrictUnset {
		switch c.At() {
		case matrix.AtSh:
			cmd = shDash.ReplaceAllString(cmd, "${1}"+StrictVerifyVar+"="+string(c.StrictVerify)+" sh -s -")
		case matrix.AtShLegacyName:
			cmd = shDash.ReplaceAllString(cmd, "${1}"+LegacyStrictVerifyVar+"="+string(c.StrictVerify)+" sh -s -")
		case matrix.AtCurl:
			cmd = StrictVerifyVar + "=" + string(c.StrictVerify) + " " + cmd
		default:
			return "", fmt.Errorf("cell %s: unknown strict-verify placement %q", c.ID(), c.At())
		}
	}
	if !roleFlag.MatchString(cmd) {
		cmd += " --worker"
	}
	return normalize(cmd), nil
}

func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }
