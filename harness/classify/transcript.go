package classify

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// A transcript file records one script run, one record per line:
//
//	# key: value        header (before or between records; keys are lower-case)
//	O| <line>           a line the script wrote to stdout
//	E| <line>           a line the script wrote to stderr
//	X| exit <n>         the script exited with status n (last record)
//	X| stopped          the runner stopped the script
//
// Blank lines are ignored. Header keys used by the tests in fixtures/transcripts: expect,
// profile, script, server, source. The server header is a list of key=value words:
// registrations=<n> intercepted-by=<proxy mode> requests=<n>.

// Record is one output line of a transcript.
type Record struct {
	Stream string // Stdout or Stderr
	Line   string
}

// Transcript is a parsed transcript file.
type Transcript struct {
	Header  map[string]string
	Records []Record
	// Exit is the exit record: an exit status, or Stopped. HasExit is false when the file has
	// no exit record.
	Exit    int
	HasExit bool
}

// FormatLine renders one output line as a transcript record (without the newline).
func FormatLine(stream, line string) string {
	if stream == Stderr {
		return "E| " + line
	}
	return "O| " + line
}

// FormatExit renders the exit record for exitCode (Stopped gives "X| stopped").
func FormatExit(exitCode int) string {
	if exitCode == Stopped {
		return "X| stopped"
	}
	return "X| exit " + strconv.Itoa(exitCode)
}

// ParseTranscript reads a transcript; errors name the line.
func ParseTranscript(r io.Reader) (Transcript, error) {
	t := Transcript{Header: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(l) == "":
		case strings.HasPrefix(l, "#"):
			k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(l, "#")), ":")
			if ok && !strings.ContainsAny(strings.TrimSpace(k), " \t") {
				t.Header[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		case t.HasExit:
			return t, fmt.Errorf("line %d: record after the exit record", n)
		case strings.HasPrefix(l, "O|"), strings.HasPrefix(l, "E|"):
			stream := Stdout
			if l[0] == 'E' {
				stream = Stderr
			}
			t.Records = append(t.Records, Record{Stream: stream, Line: strings.TrimPrefix(l[2:], " ")})
		case strings.HasPrefix(l, "X|"):
			v := strings.TrimSpace(l[2:])
			if v == "stopped" {
				t.Exit, t.HasExit = Stopped, true
				continue
			}
			code, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(v, "exit")))
			if !strings.HasPrefix(v, "exit") || err != nil || code < 0 || code > 255 {
				return t, fmt.Errorf("line %d: exit record %q: want \"X| exit <0-255>\" or \"X| stopped\"", n, l)
			}
			t.Exit, t.HasExit = code, true
		default:
			return t, fmt.Errorf("line %d: %q is not a record: start it with \"O| \", \"E| \", \"X| \" or \"#\"", n, truncate(l, 60))
		}
	}
	if err := sc.Err(); err != nil {
		return t, fmt.Errorf("line %d: %w", n+1, err)
	}
	return t, nil
}

// ServerView reads the "server" header (registrations=<n> intercepted-by=<mode> requests=<n>).
// Without requests=, the view says requests were not counted.
func (t Transcript) ServerView() (ServerView, error) {
	var sv ServerView
	regs, via := 0, ""
	for _, w := range strings.Fields(t.Header["server"]) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return sv, fmt.Errorf("server header word %q: want key=value", w)
		}
		switch k {
		case "registrations", "requests":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return sv, fmt.Errorf("server header %s=%q: want a count", k, v)
			}
			if k == "requests" {
				sv.Requests, sv.RequestsCounted = n, true
			} else {
				regs = n
			}
		case "intercepted-by":
			via = v
		default:
			return sv, fmt.Errorf("server header key %q: use registrations, intercepted-by or requests", k)
		}
	}
	for range regs {
		sv.Registrations = append(sv.Registrations, Registration{InterceptedBy: via})
	}
	return sv, nil
}

// Replay feeds every record to c, as a runner would, and finishes with the exit record (a
// missing one counts as Stopped) and sv.
func (t Transcript) Replay(c *Classifier, sv ServerView) Observation {
	for _, r := range t.Records {
		c.Line(r.Stream, r.Line)
	}
	exit := t.Exit
	if !t.HasExit {
		exit = Stopped
	}
	return c.Finish(exit, sv)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
