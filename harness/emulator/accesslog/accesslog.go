// Package accesslog records every request a harness server (the emulator or a proxy) answered,
// numbers it in one increasing sequence, and serves the record on the harness-private control
// API. It is how a test proves what a node did or did not ask, for example that a strict abort
// made no request at all.
package accesslog

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HeaderInterceptedBy is added by the agenttls proxies to every request they forward; its value
// is the proxy mode ("mitm", "tamper"). A server that sees it knows the request came through
// an interception proxy and reads the node's address from X-Forwarded-For.
const HeaderInterceptedBy = "X-Agenttls-Intercepted-By"

// Control API paths shared by the emulator and the proxies.
const (
	PathRequests = "/agenttls/v1/requests"
	PathSeq      = "/agenttls/v1/seq"
	PathHealth   = "/agenttls/v1/healthz"
)

// DefaultMaxEntries bounds the in-memory log; the oldest entries are dropped beyond it.
const DefaultMaxEntries = 100000

// Entry is one answered request.
type Entry struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Method, Host and Path are taken from the request line and Host header.
	Method string `json:"method"`
	Host   string `json:"host"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	// Bytes is the size of the response body written.
	Bytes int64 `json:"bytes"`
	// Client is the node's IP: the first X-Forwarded-For hop when the request came through an
	// agenttls proxy, else the peer address.
	Client string `json:"client"`
	// Remote is the TCP peer (ip:port) as the server saw it.
	Remote string `json:"remote"`
	// InterceptedBy is the proxy mode that forwarded the request, "" when it came directly.
	InterceptedBy string `json:"interceptedBy"`
	TLS           bool   `json:"tls"`
	// DurationMS is how long the handler took.
	DurationMS float64 `json:"durationMs"`
	// Note is what the handler chose to say about the request (see Annotate), e.g. "tampered".
	Note string `json:"note,omitempty"`
}

// RequestList is the answer of GET /agenttls/v1/requests.
type RequestList struct {
	// Seq is the current sequence number when the list was taken; pass it as since next time.
	Seq      uint64  `json:"seq"`
	Requests []Entry `json:"requests"`
}

// SeqResponse is the answer of GET /agenttls/v1/seq.
type SeqResponse struct {
	Seq uint64 `json:"seq"`
}

// Log is a concurrency-safe request log. The zero value is not usable; call New.
type Log struct {
	mu      sync.Mutex
	seq     uint64
	entries []Entry
	max     int
	out     io.Writer
	now     func() time.Time
}

// New returns a log that also writes each entry as one JSON line to out (nil: no output).
func New(out io.Writer) *Log {
	return &Log{out: out, max: DefaultMaxEntries, now: time.Now}
}

// NextSeq takes the next sequence number for a record kept elsewhere (e.g. a registration),
// so every record of a server shares one order.
func (l *Log) NextSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return l.seq
}

// Seq returns the last sequence number handed out.
func (l *Log) Seq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Requests returns the entries with Seq > since, from client (every client when "").
func (l *Log) Requests(client string, since uint64) RequestList {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := RequestList{Seq: l.seq, Requests: []Entry{}}
	for _, e := range l.entries {
		if e.Seq > since && (client == "" || e.Client == client) {
			out.Requests = append(out.Requests, e)
		}
	}
	return out
}

func (l *Log) add(e Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq = l.seq
	l.entries = append(l.entries, e)
	if len(l.entries) > l.max {
		l.entries = append(l.entries[:0:0], l.entries[len(l.entries)-l.max:]...)
	}
	if l.out != nil {
		b, err := json.Marshal(e)
		if err == nil {
			b = append(b, '\n')
			_, _ = l.out.Write(b)
		}
	}
}

type noteKey struct{}

type note struct {
	mu   sync.Mutex
	text string
}

// Annotate attaches a short note to the log entry of the request whose context is ctx. It does
// nothing outside a handler wrapped by Log.Wrap.
func Annotate(ctx context.Context, text string) {
	if n, ok := ctx.Value(noteKey{}).(*note); ok {
		n.mu.Lock()
		n.text = text
		n.mu.Unlock()
	}
}

// Wrap logs every request h answers.
func (l *Log) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := l.now()
		n := &note{}
		rw := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), noteKey{}, n)))
		n.mu.Lock()
		text := n.text
		n.mu.Unlock()
		l.add(Entry{
			Time:          start.UTC(),
			Method:        r.Method,
			Host:          r.Host,
			Path:          r.URL.Path,
			Status:        rw.status,
			Bytes:         rw.bytes,
			Client:        ClientIP(r),
			Remote:        r.RemoteAddr,
			InterceptedBy: r.Header.Get(HeaderInterceptedBy),
			TLS:           r.TLS != nil,
			DurationMS:    float64(l.now().Sub(start).Microseconds()) / 1000,
			Note:          text,
		})
	})
}

// ClientIP is the node's address for r: the first X-Forwarded-For hop when an agenttls proxy
// forwarded r (HeaderInterceptedBy set), otherwise the peer IP.
func ClientIP(r *http.Request) string {
	if r.Header.Get(HeaderInterceptedBy) != "" {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if first = strings.TrimSpace(first); first != "" {
				return first
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Register adds the request-log endpoints to mux: GET PathRequests?client=&since=, GET PathSeq
// and GET PathHealth.
func (l *Log) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathRequests, func(w http.ResponseWriter, r *http.Request) {
		since, ok := SinceParam(w, r)
		if !ok {
			return
		}
		WriteJSON(w, http.StatusOK, l.Requests(r.URL.Query().Get("client"), since))
	})
	mux.HandleFunc("GET "+PathSeq, func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, SeqResponse{Seq: l.Seq()})
	})
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
	})
}

// SinceParam parses the since query parameter (default 0); on a bad value it answers 400 and
// returns false.
func SinceParam(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	s := r.URL.Query().Get("since")
	if s == "" {
		return 0, true
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "since must be a non-negative integer sequence number, got " + strconv.Quote(s)})
		return 0, false
	}
	return v, true
}

// WriteJSON writes v as indented JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status = code
		r.wroteHeader = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
