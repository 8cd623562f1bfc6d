package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	cases := []struct {
		name, remote, xff, via, want string
	}{
		{"direct", "10.0.0.5:4242", "", "", "10.0.0.5"},
		{"forwarded-for without proxy mark is ignored", "10.0.0.5:4242", "1.2.3.4", "", "10.0.0.5"},
		{"through a proxy: first hop", "10.0.0.9:1", " 172.30.0.7 , 10.0.0.1", "mitm", "172.30.0.7"},
		{"proxy mark without forwarded-for", "10.0.0.9:1", "", "tamper", "10.0.0.9"},
		{"ipv6 peer", "[fd00::1]:443", "", "", "fd00::1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if c.via != "" {
			r.Header.Set(HeaderInterceptedBy, c.via)
		}
		if got := ClientIP(r); got != c.want {
			t.Errorf("%s: ClientIP = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestWrapRecords(t *testing.T) {
	var out bytes.Buffer
	l := New(&out)
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/silent": // writes nothing: 200, 0 bytes
		case "/twice":
			w.WriteHeader(http.StatusTeapot)
			w.WriteHeader(http.StatusInternalServerError) // ignored by net/http and by the log
			_, _ = io.WriteString(w, "abc")
		case "/noted":
			Annotate(r.Context(), "first")
			Annotate(r.Context(), "second")
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, p := range []string{"/silent", "/twice", "/noted"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := l.Requests("", 0).Requests
	if len(got) != 3 {
		t.Fatalf("%d entries", len(got))
	}
	if got[0].Status != 200 || got[0].Bytes != 0 || got[1].Status != http.StatusTeapot || got[1].Bytes != 3 || got[2].Note != "second" {
		t.Fatalf("entries %+v", got)
	}
	if got[0].Seq != 1 || got[2].Seq != 3 || l.Seq() != 3 {
		t.Fatalf("sequence %d..%d, Seq %d", got[0].Seq, got[2].Seq, l.Seq())
	}
	if n := l.NextSeq(); n != 4 {
		t.Fatalf("NextSeq %d", n)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines", len(lines))
	}
	var e Entry
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil || e.Path != "/twice" {
		t.Fatalf("line %q: %v", lines[1], err)
	}
	Annotate(context.Background(), "outside a handler is a no-op")
}

func TestMaxEntries(t *testing.T) {
	l := New(nil)
	l.max = 3
	h := l.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for i := 0; i < 5; i++ {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}
	got := l.Requests("", 0)
	if len(got.Requests) != 3 || got.Requests[0].Seq != 3 || got.Seq != 5 {
		t.Fatalf("kept %+v", got)
	}
}
