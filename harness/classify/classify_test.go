package classify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/verdict"
)

var (
	strictValidate, _ = script.ParseProfile("strict+validate")
	strictPlain, _    = script.ParseProfile("strict")
	preStrict, _      = script.ParseProfile("pre-strict")
)

const (
	untrustedLine = "[ERROR]  000 received while testing Rancher connection. Sleeping for 5 seconds and trying again"
	curl60        = "curl: (60) SSL certificate problem: unable to get local issuer certificate"
	mismatchLine  = "[ERROR]  Configured cacerts checksum (aa) does not match given --ca-checksum (bb)"
	fatalLine     = "[FATAL]  Aborting system-agent installation due to requested strict CA verification with no CA checksum provided"
	okLine        = "[INFO]  Successfully downloaded and validated Rancher connection information"
)

func TestDecidesOnTheProvingLineOnly(t *testing.T) {
	c := New(strictValidate)
	for _, l := range []struct{ stream, line string }{
		{Stdout, "[INFO]  CA strict verification is set to false"},
		{Stdout, "[INFO]  Using default agent var directory /var/lib/rancher/agent"},
		{Stderr, curl60},
	} {
		if c.Line(l.stream, l.line) {
			t.Fatalf("decided early on %q", l.line)
		}
	}
	if !c.Line(Stderr, untrustedLine) || !c.Decided() {
		t.Fatal("the first 000 on the connection check must decide")
	}
	// Later lines keep it decided and do not change the verdict.
	if !c.Line(Stderr, mismatchLine) {
		t.Fatal("decided must stay true")
	}
	obs := c.Finish(Stopped, ServerView{RequestsCounted: true, Requests: 1})
	if obs.Verdict != verdict.RejectedUntrusted || !obs.Decided || obs.Evidence.Source != Stderr ||
		!strings.Contains(obs.Evidence.Line, "000 received") || !strings.Contains(obs.Detail, "(60)") {
		t.Errorf("got %+v", obs)
	}
	if len(obs.Steps) != 1 || !strings.Contains(obs.Steps[0], "strict verification is set to false") {
		t.Errorf("steps %q", obs.Steps)
	}
}

func TestCurlReasonBehind000(t *testing.T) {
	for _, tc := range []struct {
		curl string
		want verdict.Verdict
	}{
		{curl60, verdict.RejectedUntrusted},
		{"curl: (35) OpenSSL/3.0.19: error:0A000418:SSL routines::tlsv1 alert unknown ca", verdict.RejectedUntrusted},
		{"curl: (60) SSL: no alternative certificate subject name matches target host name 'rancher.example.test'", verdict.RejectedUntrusted},
		{"", verdict.RejectedUntrusted}, // no curl line at all: the 000 alone decides
		{"curl: (6) Could not resolve host: rancher.example.test", verdict.Unexpected},
		{"curl: (7) Failed to connect to rancher.example.test port 443 after 1 ms: Couldn't connect to server", verdict.Unexpected},
		{"curl: (28) Connection timed out after 60001 milliseconds", verdict.Unexpected},
	} {
		c := New(strictValidate)
		if tc.curl != "" {
			c.Line(Stderr, tc.curl)
		}
		if !c.Line(Stderr, untrustedLine) {
			t.Errorf("%q: not decided", tc.curl)
		}
		if obs := c.Finish(Stopped, ServerView{}); obs.Verdict != tc.want {
			t.Errorf("%q: got %s (%s), want %s", tc.curl, obs.Verdict, obs.Detail, tc.want)
		}
	}
	// An HTTP answer on the connection check is a server problem, decided at once.
	c := New(strictValidate)
	if !c.Line(Stderr, "[ERROR]  503 received while testing Rancher connection. Sleeping for 5 seconds and trying again") {
		t.Fatal("503 on /healthz should decide")
	}
	if obs := c.Finish(Stopped, ServerView{}); obs.Verdict != verdict.Unexpected || !strings.Contains(obs.Detail, "503") {
		t.Errorf("503: %+v", obs)
	}
}

func TestRegistrationNeedsLineAndRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		sv   ServerView
		want verdict.Verdict
	}{
		{"record, direct", ServerView{Registrations: []Registration{{}}}, verdict.Registered},
		{"record via tamper", ServerView{Registrations: []Registration{{InterceptedBy: "tamper"}}}, verdict.Registered},
		{"record via mitm", ServerView{Registrations: []Registration{{InterceptedBy: "mitm"}}}, verdict.Exposed},
		{"one of two via mitm", ServerView{Registrations: []Registration{{}, {InterceptedBy: "mitm"}}}, verdict.Exposed},
		{"unknown proxy counts as attacker", ServerView{Registrations: []Registration{{InterceptedBy: "squid"}}}, verdict.Exposed},
		{"no record", ServerView{}, verdict.Unexpected},
	} {
		c := New(strictValidate)
		if !c.Line(Stdout, okLine) {
			t.Errorf("%s: the success line should let the runner stop the script", tc.name)
		}
		obs := c.Finish(Stopped, tc.sv)
		if obs.Verdict != tc.want {
			t.Errorf("%s: got %s (%s), want %s", tc.name, obs.Verdict, obs.Detail, tc.want)
		}
		if tc.want == verdict.Exposed && (obs.Evidence.Source != "server" || !strings.Contains(obs.Evidence.Line, "proxy")) {
			t.Errorf("%s: exposed evidence should be the server record: %+v", tc.name, obs.Evidence)
		}
	}
	// A record without the script's success line is not a registration.
	c := New(strictValidate)
	c.Line(Stderr, "[ERROR]  Downloaded connection info failed validation. Sleeping for 5 seconds and trying again")
	if obs := c.Finish(1, ServerView{Registrations: []Registration{{}}}); obs.Verdict != verdict.Unexpected || !strings.Contains(obs.Detail, "never printed") {
		t.Errorf("record without line: %+v", obs)
	}
}

func TestSuccessLineMustMatchTheEra(t *testing.T) {
	old := "[INFO]  Successfully downloaded Rancher connection information"
	for _, tc := range []struct {
		p    script.Profile
		line string
		want verdict.Verdict
	}{
		{strictPlain, old, verdict.Registered},
		{preStrict, old, verdict.Registered},
		{strictValidate, okLine, verdict.Registered},
		{strictValidate, old, verdict.Unexpected},
		{strictPlain, okLine, verdict.Unexpected},
	} {
		c := New(tc.p)
		c.Line(Stdout, tc.line)
		if obs := c.Finish(0, ServerView{Registrations: []Registration{{}}}); obs.Verdict != tc.want {
			t.Errorf("%s + %q: %s, want %s", tc.p, tc.line, obs.Verdict, tc.want)
		}
	}
}

func TestFatalNeedsZeroRequests(t *testing.T) {
	for _, tc := range []struct {
		sv     ServerView
		exit   int
		want   verdict.Verdict
		detail string
	}{
		{ServerView{RequestsCounted: true}, 1, verdict.FatalStrictNoChecksum, "0 requests"},
		{ServerView{}, 1, verdict.FatalStrictNoChecksum, "does not count"},
		{ServerView{RequestsCounted: true, Requests: 1}, 1, verdict.Unexpected, "before any request"},
		{ServerView{RequestsCounted: true, Registrations: []Registration{{}}}, 1, verdict.Unexpected, "registration"},
		{ServerView{RequestsCounted: true}, 0, verdict.Unexpected, "exited 0"},
	} {
		c := New(strictValidate)
		if !c.Line(Stderr, fatalLine) {
			t.Fatal("the strict fatal should decide")
		}
		obs := c.Finish(tc.exit, tc.sv)
		if obs.Verdict != tc.want || !strings.Contains(obs.Detail, tc.detail) {
			t.Errorf("%+v exit %d: %s (%s), want %s with %q", tc.sv, tc.exit, obs.Verdict, obs.Detail, tc.want, tc.detail)
		}
	}
}

func TestRejectionsContradictedByServer(t *testing.T) {
	c := New(strictValidate)
	c.Line(Stderr, mismatchLine)
	if obs := c.Finish(1, ServerView{Registrations: []Registration{{}}}); obs.Verdict != verdict.Unexpected {
		t.Errorf("mismatch plus a registration: %s", obs.Verdict)
	}
	c = New(strictValidate)
	c.Line(Stderr, mismatchLine)
	if obs := c.Finish(1, ServerView{}); obs.Verdict != verdict.RejectedChecksumMismatch || obs.Evidence.Line != mismatchLine {
		t.Errorf("plain mismatch: %+v", obs)
	}
}

func TestNoCAAfterFailedDownloadsIsNotNoCA(t *testing.T) {
	// Fed without stopping (as if the runner let the loop run out): the no-CA line after
	// download failures does not prove an empty /cacerts.
	c := New(strictValidate)
	c.Line(Stderr, "[ERROR]  000 received while downloading the CA certificate. Sleeping for 5 seconds and trying again")
	c.Line(Stderr, "[ERROR]  The environment variable CATTLE_CA_CHECKSUM is set but there is no CA certificate configured at https://r/cacerts")
	if obs := c.Finish(1, ServerView{}); obs.Verdict != verdict.Unexpected || !strings.Contains(obs.Evidence.Line, "downloading the CA") {
		t.Errorf("got %+v", obs)
	}
}

func TestUndecidedEndings(t *testing.T) {
	c := New(strictValidate)
	c.Line(Stdout, "[INFO]  Successfully tested Rancher connection")
	c.Line(Stderr, "[ERROR]  500 received while downloading Rancher connection information. Sleeping for 5 seconds and trying again")
	c.Line(Stdout, "[INFO]  Downloading something")
	if c.Decided() {
		t.Fatal("a connection-info retry must not decide: it can be legitimate against a real Rancher")
	}
	obs := c.Finish(Stopped, ServerView{})
	if obs.Verdict != verdict.Timeout || !strings.Contains(obs.Evidence.Line, "500 received") {
		t.Errorf("stopped undecided: %+v (evidence should be the last error, not the last line)", obs)
	}

	if obs := New(strictValidate).Finish(Stopped, ServerView{}); obs.Verdict != verdict.Timeout || obs.Evidence.Source != "timer" {
		t.Errorf("no output: %+v", obs)
	}
	if obs := New(strictValidate).Finish(0, ServerView{}); obs.Verdict != verdict.Unexpected || obs.Evidence.Source != "exit" {
		t.Errorf("silent exit 0: %+v", obs)
	}
	c = New(strictValidate)
	c.Line(Stderr, "sh: 1: curl: not found")
	if obs := c.Finish(127, ServerView{}); obs.Verdict != verdict.Unexpected || obs.Evidence.Line != "sh: 1: curl: not found" || !strings.Contains(obs.Detail, "exit 127") {
		t.Errorf("crash: %+v", obs)
	}
}

func TestSplitTag(t *testing.T) {
	for in, want := range map[string][2]string{
		"[INFO]  CA strict verification is set to true": {"INFO", "CA strict verification is set to true"},
		"[ERROR] one space":                             {"ERROR", "one space"},
		"   [FATAL]\tx\r\n":                             {"FATAL", "x"},
		"[INFO]":                                        {"INFO", ""},
		"[: missing ]":                                  {"", "[: missing ]"},
		"[DEBUG] not a tag":                             {"", "[DEBUG] not a tag"},
		"curl: (60) SSL error":                          {"", "curl: (60) SSL error"},
	} {
		tag, msg := splitTag(in)
		if tag != want[0] || msg != want[1] {
			t.Errorf("splitTag(%q) = %q, %q; want %q, %q", in, tag, msg, want[0], want[1])
		}
	}
}

// TestFragmentsAreFacts checks every message fragment the classifier matches against the
// real scripts, era by era, so a fragment that drifts from the scripts fails here.
func TestFragmentsAreFacts(t *testing.T) {
	common := []string{fragMismatch, fragNoCA, fragNotX509, fragHealthzRetry, fragHealthzGiveUp,
		fragCADownloadRetry, fragNecessityLoop, fragNecessityOther}
	want := map[string][]string{
		"v0.3.4":  append([]string{successPlain}, common...),
		"v0.3.11": append([]string{successPlain, fragStrictFatal, fragConnInfoFatal}, common...),
		"v0.3.16": append([]string{successValidated, fragStrictFatal, fragConnInfoFatal}, common...),
		"v0.15.0": append([]string{successValidated, fragStrictFatal, fragConnInfoFatal}, common...),
	}
	absent := map[string][]string{
		"v0.3.4":  {successValidated, fragStrictFatal},
		"v0.3.11": {successValidated},
		"v0.3.16": {successPlain},
		"v0.15.0": {successPlain},
	}
	for v, frags := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		s, err := script.FromModule(ctx, v)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		body := string(s.Body)
		for _, f := range frags {
			if !strings.Contains(body, f) {
				t.Errorf("%s: fragment %q is not in the script", v, f)
			}
		}
		for _, f := range absent[v] {
			if strings.Contains(body, f) {
				t.Errorf("%s: %q should not be in the script", v, f)
			}
		}
		for _, m := range milestones {
			eraSpecific := m == successValidated || m == successPlain ||
				(v == "v0.3.4" && m == "CA strict verification is set to")
			if !strings.Contains(body, m) && !eraSpecific {
				t.Errorf("%s: milestone %q is not in the script", v, m)
			}
		}
		// The log helpers pad the tag with two spaces on the way out: echo "[INFO] " "$@".
		if !strings.Contains(body, `echo "[INFO] " "$@"`) || !strings.Contains(body, `echo "[ERROR] " "$@" >&2`) {
			t.Errorf("%s: log helper shape changed", v)
		}
	}
}

func TestTranscriptParse(t *testing.T) {
	in := "# expect: registered\n# Server: registrations=2 intercepted-by=tamper requests=3\n\n" +
		FormatLine(Stdout, "[INFO]  a") + "\n" + FormatLine(Stderr, "") + "\n" + FormatLine(Stderr, "curl: x") + "\n" + FormatExit(Stopped) + "\n"
	tr, err := ParseTranscript(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Header["expect"] != "registered" || len(tr.Records) != 3 || tr.Records[1] != (Record{Stderr, ""}) ||
		tr.Records[2] != (Record{Stderr, "curl: x"}) || !tr.HasExit || tr.Exit != Stopped {
		t.Errorf("parsed %+v", tr)
	}
	sv, err := tr.ServerView()
	if err != nil || len(sv.Registrations) != 2 || sv.Registrations[1].InterceptedBy != "tamper" || !sv.RequestsCounted || sv.Requests != 3 {
		t.Errorf("server view %+v, %v", sv, err)
	}
	tr, err = ParseTranscript(strings.NewReader(FormatExit(3)))
	if err != nil || tr.Exit != 3 {
		t.Errorf("exit 3: %+v %v", tr, err)
	}
	for _, bad := range []string{
		"hello\n",
		"X| exit 1\nO| late\n",
		"X| exit one\n",
		"X| exit 300\n",
	} {
		if _, err := ParseTranscript(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, bad := range []string{"registrations=x", "regs=1", "requests"} {
		tr := Transcript{Header: map[string]string{"server": bad}}
		if _, err := tr.ServerView(); err == nil {
			t.Errorf("server header %q accepted", bad)
		}
	}
}

func TestOwnTextLeavesOutCurlsProgressMeter(t *testing.T) {
	const (
		row0   = "  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0"
		row100 = "100 34479  100 34479    0     0  94370      0 --:--:-- --:--:-- --:--:-- 94647"
		slow   = " 12 1024M   12  123M    0     0  1234k      0  0:14:09  0:01:42  0:12:27 1201k"
		days   = "  1  100G    1 1024M    0     0   1024      0 101d 04h  4d 11h  97d 17h   980"
	)
	for _, tc := range []struct {
		line, want string
	}{
		{"  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current", ""},
		{"                                 Dload  Upload   Total   Spent    Left  Speed", ""},
		{row100, ""},
		{"\r" + row0 + "\r" + row100, ""},
		{"\r" + row0 + "\r" + slow + "\r" + days + "\r", ""},
		{"\r" + row0 + "\r" + row100 + "\r[ERROR]  something went wrong", "[ERROR]  something went wrong"},
		{"\r" + row0 + "\r" + row100 + "[WARN]  glued without a carriage return", "[WARN]  glued without a carriage return"},
		{"\r" + row0 + "\rsh: 1: systemctl: not found", "sh: 1: systemctl: not found"},
		{"[INFO]  Successfully tested Rancher connection\r", "[INFO]  Successfully tested Rancher connection"},
		{"  [ERROR]  500 received while downloading Rancher connection information", "[ERROR]  500 received while downloading Rancher connection information"},
		{"100 received, not a progress row", "100 received, not a progress row"},
		{"   ", ""},
	} {
		got, ok := ownText(tc.line)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("ownText(%q) = %q, %v; want %q", tc.line, got, ok, tc.want)
		}
	}
}

// The registration command's curl -fL shows its progress meter on stderr; a run the runner
// stopped (timeout) or that ended unproven (unexpected) has the script's own last line as its
// evidence, never a meter row.
func TestProgressMeterIsNeverEvidence(t *testing.T) {
	meter := "\r  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0\r100 34479  100 34479    0     0  94370      0 --:--:-- --:--:-- --:--:-- 94647"
	last := "[INFO]  Successfully downloaded the rancher-system-agent binary."
	for _, exit := range []int{Stopped, 1} {
		c := New(strictValidate)
		c.Line(Stderr, "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current")
		c.Line(Stdout, "[INFO]  CA strict verification is set to false")
		c.Line(Stdout, last)
		c.Line(Stderr, meter)
		obs := c.Finish(exit, ServerView{})
		want := verdict.Unexpected
		if exit == Stopped {
			want = verdict.Timeout
		}
		if obs.Verdict != want || obs.Evidence != (verdict.Evidence{Line: last, Source: Stdout}) {
			t.Errorf("exit %d: %s, evidence %q; want %s, evidence stdout: %s", exit, obs.Verdict, obs.Evidence, want, last)
		}
	}
}
