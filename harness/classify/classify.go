// Package classify turns what a node printed while running the install script, plus what the
// server side recorded, into an observed verdict with the evidence that proves it.
//
// It is streaming: the runner feeds each output line to Line as it arrives, and Line reports
// as soon as the transcript holds everything the verdict needs, so the runner can stop a script
// that would otherwise retry for hours. Finish then combines the transcript with the server's
// records (registrations, request count) and the exit code.
//
// Matching is on fragments of the real scripts' messages (facts read from install.sh v0.3.4
// through v0.15.0), after the "[TAG]" prefix and its padding are taken off, so one or two
// spaces after the tag, CRLF endings and leading blanks make no difference.
package classify

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/agenttls/agenttls/harness/proxy"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

// Streams, as passed to Line.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Stopped is the exit code to pass to Finish when the runner stopped the script (after Line
// decided, or at the cell's time bound) instead of letting it exit.
const Stopped = -1

// Message fragments of the real scripts. Each is a fact about install.sh, not our prose.
const (
	fragStrictFatal     = "requested strict CA verification with no CA checksum provided"
	fragMismatch        = "does not match given --ca-checksum"
	fragNoCA            = "is set but there is no CA certificate configured at"
	fragNotX509         = "does not look like an x509 certificate"
	fragHealthzRetry    = "received while testing Rancher connection"
	fragHealthzGiveUp   = "Error connecting to Rancher. Perhaps --ca-checksum needs to be set"
	fragCADownloadRetry = "received while downloading the CA certificate"
	fragNecessityLoop   = "Error while connecting to Rancher to verify CA necessity"
	fragNecessityOther  = "Error received while testing necessity of CA"
	fragConnInfoFatal   = "failure to retrieve Rancher connection information"
	// Success lines for connection info: scripts that validate it (v0.3.16+) say so.
	successValidated = "Successfully downloaded and validated Rancher connection information"
	successPlain     = "Successfully downloaded Rancher connection information"
)

// milestones are INFO lines worth keeping in Observation.Steps, in the order they appear.
var milestones = []string{
	"CA strict verification is set to",
	"Determined CA is not necessary to connect to Rancher",
	"Determined CA is necessary to connect to Rancher",
	"Successfully downloaded CA certificate",
	"is an x509 certificate",
	"Successfully tested Rancher connection",
	successValidated,
	successPlain,
}

// curlError matches curl's own error line (the scripts run curl with -sS), e.g.
// "curl: (60) SSL certificate problem: unable to get local issuer certificate".
var curlError = regexp.MustCompile(`^curl: \((\d+)\) `)

// tlsCurlExit are curl exit codes that mean the TLS peer could not be verified or the
// handshake failed (as opposed to DNS, connect, timeout or HTTP errors).
var tlsCurlExit = map[int]bool{35: true, 51: true, 53: true, 54: true, 58: true, 59: true, 60: true,
	64: true, 66: true, 77: true, 80: true, 82: true, 83: true, 90: true, 91: true}

// ServerView is what the runner fetched from the server side for this cell.
type ServerView struct {
	// Registrations are the server's registration records for this cell's token.
	Registrations []Registration
	// Requests is how many HTTP requests the install script on this node made, as the server
	// side recorded them (emulator and proxies together), NOT counting the command's own
	// download of /system-agent-install.sh; only meaningful when RequestsCounted. The strict
	// abort is only proven with zero.
	Requests int
	// RequestsCounted is false in tiers that cannot count the node's requests.
	RequestsCounted bool
}

// Registration is one server-side registration record.
type Registration struct {
	// InterceptedBy is the mode of the agenttls proxy the registration came through ("" when
	// it reached the server directly). "tamper" relays with Rancher's own certificate and is
	// not an attacker; any other mode ("mitm") is, and makes the verdict exposed.
	InterceptedBy string
}

// Observation is the classifier's answer.
type Observation struct {
	Verdict  verdict.Verdict  `json:"verdict"`
	Evidence verdict.Evidence `json:"evidence"`
	// Decided: the transcript proved the verdict before the script ended by itself.
	Decided bool `json:"decided"`
	// Detail holds the supporting facts: the curl error behind a 000, the server's counts,
	// the exit code, a contradiction that turned the verdict into unexpected.
	Detail string `json:"detail,omitempty"`
	// Steps are the script's milestone lines in the order seen.
	Steps []string `json:"steps,omitempty"`
}

// Classifier reads one script run. Not safe for concurrent use; feed lines from one goroutine.
type Classifier struct {
	profile script.Profile
	success string // the success line this profile prints

	decided bool
	v       verdict.Verdict
	ev      verdict.Evidence
	detail  string
	// registeredLine is set when the script printed its connection-info success line; the
	// verdict then waits for the server's records in Finish.
	registeredLine string

	lastCurl  string
	firstCurl string // the first curl error line, if no script log line came before it
	tagged    int    // lines carrying a script log tag: the install script ran
	lastError verdict.Evidence
	lastLine  verdict.Evidence
	caRetries int
	steps     []string
}

// New returns a classifier for a script of profile p.
func New(p script.Profile) *Classifier {
	c := &Classifier{profile: p, success: successPlain}
	if p.ValidatesConnection {
		c.success = successValidated
	}
	return c
}

// Decided reports whether a verdict has been proven (Line returned true).
func (c *Classifier) Decided() bool { return c.decided }

// Proven returns the verdict proven so far by the transcript alone ("" when none). Finish may
// still turn it into another (server records can contradict it; a success line waits for
// them), so this is for deciding how to stop the script, not for reporting.
func (c *Classifier) Proven() verdict.Verdict {
	switch {
	case !c.decided:
		return ""
	case c.registeredLine != "":
		return verdict.Registered
	}
	return c.v
}

// curlProgressRow matches the start of one row of curl's progress meter (curl without -s, as
// in the registration command's `curl -fL`): three percent/size pairs, the two average speeds,
// the three times (--:--:--, 0:00:01 or 2d 03h) and the current speed, e.g.
// "100 34479    0 34479    0     0  94370      0 --:--:-- --:--:-- --:--:-- 94647".
var curlProgressRow = regexp.MustCompile(`^\s*(?:\d{1,3}\s+[\d.]+[kMGTP]?\s+){3}(?:[\d.]+[kMGTP]?\s+){2}` +
	`(?:(?:--:--:--|\d+:\d\d:\d\d|\d+d \d\dh|\d+d)\s+){3}[\d.]+[kMGTP]?`)

// isCurlProgressHeader reports whether s is one of the two header lines of curl's progress
// meter ("% Total    % Received % Xferd  Average Speed ..." and "Dload  Upload   Total ...").
func isCurlProgressHeader(s string) bool {
	f := strings.Fields(s)
	return strings.HasPrefix(strings.Join(f, " "), "% Total % Received % Xferd") ||
		strings.Join(f, " ") == "Dload Upload Total Spent Left Speed"
}

// ownText takes curl's progress meter out of an output line and returns the text left, or
// false when the line is nothing but the meter. curl redraws its meter with carriage returns,
// so one line may hold several rows and, glued to them, a line of the script: the text after
// the last carriage return (or after the last row) is the script's.
func ownText(line string) (string, bool) {
	segs := strings.Split(strings.TrimRight(line, "\r\n"), "\r")
	for i := len(segs) - 1; i >= 0; i-- {
		seg := segs[i]
		if isCurlProgressHeader(seg) {
			continue
		}
		if m := curlProgressRow.FindStringIndex(seg); m != nil {
			seg = seg[m[1]:]
		}
		if t := strings.TrimSpace(seg); t != "" {
			return t, true
		}
	}
	return "", false
}

// splitTag takes "[INFO]  msg" apart; lines without a known tag have tag "".
func splitTag(line string) (tag, msg string) {
	l := strings.TrimSpace(strings.TrimRight(line, "\r\n"))
	if strings.HasPrefix(l, "[") {
		if i := strings.IndexByte(l, ']'); i > 0 {
			switch t := l[1:i]; t {
			case "INFO", "WARN", "ERROR", "FATAL":
				return t, strings.TrimSpace(l[i+1:])
			}
		}
	}
	return "", l
}

func (c *Classifier) decide(v verdict.Verdict, ev verdict.Evidence, detail string) {
	c.decided, c.v, c.ev, c.detail = true, v, ev, detail
}

// Line takes one output line from stream ("stdout" or "stderr") and reports whether the verdict
// is now proven, so that the runner may stop the script. The first proof wins; later lines are
// still recorded for Finish's evidence but do not change the verdict.
func (c *Classifier) Line(stream, line string) (decided bool) {
	text, ok := ownText(line)
	if !ok {
		// Blank, or curl's progress meter: it proves nothing and is never the evidence.
		return c.decided
	}
	tag, msg := splitTag(text)
	if msg == "" {
		return c.decided
	}
	ev := verdict.Evidence{Line: text, Source: stream}
	c.lastLine = ev
	if tag == "ERROR" || tag == "FATAL" || (stream == Stderr && tag != "INFO") {
		c.lastError = ev
	}
	if tag != "" {
		c.tagged++
	}
	if stream == Stderr && curlError.MatchString(msg) {
		c.lastCurl = msg
		if c.tagged == 0 && c.firstCurl == "" {
			c.firstCurl = msg
		}
		return c.decided
	}
	for _, m := range milestones {
		if strings.Contains(msg, m) {
			c.steps = append(c.steps, ev.Line)
			break
		}
	}
	if c.decided {
		return true
	}

	switch {
	case strings.Contains(msg, fragStrictFatal):
		if !c.profile.StrictAbort {
			c.decide(verdict.Unexpected, ev, fmt.Sprintf("the strict abort came from a script whose profile (%s) has none: the profile is wrong", c.profile))
		} else {
			c.decide(verdict.FatalStrictNoChecksum, ev, "")
		}
	case strings.Contains(msg, fragMismatch):
		c.decide(verdict.RejectedChecksumMismatch, ev, "")
	case strings.Contains(msg, fragNoCA):
		if c.caRetries > 0 {
			c.decide(verdict.Unexpected, ev, fmt.Sprintf("the no-CA message followed %d failed /cacerts downloads, so it does not mean an empty /cacerts", c.caRetries))
		} else {
			c.decide(verdict.RejectedNoCACerts, ev, "")
		}
	case strings.Contains(msg, fragNotX509):
		c.decide(verdict.RejectedNotX509, ev, "")
	case strings.Contains(msg, fragHealthzRetry):
		code, _, _ := strings.Cut(msg, " ")
		switch {
		case code != "000":
			c.decide(verdict.Unexpected, ev, "the server answered HTTP "+code+" on /healthz; the script would retry for hours")
		case c.lastCurl != "" && !tlsCurlFailure(c.lastCurl):
			c.decide(verdict.Unexpected, verdict.Evidence{Line: c.lastCurl, Source: Stderr},
				"/healthz failed for a reason other than TLS verification ("+ev.Line+")")
		default:
			detail := "curl printed no error line"
			if c.lastCurl != "" {
				detail = c.lastCurl
			}
			c.decide(verdict.RejectedUntrusted, ev, detail)
		}
	case strings.Contains(msg, fragHealthzGiveUp):
		c.decide(verdict.RejectedUntrusted, ev, "the connection check gave up")
	case strings.Contains(msg, fragCADownloadRetry):
		c.caRetries++
		c.decide(verdict.Unexpected, ev, "/cacerts could not be downloaded; the script would retry for hours and then report no CA")
	case strings.Contains(msg, fragNecessityLoop):
		c.decide(verdict.Unexpected, ev, "the CA-necessity check could not reach the server; that loop never ends")
	case strings.Contains(msg, fragNecessityOther):
		c.decide(verdict.Unexpected, ev, "the CA-necessity check got a TLS result it does not handle; the script would retry for hours")
	case strings.Contains(msg, c.success):
		c.registeredLine = ev.Line
		c.decided = true
	case strings.Contains(msg, successValidated) || strings.Contains(msg, successPlain):
		c.decide(verdict.Unexpected, ev, fmt.Sprintf("this success line does not belong to a %s script: the profile is wrong", c.profile))
	case strings.Contains(msg, fragConnInfoFatal):
		c.decide(verdict.Unexpected, ev, "connection info could not be retrieved")
	case tag == "FATAL":
		c.decide(verdict.Unexpected, ev, "the script aborted")
	}
	return c.decided
}

func tlsCurlFailure(curlLine string) bool {
	m := curlError.FindStringSubmatch(curlLine)
	if m == nil {
		return true
	}
	n, _ := strconv.Atoi(m[1])
	return tlsCurlExit[n]
}

// attacker reports whether a registration came through an attacker proxy.
func attacker(r Registration) bool {
	return r.InterceptedBy != "" && r.InterceptedBy != string(proxy.Tamper)
}

// Finish returns the observed verdict once the script has exited (exitCode) or been stopped
// (Stopped), combining the transcript with the server's records.
func (c *Classifier) Finish(exitCode int, server ServerView) Observation {
	obs := c.finish(exitCode, server)
	obs.Decided = c.decided
	obs.Steps = append([]string(nil), c.steps...)
	return obs
}

func (c *Classifier) finish(exitCode int, sv ServerView) Observation {
	exit := "stopped by the runner"
	if exitCode != Stopped {
		exit = fmt.Sprintf("exit %d", exitCode)
	}
	regs := sv.Registrations
	unexpected := func(ev verdict.Evidence, why string) Observation {
		return Observation{Verdict: verdict.Unexpected, Evidence: ev, Detail: why + "; " + exit}
	}

	if c.registeredLine != "" {
		line := verdict.Evidence{Line: c.registeredLine, Source: Stdout}
		if len(regs) == 0 {
			return unexpected(line, "the script reports connection info, but the server recorded no registration for this cell's token")
		}
		for _, r := range regs {
			if attacker(r) {
				return Observation{Verdict: verdict.Exposed,
					Evidence: verdict.Evidence{Line: "registration came through the " + r.InterceptedBy + " proxy", Source: "server"},
					Detail:   fmt.Sprintf("script: %s; %d registration(s); %s", c.registeredLine, len(regs), exit)}
			}
		}
		via := "directly"
		if regs[0].InterceptedBy != "" {
			via = "through the " + regs[0].InterceptedBy + " proxy (Rancher's own certificate)"
		}
		return Observation{Verdict: verdict.Registered, Evidence: line,
			Detail: fmt.Sprintf("server recorded %d registration(s), %s; %s", len(regs), via, exit)}
	}

	if c.decided {
		v := c.v
		if v != verdict.Unexpected {
			if len(regs) > 0 {
				return unexpected(c.ev, fmt.Sprintf("the transcript says %s, but the server recorded %d registration(s)", v, len(regs)))
			}
			if exitCode == 0 {
				return unexpected(c.ev, fmt.Sprintf("the transcript says %s, but the script exited 0", v))
			}
		}
		detail := c.detail
		if v == verdict.FatalStrictNoChecksum {
			switch {
			case sv.RequestsCounted && sv.Requests > 0:
				return unexpected(verdict.Evidence{Line: fmt.Sprintf("%d request(s) from the node recorded", sv.Requests), Source: "server"},
					"the strict abort must come before any request ("+c.ev.Line+")")
			case sv.RequestsCounted:
				detail = "server recorded 0 requests from the node"
			default:
				detail = "this tier does not count the node's requests"
			}
		}
		return Observation{Verdict: v, Evidence: c.ev, Detail: joinDetail(detail, exit)}
	}

	// The command's own `curl -fL .../system-agent-install.sh` (without --insecure) refused the
	// server: curl printed its TLS error, sh read an empty script and the install script never
	// logged a line.
	if c.tagged == 0 && c.firstCurl != "" && tlsCurlFailure(c.firstCurl) && exitCode != Stopped && len(regs) == 0 {
		return Observation{Verdict: verdict.RejectedUntrusted, Evidence: verdict.Evidence{Line: c.firstCurl, Source: Stderr},
			Detail: "the script download failed TLS verification, so the install script never ran; " + exit}
	}
	ev := c.lastError
	if ev.Line == "" {
		ev = c.lastLine
	}
	if exitCode == Stopped {
		if ev.Line == "" {
			ev = verdict.Evidence{Line: "no output", Source: "timer"}
		}
		return Observation{Verdict: verdict.Timeout, Evidence: ev, Detail: "no verdict was proven before the runner stopped the script"}
	}
	if ev.Line == "" {
		ev = verdict.Evidence{Line: exit, Source: "exit"}
	}
	why := "the script ended without a line that proves a verdict"
	if len(regs) > 0 {
		why = fmt.Sprintf("the server recorded %d registration(s) but the script never printed %q", len(regs), c.success)
	}
	return unexpected(ev, why)
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
