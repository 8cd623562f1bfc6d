package script

import (
	"fmt"
	"regexp"
	"strings"
)

// Profile names.
const (
	// ProfilePreStrict: no strict-verify abort (before v0.3.7). The CA-necessity check runs
	// whenever a checksum is set.
	ProfilePreStrict = "pre-strict"
	// ProfileStrictBrokenGuard: the strict abort exists, but the guard in front of the
	// CA-necessity check is malformed (v0.3.7's missing bracket), so that check never runs.
	ProfileStrictBrokenGuard = "strict-broken-guard"
	// ProfileStrict: the strict abort exists and the CA-necessity check runs when a checksum is
	// set and strict is off (v0.3.8 onwards).
	ProfileStrict = "strict"
)

// Profile is the CA-handling era of a script, read from its structure.
type Profile struct {
	// Name is one of ProfilePreStrict, ProfileStrictBrokenGuard, ProfileStrict.
	Name string `json:"name"`
	// StrictAbort: do_install aborts when strict verification is requested with no checksum.
	StrictAbort bool `json:"strictAbort"`
	// CANecessityCheck: the CA-necessity check (validate_ca_required) exists and do_install calls it.
	CANecessityCheck bool `json:"caNecessityCheck"`
	// CANecessitySkippedWhenStrict: the guard in front of that call also requires strict to be
	// off (strict era), rather than only a checksum being set (pre-strict era).
	CANecessitySkippedWhenStrict bool `json:"caNecessitySkippedWhenStrict"`
	// StrictGuardBroken: that guard is not a well-formed test (a "[" without its "]"), so the
	// shell reports an error, the condition is false, and the CA-necessity check never runs.
	StrictGuardBroken bool `json:"strictGuardBroken"`
	// ValidatesConnection: downloaded connection info is checked with
	// `rancher-system-agent validate-connection` before use (v0.3.16 / v0.14.0 onwards); such
	// scripts print a different success line.
	ValidatesConnection bool `json:"validatesConnection"`
	// CANecessityGuard is the condition of the guard in front of the CA-necessity call, as
	// written in the script (empty if there is none).
	CANecessityGuard string `json:"caNecessityGuard,omitempty"`
	// Warnings lists structural surprises: a script whose structure matches no known era gets
	// the closest profile plus these notes; a runner should show them and may refuse to run.
	Warnings []string `json:"warnings,omitempty"`
}

// String is the profile name with the connection-validation flag, e.g. "strict+validate".
func (p Profile) String() string {
	if p.ValidatesConnection {
		return p.Name + "+validate"
	}
	return p.Name
}

var (
	funcStart        = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*\(\)\s*\{\s*$`)
	validateConnCall = regexp.MustCompile(`rancher-system-agent"?\s+validate-connection\b`)
)

// noDoInstall is the warning of a script without the entry function.
const noDoInstall = "no do_install function found"

// DetectProfile reads the script's structure: which guards do_install puts around the strict
// abort and the CA-necessity check, whether those guards are well-formed, and how connection
// info is validated. It never looks at version strings or log messages.
func DetectProfile(body []byte) Profile {
	lines := codeLines(string(body))
	funcs := functionBodies(lines)
	var p Profile

	install, ok := funcs["do_install"]
	if !ok {
		p.Warnings = append(p.Warnings, noDoInstall)
	}
	_, hasCheckFunc := funcs["validate_ca_required"]

	var stack []string // enclosing if-conditions
	callGuards := 0
	for _, l := range install {
		w := firstWord(l)
		switch {
		case w == "if":
			stack = append(stack, ifCondition(l))
		case w == "elif":
			if len(stack) > 0 {
				stack[len(stack)-1] = ifCondition(strings.Replace(l, "elif", "if", 1))
			}
		case w == "fi" || strings.HasPrefix(w, "fi;"):
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case w == "fatal" && len(stack) > 0:
			cond := stack[len(stack)-1]
			if strings.Contains(cond, "-z") && strings.Contains(cond, "CATTLE_CA_CHECKSUM") && strings.Contains(cond, "CATTLE_AGENT_STRICT_VERIFY") {
				p.StrictAbort = true
			}
		case w == "validate_ca_required":
			if !hasCheckFunc {
				p.Warnings = append(p.Warnings, "do_install calls validate_ca_required but the function is not defined")
				continue
			}
			p.CANecessityCheck = true
			callGuards++
			if len(stack) == 0 {
				p.Warnings = append(p.Warnings, "validate_ca_required is called without a guard")
				continue
			}
			cond := stack[len(stack)-1]
			p.CANecessityGuard = cond
			if !strings.Contains(cond, "CATTLE_CA_CHECKSUM") {
				p.Warnings = append(p.Warnings, "the guard of validate_ca_required does not test CATTLE_CA_CHECKSUM: "+cond)
			}
			p.CANecessitySkippedWhenStrict = strings.Contains(cond, "CATTLE_AGENT_STRICT_VERIFY")
			p.StrictGuardBroken = !wellFormedTest(cond)
		}
	}
	if callGuards > 1 {
		p.Warnings = append(p.Warnings, "validate_ca_required is called more than once in do_install")
	}
	for _, l := range funcs["retrieve_connection_info"] {
		if validateConnCall.MatchString(l) {
			p.ValidatesConnection = true
		}
	}

	switch {
	case !p.StrictAbort:
		p.Name = ProfilePreStrict
		if p.CANecessitySkippedWhenStrict {
			p.Warnings = append(p.Warnings, "the CA-necessity guard tests strict verification but the script has no strict abort")
		}
	case p.StrictGuardBroken:
		p.Name = ProfileStrictBrokenGuard
	default:
		p.Name = ProfileStrict
		if p.CANecessityCheck && !p.CANecessitySkippedWhenStrict {
			p.Warnings = append(p.Warnings, "the script has a strict abort but its CA-necessity guard ignores strict verification")
		}
	}
	if !p.CANecessityCheck {
		p.Warnings = append(p.Warnings, "no CA-necessity check (validate_ca_required) is called: older than v0.1.0 or restructured")
	}
	return p
}

// codeLines returns the script's lines with whole-line comments blanked out and trailing
// space (and CR) removed; indentation is kept so that function ends can be told apart.
func codeLines(s string) []string {
	raw := strings.Split(s, "\n")
	out := make([]string, 0, len(raw))
	for _, l := range raw {
		l = strings.TrimRight(l, " \t\r")
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			l = ""
		}
		out = append(out, l)
	}
	return out
}

// functionBodies maps each top-level `name() {` to its lines (trimmed) up to the closing `}`
// in column 0: install.sh writes every function this way.
func functionBodies(lines []string) map[string][]string {
	out := map[string][]string{}
	for i := 0; i < len(lines); i++ {
		m := funcStart.FindStringSubmatch(lines[i])
		if m == nil || strings.TrimSpace(lines[i]) != lines[i] {
			continue
		}
		var body []string
		j := i + 1
		for ; j < len(lines) && lines[j] != "}"; j++ {
			body = append(body, strings.TrimSpace(lines[j]))
		}
		out[m[1]] = body
		i = j
	}
	return out
}

func firstWord(l string) string {
	if i := strings.IndexAny(l, " \t"); i >= 0 {
		return l[:i]
	}
	return l
}

// ifCondition returns the condition of a one-line `if COND; then` (or `if COND then`).
func ifCondition(l string) string {
	c := strings.TrimSpace(strings.TrimPrefix(l, "if"))
	c = strings.TrimSpace(strings.TrimSuffix(c, "then"))
	return strings.TrimSpace(strings.TrimSuffix(c, ";"))
}

// wellFormedTest reports whether every test in an and/or list is a complete `[ ... ]` (or a
// plain command). A `[` whose list element does not end in `]` makes the shell print
// "missing ]" and the whole condition false.
func wellFormedTest(cond string) bool {
	var seg []string
	check := func() bool {
		if len(seg) == 0 {
			return false // `&&` with nothing before or after it
		}
		opens, closes := 0, 0
		for _, w := range seg {
			switch w {
			case "[", "[[":
				opens++
			case "]", "]]":
				closes++
			}
		}
		if seg[0] == "[" || seg[0] == "[[" {
			last := seg[len(seg)-1]
			return opens == 1 && closes == 1 && (last == "]" || last == "]]")
		}
		return opens == 0 && closes == 0
	}
	for _, w := range shellWords(cond) {
		if w == "&&" || w == "||" {
			if !check() {
				return false
			}
			seg = seg[:0]
			continue
		}
		seg = append(seg, w)
	}
	return check()
}

// shellWords splits a condition into words the way the shell groups them for `[`: quotes and
// $( ... ) keep their contents together. It is just enough shell for install.sh's conditions.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	depth := 0
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			cur.WriteRune(r)
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' && i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			}
		case r == '\'' || r == '"':
			quote = r
			inWord = true
			cur.WriteRune(r)
		case r == '$' && i+1 < len(rs) && rs[i+1] == '(':
			depth++
			inWord = true
			cur.WriteString("$(")
			i++
		case r == ')' && depth > 0:
			depth--
			cur.WriteRune(r)
		case depth == 0 && (r == ' ' || r == '\t'):
			flush()
		case depth == 0 && r == ';':
			flush()
		default:
			inWord = true
			cur.WriteRune(r)
		}
	}
	flush()
	return words
}

// ParseProfile is the inverse of Profile.String for the three known eras: "pre-strict",
// "strict-broken-guard" or "strict", optionally followed by "+validate". It returns the profile
// DetectProfile reports for scripts of that era (without the guard text). Transcript headers
// and configuration use it when the script itself is not at hand.
func ParseProfile(s string) (Profile, error) {
	name, validate := strings.CutSuffix(strings.TrimSpace(s), "+validate")
	p := Profile{Name: name, ValidatesConnection: validate, CANecessityCheck: true}
	switch name {
	case ProfilePreStrict:
	case ProfileStrict:
		p.StrictAbort, p.CANecessitySkippedWhenStrict = true, true
	case ProfileStrictBrokenGuard:
		p.StrictAbort, p.CANecessitySkippedWhenStrict, p.StrictGuardBroken = true, true, true
	default:
		return Profile{}, fmt.Errorf("unknown script profile %q: use %s, %s or %s, optionally with +validate",
			s, ProfilePreStrict, ProfileStrictBrokenGuard, ProfileStrict)
	}
	return p, nil
}
