package emulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/agenttls/agenttls/harness/emulator/accesslog"
	"github.com/agenttls/agenttls/harness/pki"
)

// Control API paths (besides accesslog.PathRequests, PathSeq and PathHealth).
const (
	PathRegistrations = "/agenttls/v1/registrations"
	PathAgentTLSMode  = "/agenttls/v1/agent-tls-mode"
	PathInfo          = "/agenttls/v1/info"
)

// SettingValue is the body of GET and PUT PathAgentTLSMode: {"value": "strict"}.
type SettingValue struct {
	Value string `json:"value"`
}

// Info is the answer of GET PathInfo: the emulator's effective configuration.
type Info struct {
	AgentTLSMode  string        `json:"agentTLSMode"`
	ServerURL     string        `json:"serverURL"`
	PreambleStyle PreambleStyle `json:"preambleStyle"`
	// Checksum is CATTLE_CA_CHECKSUM as served, "" without cacerts.
	Checksum string `json:"checksum"`
	// CACertsBytes is the length of the /cacerts body.
	CACertsBytes int    `json:"cacertsBytes"`
	Seq          uint64 `json:"seq"`
}

// ControlHandler is the harness-private API, to be served on its own plain-HTTP listener that
// nodes cannot reach:
//
//	GET /agenttls/v1/registrations?name=<token name>&since=<seq>  -> RegistrationList
//	GET /agenttls/v1/requests?client=<ip>&since=<seq>             -> accesslog.RequestList
//	GET /agenttls/v1/seq                                          -> accesslog.SeqResponse
//	GET|PUT /agenttls/v1/agent-tls-mode  {"value":"strict"}       -> SettingValue
//	GET /agenttls/v1/info                                         -> Info
//	GET /agenttls/v1/healthz                                      -> "ok"
func (e *Emulator) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	e.log.Register(mux)
	mux.HandleFunc("GET "+PathRegistrations, func(w http.ResponseWriter, r *http.Request) {
		since, ok := accesslog.SinceParam(w, r)
		if !ok {
			return
		}
		accesslog.WriteJSON(w, http.StatusOK, e.Registrations(r.URL.Query().Get("name"), since))
	})
	mux.HandleFunc("GET "+PathAgentTLSMode, func(w http.ResponseWriter, r *http.Request) {
		accesslog.WriteJSON(w, http.StatusOK, SettingValue{Value: e.AgentTLSMode()})
	})
	mux.HandleFunc("PUT "+PathAgentTLSMode, func(w http.ResponseWriter, r *http.Request) {
		var v SettingValue
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&v); err != nil {
			accesslog.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": `send {"value":"strict"} or {"value":"system-store"}: ` + err.Error()})
			return
		}
		if err := e.SetAgentTLSMode(v.Value); err != nil {
			accesslog.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		accesslog.WriteJSON(w, http.StatusOK, SettingValue{Value: e.AgentTLSMode()})
	})
	mux.HandleFunc("GET "+PathInfo, func(w http.ResponseWriter, r *http.Request) {
		accesslog.WriteJSON(w, http.StatusOK, e.Info())
	})
	return mux
}

// Info returns the effective configuration.
func (e *Emulator) Info() Info {
	return Info{
		AgentTLSMode:  e.AgentTLSMode(),
		ServerURL:     e.ServerURL(),
		PreambleStyle: e.cfg.PreambleStyle,
		Checksum:      e.Checksum(),
		CACertsBytes:  len(pki.CACertsServed(e.cfg.CACerts)),
		Seq:           e.Seq(),
	}
}

// ControlClient talks to an emulator's control API.
type ControlClient struct {
	accesslog.Client
}

// NewControlClient returns a client for the control listener at baseURL
// (e.g. "http://127.0.0.1:9090"); hc may be nil.
func NewControlClient(baseURL string, hc *http.Client) *ControlClient {
	return &ControlClient{Client: accesslog.Client{BaseURL: baseURL, HTTP: hc}}
}

// Registrations returns the registrations after since for token name ("" for all).
func (c *ControlClient) Registrations(ctx context.Context, name string, since uint64) (RegistrationList, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	q.Set("since", strconv.FormatUint(since, 10))
	var out RegistrationList
	err := c.Do(ctx, http.MethodGet, PathRegistrations+"?"+q.Encode(), nil, &out)
	return out, err
}

// AgentTLSMode reads agent-tls-mode.
func (c *ControlClient) AgentTLSMode(ctx context.Context) (string, error) {
	var v SettingValue
	err := c.Do(ctx, http.MethodGet, PathAgentTLSMode, nil, &v)
	return v.Value, err
}

// SetAgentTLSMode changes agent-tls-mode.
func (c *ControlClient) SetAgentTLSMode(ctx context.Context, mode string) error {
	return c.Do(ctx, http.MethodPut, PathAgentTLSMode, SettingValue{Value: mode}, nil)
}

// Info reads the effective configuration.
func (c *ControlClient) Info(ctx context.Context) (Info, error) {
	var v Info
	err := c.Do(ctx, http.MethodGet, PathInfo, nil, &v)
	return v, err
}
