// Package emulator serves Rancher's node-registration surface (reference/contract.md, sections
// 1.1 and 2) so the real system-agent install script can run against it: /cacerts,
// /v3/settings/cacerts, /system-agent-install.sh with Rancher's preamble, /assets/, /healthz,
// /ping and /v3/connect/agent with token auth. It records every request and every registration
// and exposes both, plus the agent-tls-mode switch, on a separate harness-private control API.
package emulator

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agenttls/agenttls/harness/emulator/accesslog"
	"github.com/agenttls/agenttls/harness/pki"
)

// Values of the agent-tls-mode setting.
const (
	ModeStrict      = "strict"
	ModeSystemStore = "system-store"
)

// ParseAgentTLSMode checks mode is a value Rancher accepts.
func ParseAgentTLSMode(mode string) (string, error) {
	switch mode {
	case ModeStrict, ModeSystemStore:
		return mode, nil
	}
	return "", fmt.Errorf("unknown agent-tls-mode %q: use %q or %q", mode, ModeStrict, ModeSystemStore)
}

// Asset names the install script downloads from /assets/.
const (
	AssetAgentAMD64     = "rancher-system-agent-amd64"
	AssetAgentARM64     = "rancher-system-agent-arm64"
	AssetUninstall      = "system-agent-uninstall.sh"
	AssetInstallScript  = "system-agent-install.sh"
	DefaultNamespace    = "fleet-default"
	DefaultPreambleMode = StyleExport
)

// Config is the emulated Rancher. Only TokenSecret is required.
type Config struct {
	// CACerts is the cacerts setting, byte for byte as Rancher stores it (LoadTLS and
	// pki.Setting give it from a file). Empty means --no-cacerts.
	CACerts []byte
	// AgentTLSMode is the initial agent-tls-mode (default strict, as on fresh 2.9+ installs).
	AgentTLSMode string
	// ServerURL is the server-url setting, e.g. "https://rancher.agenttls.test". Empty: the
	// script preamble and the connection kubeconfig are built from the request's Host.
	ServerURL string
	// InstallScript is the raw system-agent install.sh. Without it /system-agent-install.sh
	// answers 500, as Rancher does when it cannot get the script.
	InstallScript []byte
	// AssetsDir holds the files served under /assets/ (rancher-system-agent-amd64,
	// system-agent-uninstall.sh, ...). InstallScript is served as system-agent-install.sh when
	// the directory has no such file.
	AssetsDir string
	// PreambleStyle picks the STRICT_VERIFY line format (default StyleExport).
	PreambleStyle PreambleStyle
	// TokenSecret keys the registration tokens; see CellToken.
	TokenSecret string
	// BootstrapPassword is the admin password of the admin surface's login (Rancher's
	// CATTLE_BOOTSTRAP_PASSWORD). Empty: every login is refused.
	BootstrapPassword string
	// NoAgentTLSModeSetting emulates a Rancher older than v2.8.6, which has no agent-tls-mode
	// setting: the admin surface answers 404 for it and the mode stays AgentTLSMode.
	NoAgentTLSModeSetting bool
	// TokenPlaceholder makes the registration tokens of the admin surface carry "{token}" in
	// their commands and keep the token in a secret, as raw reads of newer Rancher versions do.
	TokenPlaceholder bool
	// AccessLog, when set, receives one JSON line per request.
	AccessLog io.Writer
	// Now is the clock for records (default time.Now).
	Now func() time.Time
}

// Emulator is one emulated Rancher. Its handlers are safe for concurrent use.
type Emulator struct {
	cfg Config
	log *accesslog.Log

	mu            sync.Mutex
	agentTLSMode  string // the mode when there is no agent-tls-mode setting
	registrations []Registration
	admin         *admin
}

// New validates cfg and returns the emulator.
func New(cfg Config) (*Emulator, error) {
	if cfg.TokenSecret == "" {
		return nil, errors.New("emulator: a token secret is required to check registration tokens; set Config.TokenSecret (flag --token-secret)")
	}
	if cfg.AgentTLSMode == "" {
		cfg.AgentTLSMode = ModeStrict
	}
	if _, err := ParseAgentTLSMode(cfg.AgentTLSMode); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	if cfg.PreambleStyle == "" {
		cfg.PreambleStyle = DefaultPreambleMode
	}
	if _, err := ParsePreambleStyle(string(cfg.PreambleStyle)); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	cfg.ServerURL = strings.TrimRight(cfg.ServerURL, "/")
	if cfg.ServerURL != "" && !strings.HasPrefix(cfg.ServerURL, "https://") {
		return nil, fmt.Errorf("emulator: server-url %q must start with https://", cfg.ServerURL)
	}
	if cfg.AssetsDir != "" {
		fi, err := os.Stat(cfg.AssetsDir)
		if err != nil {
			return nil, fmt.Errorf("emulator: assets dir: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("emulator: assets dir %q is not a directory", cfg.AssetsDir)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.CACerts = append([]byte{}, cfg.CACerts...)
	cfg.InstallScript = append([]byte(nil), cfg.InstallScript...)
	return &Emulator{cfg: cfg, log: accesslog.New(cfg.AccessLog), agentTLSMode: cfg.AgentTLSMode, admin: newAdmin(cfg)}, nil
}

// AgentTLSMode returns the effective agent-tls-mode.
func (e *Emulator) AgentTLSMode() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.admin.settings[SettingAgentTLSMode]; ok {
		return s.effective()
	}
	return e.agentTLSMode
}

// SetAgentTLSMode changes agent-tls-mode without the admin surface's rules (the harness-private
// control API uses it); the next served script reflects it.
func (e *Emulator) SetAgentTLSMode(mode string) error {
	if _, err := ParseAgentTLSMode(mode); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.admin.settings[SettingAgentTLSMode]; ok {
		next := *s
		next.value = mode
		e.admin.put(SettingAgentTLSMode, &next)
		return nil
	}
	e.agentTLSMode = mode
	return nil
}

// Checksum is the CA checksum the emulator embeds in its script ("" without cacerts).
func (e *Emulator) Checksum() string { return pki.Checksum(e.cfg.CACerts) }

// Seq is the last sequence number given to a request or registration.
func (e *Emulator) Seq() uint64 { return e.log.Seq() }

// Requests returns the public listeners' access log entries after since, from client ("": all).
func (e *Emulator) Requests(client string, since uint64) accesslog.RequestList {
	return e.log.Requests(client, since)
}

// Handler is the public HTTPS surface.
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/cacerts", e.serveCACerts)
	mux.HandleFunc("GET /v3/settings/cacerts", e.serveCACertsSetting)
	mux.HandleFunc("GET /system-agent-install.sh", e.serveInstallScript)
	mux.HandleFunc("GET /healthz", serveText("ok"))
	mux.HandleFunc("GET /ping", serveText("pong"))
	mux.HandleFunc("/assets/", e.serveAsset)
	mux.HandleFunc("/v3/connect/agent", e.serveConnectAgent)
	e.registerAdmin(mux)
	return e.log.Wrap(mux)
}

// HTTPHandler is for a plain-HTTP listener: /ping, /healthz and /cacerts answer as on HTTPS,
// every other path is redirected to https on the same host.
func (e *Emulator) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/cacerts", e.serveCACerts)
	mux.HandleFunc("GET /healthz", serveText("ok"))
	mux.HandleFunc("GET /ping", serveText("pong"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+hostOnly(r.Host)+r.URL.RequestURI(), http.StatusFound)
	})
	return e.log.Wrap(mux)
}

func (e *Emulator) serveCACerts(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(pki.CACertsServed(e.cfg.CACerts))
}

// cacertsSetting is the subset of Rancher's v3 setting object the scripts read.
type cacertsSetting struct {
	BaseType string `json:"baseType"`
	Type     string `json:"type"`
	ID       string `json:"id"`
	Name     string `json:"name"`
	Value    string `json:"value"`
	Default  string `json:"default"`
}

func (e *Emulator) serveCACertsSetting(w http.ResponseWriter, r *http.Request) {
	accesslog.WriteJSON(w, http.StatusOK, cacertsSetting{
		BaseType: "setting", Type: "setting", ID: "cacerts", Name: "cacerts", Value: string(e.cfg.CACerts),
	})
}

func (e *Emulator) serveInstallScript(w http.ResponseWriter, r *http.Request) {
	if len(e.cfg.InstallScript) == 0 {
		http.Error(w, "agenttls emulator: no install script configured (flag --install-script)", http.StatusInternalServerError)
		return
	}
	p := Preamble{
		Style:     e.cfg.PreambleStyle,
		Strict:    e.AgentTLSMode() == ModeStrict,
		ServerURL: e.ServerURL(),
		Host:      r.Host,
		Checksum:  e.Checksum(),
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(p.Render(e.cfg.InstallScript))
}

// assetIndex stands in for the UI page Rancher answers with (status 200) for an unknown asset.
const assetIndex = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>agenttls emulator</title></head>
<body><p>agenttls emulator: no such asset. Rancher answers unknown asset paths with its UI page and status 200; this page stands in for it.</p></body></html>
`

func (e *Emulator) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/assets/")
	if name != "" && !strings.ContainsAny(name, `/\`) && name != "." && name != ".." {
		if e.cfg.AssetsDir != "" {
			f, err := os.Open(filepath.Join(e.cfg.AssetsDir, name))
			if err == nil {
				defer f.Close()
				if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
					accesslog.Annotate(r.Context(), "asset")
					http.ServeContent(w, r, name, fi.ModTime(), f)
					return
				}
			}
		}
		if name == AssetInstallScript && len(e.cfg.InstallScript) > 0 {
			accesslog.Annotate(r.Context(), "asset")
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(e.cfg.InstallScript)
			return
		}
	}
	accesslog.Annotate(r.Context(), "asset-missing")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, assetIndex)
}

func serveText(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, body)
	}
}

func hostOnly(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		return hostport[:i]
	}
	return hostport
}
