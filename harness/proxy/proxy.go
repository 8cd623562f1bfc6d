// Package proxy is the interception side of the hermetic tier: a TLS-terminating reverse proxy
// in front of the emulator (or a real Rancher) that either impersonates Rancher with a forged
// certificate and its own /cacerts (mode mitm), or holds Rancher's real certificate and changes
// the /cacerts bytes in flight (mode tamper). Every forwarded request carries
// X-Agenttls-Intercepted-By and X-Forwarded-For, so the upstream can tell intercepted traffic
// from direct traffic, and the proxy keeps its own request log on a control API.
//
// This package is the handler only; the caller owns listeners, certificates and containers.
package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/agenttls/agenttls/harness/emulator/accesslog"
)

// Mode is what the proxy does.
type Mode string

const (
	// MITM presents a certificate forged for the Rancher host name (by the attacker CA),
	// answers /cacerts itself with Config.CACertsBody and forwards everything else.
	MITM Mode = "mitm"
	// Tamper presents Rancher's real certificate, forwards everything and replaces the body of
	// /cacerts according to Config.Tamper.
	Tamper Mode = "tamper"
)

// Tampering is how a tamper proxy changes /cacerts.
type Tampering string

const (
	// TamperSwap serves Config.CACertsBody (another valid CA PEM) instead.
	TamperSwap Tampering = "swap"
	// TamperGarbage serves GarbageBody, bytes that are no certificate.
	TamperGarbage Tampering = "garbage"
	// TamperEmpty serves 0 bytes.
	TamperEmpty Tampering = "empty"
)

// GarbageBody is what TamperGarbage serves at /cacerts.
const GarbageBody = "agenttls tamper proxy: these bytes are not a certificate\n"

// Config describes one proxy.
type Config struct {
	Mode Mode
	// Upstream is the real server, e.g. "https://emulator:443".
	Upstream string
	// UpstreamCA, when set, is the PEM the upstream's chain must verify against; when empty the
	// upstream certificate is not verified (the proxy is the attacker, not the victim).
	UpstreamCA []byte
	// UpstreamServerName overrides the name verified against the upstream certificate (and
	// sent as SNI); default: the host of Upstream.
	UpstreamServerName string
	// CACertsBody is the /cacerts body: served as is by MITM, swapped in by TamperSwap.
	CACertsBody []byte
	// Tamper is required in Tamper mode and not allowed in MITM mode.
	Tamper Tampering
	// AccessLog, when set, receives one JSON line per request.
	AccessLog io.Writer
}

// Proxy is one configured proxy; its handlers are safe for concurrent use.
type Proxy struct {
	cfg  Config
	log  *accesslog.Log
	rp   *httputil.ReverseProxy
	body []byte // the /cacerts body this proxy serves
}

// New validates cfg and builds the proxy.
func New(cfg Config) (*Proxy, error) {
	u, err := url.Parse(cfg.Upstream)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("proxy: upstream %q must be an https URL such as https://emulator:443", cfg.Upstream)
	}
	p := &Proxy{cfg: cfg, log: accesslog.New(cfg.AccessLog)}
	switch cfg.Mode {
	case MITM:
		if cfg.Tamper != "" {
			return nil, fmt.Errorf("proxy: --tamper %q only applies to mode %q; mitm serves --cacerts-body as its /cacerts", cfg.Tamper, Tamper)
		}
		if len(cfg.CACertsBody) == 0 {
			return nil, errors.New("proxy: mode mitm needs the /cacerts body it serves (the attacker root PEM): set --cacerts-body")
		}
		p.body = bytes.Clone(cfg.CACertsBody)
	case Tamper:
		switch cfg.Tamper {
		case TamperSwap:
			if len(cfg.CACertsBody) == 0 {
				return nil, errors.New("proxy: --tamper swap needs the CA PEM to swap in: set --cacerts-body")
			}
			p.body = bytes.Clone(cfg.CACertsBody)
		case TamperGarbage:
			p.body = []byte(GarbageBody)
		case TamperEmpty:
			p.body = []byte{}
		default:
			return nil, fmt.Errorf("proxy: mode tamper needs --tamper %s, %s or %s (got %q)", TamperSwap, TamperGarbage, TamperEmpty, cfg.Tamper)
		}
	default:
		return nil, fmt.Errorf("proxy: unknown mode %q: use %q or %q", cfg.Mode, MITM, Tamper)
	}

	tlsConf := &tls.Config{ServerName: cfg.UpstreamServerName}
	if len(cfg.UpstreamCA) == 0 {
		tlsConf.InsecureSkipVerify = true
	} else {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.UpstreamCA) {
			return nil, errors.New("proxy: the upstream CA holds no PEM certificate")
		}
		tlsConf.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy:                 nil, // never chain through an environment proxy
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 150 * time.Second, // Rancher's connect call may hold a request for minutes
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       60 * time.Second,
	}
	mode := string(cfg.Mode)
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the upstream sees the Rancher host name the node asked for
			r.SetXForwarded()      // X-Forwarded-For is exactly the node's address
			r.Out.Header.Set(accesslog.HeaderInterceptedBy, mode)
		},
		Transport:      transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			accesslog.Annotate(r.Context(), "upstream error: "+err.Error())
			http.Error(w, "agenttls proxy: upstream unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	return p, nil
}

// CACertsBody returns the bytes this proxy serves at /cacerts.
func (p *Proxy) CACertsBody() []byte { return bytes.Clone(p.body) }

// Handler is the intercepting HTTPS surface.
func (p *Proxy) Handler() http.Handler {
	return p.log.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.cfg.Mode == MITM && r.URL.Path == "/cacerts" {
			accesslog.Annotate(r.Context(), "served attacker cacerts")
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(p.body)
			return
		}
		accesslog.Annotate(r.Context(), "forwarded")
		p.rp.ServeHTTP(w, r)
	}))
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	if p.cfg.Mode != Tamper || resp.Request.URL.Path != "/cacerts" || resp.StatusCode != http.StatusOK {
		return nil
	}
	// Drain the real body so the upstream connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(p.body))
	resp.ContentLength = int64(len(p.body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(p.body)))
	resp.Header.Del("Etag")
	resp.Header.Del("Last-Modified")
	resp.TransferEncoding = nil
	accesslog.Annotate(resp.Request.Context(), "tampered cacerts: "+string(p.cfg.Tamper))
	return nil
}

// ControlHandler is the proxy's harness-private API (plain HTTP, own port):
// GET /agenttls/v1/requests?client=&since=, GET /agenttls/v1/seq, GET /agenttls/v1/healthz.
func (p *Proxy) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	p.log.Register(mux)
	return mux
}

// Requests returns the proxy's own access log after since, from client ("" for all).
func (p *Proxy) Requests(client string, since uint64) accesslog.RequestList {
	return p.log.Requests(client, since)
}

// Seq is the proxy's last sequence number.
func (p *Proxy) Seq() uint64 { return p.log.Seq() }
