// Package rancher drives a Rancher for the Rancher tier: an admin API client (log in with the
// bootstrap password, set server-url, read and switch agent-tls-mode, create a custom cluster,
// read its registration command, find the machine a node registered) and Run, which starts the
// rancher/rancher image in Docker with the harness's certificates.
//
// The client speaks only Rancher's public API shapes (reference/rancher-api.md, section 2), so it
// works the same against a real Rancher and against the agenttls emulator, which serves those
// calls too; the emulator is how the client is tested on every CI run.
package rancher

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Values of the agent-tls-mode setting.
const (
	ModeStrict      = "strict"
	ModeSystemStore = "system-store"
)

// Names the client relies on.
const (
	SettingServerURL    = "server-url"
	SettingAgentTLSMode = "agent-tls-mode"
	SettingRKE2Default  = "rke2-default-version"
	// AnnotationForce on a setting lets a change through the webhook's strict-switch rule.
	AnnotationForce = "cattle.io/force"
	// LabelMachineID is the machine label that holds a node's CATTLE_ID.
	LabelMachineID = "rke.cattle.io/machine-id"
	// Namespace is where v2prov custom clusters and their machines live.
	Namespace = "fleet-default"
	// TokenPlaceholder stands for the token in commands stored by newer Rancher versions.
	TokenPlaceholder = "{token}"
)

var (
	// ErrUnreachable: no HTTP answer from Rancher at all.
	ErrUnreachable = errors.New("rancher unreachable")
	// ErrLoginRefused: Rancher refused the admin credentials.
	ErrLoginRefused = errors.New("rancher refused the admin login")
	// ErrNotLoggedIn: a call that needs a token was made before Login.
	ErrNotLoggedIn = errors.New("not logged in to rancher")
	// ErrNoAgentTLSMode: this Rancher version has no agent-tls-mode setting (before v2.8.6).
	ErrNoAgentTLSMode = errors.New("rancher has no agent-tls-mode setting")
	// ErrRefused: Rancher (or its admission webhook) refused a change.
	ErrRefused = errors.New("rancher refused the change")
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("not found")
)

// APIError is a non-success answer of Rancher's API.
type APIError struct {
	Method, Path string
	Status       int
	Code         string
	Message      string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	code := ""
	if e.Code != "" {
		code = " " + e.Code
	}
	return fmt.Sprintf("%s %s: HTTP %d%s: %s", e.Method, e.Path, e.Status, code, msg)
}

// Is maps statuses to the package's sentinel errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrRefused:
		return e.Status == http.StatusBadRequest || e.Status == http.StatusForbidden ||
			e.Status == http.StatusMethodNotAllowed || e.Status == http.StatusUnprocessableEntity
	}
	return false
}

// Client is an admin API client for one Rancher. It is safe for concurrent use once logged in.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
	every time.Duration
}

type clientOptions struct {
	roots      *x509.CertPool
	serverName string
	insecure   bool
	hc         *http.Client
	token      string
	poll       time.Duration
	timeout    time.Duration
}

// ClientOption configures NewClient.
type ClientOption func(*clientOptions) error

// WithRootCAs verifies Rancher's certificate against pool (the private CA, or the public root
// the nodes trust). Without it the system trust store is used.
func WithRootCAs(pool *x509.CertPool) ClientOption {
	return func(o *clientOptions) error {
		if pool == nil {
			return errors.New("WithRootCAs: nil pool")
		}
		o.roots = pool
		return nil
	}
}

// WithServerName verifies Rancher's certificate for name instead of the URL's host (for a
// Rancher reached through a published port whose certificate names only its hostname).
func WithServerName(name string) ClientOption {
	return func(o *clientOptions) error { o.serverName = name; return nil }
}

// WithInsecure skips verification of Rancher's certificate. For debugging an existing Rancher
// only; the harness always verifies.
func WithInsecure() ClientOption {
	return func(o *clientOptions) error { o.insecure = true; return nil }
}

// WithHTTPClient replaces the HTTP client (its TLS settings then are the caller's).
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(o *clientOptions) error {
		if hc == nil {
			return errors.New("WithHTTPClient: nil client")
		}
		o.hc = hc
		return nil
	}
}

// WithToken uses an existing API token instead of logging in.
func WithToken(token string) ClientOption {
	return func(o *clientOptions) error { o.token = token; return nil }
}

// WithPollInterval sets how often waits ask again (default 2s).
func WithPollInterval(d time.Duration) ClientOption {
	return func(o *clientOptions) error {
		if d <= 0 {
			return errors.New("WithPollInterval: the interval must be positive")
		}
		o.poll = d
		return nil
	}
}

// WithRequestTimeout bounds each single request (default 30s; waits are bounded by their ctx).
func WithRequestTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) error {
		if d <= 0 {
			return errors.New("WithRequestTimeout: the timeout must be positive")
		}
		o.timeout = d
		return nil
	}
}

// NewClient returns a client for the Rancher at baseURL (e.g. https://127.0.0.1:32768).
func NewClient(baseURL string, opts ...ClientOption) (*Client, error) {
	o := clientOptions{poll: 2 * time.Second, timeout: 30 * time.Second}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("rancher client: %w", err)
		}
	}
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("rancher client: %q is not an https URL such as https://rancher.example.test", baseURL)
	}
	hc := o.hc
	if hc == nil {
		tr := &http.Transport{
			Proxy:               nil, // the harness talks to its own containers only
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSClientConfig:     &tls.Config{RootCAs: o.roots, ServerName: o.serverName, InsecureSkipVerify: o.insecure}, //nolint:gosec // opt-in debugging only
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 8,
		}
		hc = &http.Client{Transport: tr, Timeout: o.timeout}
	}
	return &Client{base: u, hc: hc, token: o.token, every: o.poll}, nil
}

// URL is the base URL the client talks to.
func (c *Client) URL() string { return c.base.String() }

// Token is the API token of the login ("" before Login).
func (c *Client) Token() string { return c.token }

// HTTPClient is the client's HTTP client (it verifies Rancher's certificate as configured).
func (c *Client) HTTPClient() *http.Client { return c.hc }

// do sends a request and decodes a JSON answer into out. Statuses other than 2xx are *APIError.
func (c *Client) do(ctx context.Context, method, path string, auth bool, hdr http.Header, body, out any) error {
	if auth && c.token == "" {
		return fmt.Errorf("%s %s: %w: call Login first", method, path, ErrNotLoggedIn)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			var cerr *tls.CertificateVerificationError
			if errors.As(err, &cerr) {
				return fmt.Errorf("%s %s: Rancher's certificate is not trusted: %w; give the client its CA (WithRootCAs)", method, path, err)
			}
		}
		return fmt.Errorf("%s %s: %w at %s: %w; check that Rancher runs and that its HTTPS port is published there", method, path, ErrUnreachable, c.base.Host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &APIError{Method: method, Path: path, Status: resp.StatusCode}
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &e) == nil && (e.Message != "" || e.Code != "") {
			ae.Code, ae.Message = e.Code, e.Message
		} else {
			ae.Message = strings.TrimSpace(string(b))
			if len(ae.Message) > 300 {
				ae.Message = ae.Message[:300] + "..."
			}
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: the answer is not the JSON expected (%w); is this a Rancher?", method, path, err)
		}
	}
	return nil
}

// Login logs in as admin with password (the bootstrap password on a new Rancher) and keeps the
// API token for the following calls.
func (c *Client) Login(ctx context.Context, password string) error {
	const path = "/v3-public/localProviders/local?action=login"
	var out struct {
		Token string `json:"token"`
	}
	err := c.do(ctx, http.MethodPost, path, false, nil,
		map[string]string{"username": "admin", "password": password, "responseType": "json"}, &out)
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
		return fmt.Errorf("log in to %s as admin: %w (%v); check the bootstrap password (CATTLE_BOOTSTRAP_PASSWORD); "+
			"it only counts on Rancher's first start, later the password stored then or changed since is needed", c.base.Host, ErrLoginRefused, err)
	}
	if err != nil {
		return fmt.Errorf("log in to %s as admin: %w", c.base.Host, err)
	}
	if out.Token == "" {
		return fmt.Errorf("log in to %s as admin: the answer has no token; is this a Rancher?", c.base.Host)
	}
	c.token = out.Token
	return nil
}

// Setting is a setting as the v3 API shows it.
type Setting struct {
	Name    string `json:"name"`
	Value   string `json:"value"` // the effective value: the default when none was set
	Default string `json:"default"`
	Source  string `json:"source"`
}

// Setting reads a setting through the v3 API.
func (c *Client) Setting(ctx context.Context, name string) (Setting, error) {
	var s Setting
	if err := c.do(ctx, http.MethodGet, "/v3/settings/"+url.PathEscape(name), true, nil, nil, &s); err != nil {
		return Setting{}, fmt.Errorf("read setting %s: %w", name, err)
	}
	if s.Value == "" {
		s.Value = s.Default
	}
	return s, nil
}

// SetSetting changes a setting's value through the v3 API.
func (c *Client) SetSetting(ctx context.Context, name, value string) error {
	if err := c.do(ctx, http.MethodPut, "/v3/settings/"+url.PathEscape(name), true, nil, map[string]string{"value": value}, nil); err != nil {
		return fmt.Errorf("set %s to %q: %w", name, value, err)
	}
	return nil
}

// ServerURL reads server-url ("" while unset).
func (c *Client) ServerURL(ctx context.Context) (string, error) {
	s, err := c.Setting(ctx, SettingServerURL)
	return s.Value, err
}

// SetServerURL sets server-url. Do it before creating clusters: without it Rancher gives
// registration tokens no commands.
func (c *Client) SetServerURL(ctx context.Context, serverURL string) error {
	if !strings.HasPrefix(serverURL, "https://") {
		return fmt.Errorf("server-url %q: use the https:// URL nodes reach Rancher at", serverURL)
	}
	return c.SetSetting(ctx, SettingServerURL, strings.TrimRight(serverURL, "/"))
}

func noTLSMode(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w (%v): it exists from Rancher v2.8.6 and v2.9.0 on; on older versions the mode axis has no effect", ErrNoAgentTLSMode, err)
	}
	return err
}

// AgentTLSMode reads the effective agent-tls-mode. On a Rancher without the setting the error
// is ErrNoAgentTLSMode.
func (c *Client) AgentTLSMode(ctx context.Context) (string, error) {
	s, err := c.Setting(ctx, SettingAgentTLSMode)
	if err != nil {
		return "", noTLSMode(err)
	}
	return s.Value, nil
}

func checkMode(mode string) error {
	if mode != ModeStrict && mode != ModeSystemStore {
		return fmt.Errorf("agent-tls-mode %q: use %q or %q", mode, ModeStrict, ModeSystemStore)
	}
	return nil
}

// SetAgentTLSMode switches agent-tls-mode through the v3 API, as a user does in the UI. Rancher's
// webhook refuses a switch from system-store to strict while some cluster's agents have not
// proved they hold the CA (always the case for the harness's custom clusters): the error then
// matches ErrRefused; use ForceAgentTLSMode.
func (c *Client) SetAgentTLSMode(ctx context.Context, mode string) error {
	if err := checkMode(mode); err != nil {
		return err
	}
	if err := c.SetSetting(ctx, SettingAgentTLSMode, mode); err != nil {
		return noTLSMode(err)
	}
	return nil
}

// v1Setting is the part of the steve Setting object the client changes; the rest is kept as it
// came.
type v1Setting map[string]any

// ForceAgentTLSMode switches agent-tls-mode through the v1 API with the annotation
// cattle.io/force: "true" on the new object, which lets the switch back to strict through the
// webhook. It reads the object first and retries when it changed in between.
func (c *Client) ForceAgentTLSMode(ctx context.Context, mode string) error {
	if err := checkMode(mode); err != nil {
		return err
	}
	path := "/v1/management.cattle.io.settings/" + SettingAgentTLSMode
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		var obj v1Setting
		if err := c.do(ctx, http.MethodGet, path, true, nil, nil, &obj); err != nil {
			return fmt.Errorf("force agent-tls-mode %s: %w", mode, noTLSMode(err))
		}
		md, _ := obj["metadata"].(map[string]any)
		if md == nil {
			return fmt.Errorf("force agent-tls-mode %s: the setting object has no metadata; is this a Rancher?", mode)
		}
		ann, _ := md["annotations"].(map[string]any)
		if ann == nil {
			ann = map[string]any{}
		}
		ann[AnnotationForce] = "true"
		md["annotations"] = ann
		obj["value"] = mode
		err := c.do(ctx, http.MethodPut, path, true, nil, obj, nil)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			last = err
			continue
		}
		if err != nil {
			return fmt.Errorf("force agent-tls-mode %s: %w", mode, err)
		}
		return nil
	}
	return fmt.Errorf("force agent-tls-mode %s: the setting kept changing under us: %w", mode, last)
}

// SwitchAgentTLSMode makes agent-tls-mode mode: a plain switch, and the forced one when the
// webhook refuses it. forced says which one it took.
func (c *Client) SwitchAgentTLSMode(ctx context.Context, mode string) (forced bool, err error) {
	cur, err := c.AgentTLSMode(ctx)
	if err != nil {
		return false, err
	}
	if cur == mode {
		return false, nil
	}
	err = c.SetAgentTLSMode(ctx, mode)
	if errors.Is(err, ErrRefused) {
		return true, c.ForceAgentTLSMode(ctx, mode)
	}
	return false, err
}

// Cluster is a v2prov cluster.
type Cluster struct {
	Name, Namespace string
	// ID is the management cluster id (c-m-xxxxxxxx), the namespace of its registration token.
	ID string
}

type clusterObject struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Status struct {
		ClusterName string `json:"clusterName"`
	} `json:"status"`
}

// CreateCustomCluster creates a v2prov custom cluster (no machine pools: nodes join with the
// registration command) in fleet-default and waits, bounded by ctx, until Rancher has given it
// a management cluster id. k8sVersion "" takes the setting rke2-default-version.
func (c *Client) CreateCustomCluster(ctx context.Context, name, k8sVersion string) (*Cluster, error) {
	if k8sVersion == "" {
		s, err := c.Setting(ctx, SettingRKE2Default)
		if err != nil {
			return nil, fmt.Errorf("create cluster %s: no Kubernetes version given and %w", name, err)
		}
		k8sVersion = s.Value
	}
	body := map[string]any{
		"type":     "provisioning.cattle.io.cluster",
		"metadata": map[string]string{"namespace": Namespace, "name": name},
		"spec":     map[string]any{"kubernetesVersion": k8sVersion, "rkeConfig": map[string]any{}},
	}
	if err := c.do(ctx, http.MethodPost, "/v1/provisioning.cattle.io.clusters", true, nil, body, nil); err != nil {
		return nil, fmt.Errorf("create cluster %s: %w", name, err)
	}
	cl := &Cluster{Name: name, Namespace: Namespace}
	err := c.poll(ctx, func() (bool, error) {
		var o clusterObject
		if err := c.do(ctx, http.MethodGet, "/v1/provisioning.cattle.io.clusters/"+Namespace+"/"+url.PathEscape(name), true, nil, nil, &o); err != nil {
			return false, err
		}
		cl.ID = o.Status.ClusterName
		return cl.ID != "", nil
	})
	if err != nil {
		return cl, fmt.Errorf("cluster %s has no management cluster id yet: %w", name, err)
	}
	return cl, nil
}

// DeleteCluster deletes a v2prov cluster.
func (c *Client) DeleteCluster(ctx context.Context, cl *Cluster) error {
	err := c.do(ctx, http.MethodDelete, "/v1/provisioning.cattle.io.clusters/"+cl.Namespace+"/"+url.PathEscape(cl.Name), true, nil, nil, nil)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete cluster %s: %w", cl.Name, err)
	}
	return nil
}

// RegistrationToken is what a node needs to join a custom cluster.
type RegistrationToken struct {
	ClusterID string
	Token     string
	// NodeCommand is Rancher's registration command (curl ... | sudo sh -s - --server ...), with
	// the token in place. InsecureNodeCommand only adds --insecure to the download.
	NodeCommand         string
	InsecureNodeCommand string
}

type crtObject struct {
	Token               string `json:"token"`
	NodeCommand         string `json:"nodeCommand"`
	InsecureNodeCommand string `json:"insecureNodeCommand"`
	TokenSecretName     string `json:"tokenSecretName"`
}

// RegistrationToken reads the registration token of cluster id (c-m-...), waiting, bounded by
// ctx, until Rancher has rendered its commands (it renders none while server-url is unset). A
// "{token}" placeholder left in the commands is replaced with the token, read from the
// token's secret when the object does not carry it.
func (c *Client) RegistrationToken(ctx context.Context, clusterID string) (*RegistrationToken, error) {
	var crt crtObject
	err := c.poll(ctx, func() (bool, error) {
		var list struct {
			Data []crtObject `json:"data"`
		}
		if err := c.do(ctx, http.MethodGet, "/v3/clusterregistrationtokens?clusterId="+url.QueryEscape(clusterID), true, nil, nil, &list); err != nil {
			return false, err
		}
		for _, d := range list.Data {
			if d.NodeCommand != "" {
				crt = d
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		hint := ""
		if u, _ := c.ServerURL(context.WithoutCancel(ctx)); u == "" {
			hint = "; server-url is not set, and Rancher renders no command without it"
		}
		return nil, fmt.Errorf("registration command of cluster %s: %w%s", clusterID, err, hint)
	}
	rt := &RegistrationToken{ClusterID: clusterID, Token: crt.Token, NodeCommand: crt.NodeCommand, InsecureNodeCommand: crt.InsecureNodeCommand}
	if rt.Token == TokenPlaceholder {
		rt.Token = ""
	}
	if strings.Contains(rt.NodeCommand, TokenPlaceholder) || rt.Token == "" {
		if rt.Token == "" {
			if crt.TokenSecretName == "" {
				return nil, fmt.Errorf("registration command of cluster %s carries %s but neither the token nor its secret's name", clusterID, TokenPlaceholder)
			}
			tok, err := c.secretValue(ctx, clusterID, crt.TokenSecretName, "token")
			if err != nil {
				return nil, fmt.Errorf("registration token of cluster %s: %w", clusterID, err)
			}
			rt.Token = tok
		}
		rt.NodeCommand = strings.ReplaceAll(rt.NodeCommand, TokenPlaceholder, rt.Token)
		rt.InsecureNodeCommand = strings.ReplaceAll(rt.InsecureNodeCommand, TokenPlaceholder, rt.Token)
	}
	return rt, nil
}

func (c *Client) secretValue(ctx context.Context, ns, name, key string) (string, error) {
	var s struct {
		Data map[string]string `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/secrets/"+url.PathEscape(ns)+"/"+url.PathEscape(name), true, nil, nil, &s); err != nil {
		return "", fmt.Errorf("read secret %s/%s: %w", ns, name, err)
	}
	v, ok := s.Data[key]
	if !ok {
		return "", fmt.Errorf("secret %s/%s has no key %q", ns, name, key)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", fmt.Errorf("secret %s/%s key %s: %w", ns, name, key, err)
	}
	return string(b), nil
}

// Machine is a CAPI machine Rancher created for a registered node.
type Machine struct {
	Name, Namespace string
	Labels          map[string]string
	// Cluster is the provisioning cluster it belongs to.
	Cluster string
	Phase   string
}

// Machines lists the machines of the node whose CATTLE_ID is cattleID (none, normally one).
func (c *Client) Machines(ctx context.Context, cattleID string) ([]Machine, error) {
	q := url.Values{"labelSelector": {LabelMachineID + "=" + cattleID}}
	var list struct {
		Data []struct {
			Metadata struct {
				Name      string            `json:"name"`
				Namespace string            `json:"namespace"`
				Labels    map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				ClusterName string `json:"clusterName"`
			} `json:"spec"`
			Status struct {
				Phase string `json:"phase"`
			} `json:"status"`
		} `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/cluster.x-k8s.io.machines/"+Namespace+"?"+q.Encode(), true, nil, nil, &list); err != nil {
		return nil, fmt.Errorf("machines of node %s: %w", cattleID, err)
	}
	var out []Machine
	for _, d := range list.Data {
		if d.Metadata.Labels[LabelMachineID] != cattleID {
			continue // a server that ignored the selector
		}
		out = append(out, Machine{Name: d.Metadata.Name, Namespace: d.Metadata.Namespace, Labels: d.Metadata.Labels,
			Cluster: d.Spec.ClusterName, Phase: d.Status.Phase})
	}
	return out, nil
}

// WaitMachine waits, bounded by ctx, until Rancher shows a machine for cattleID.
func (c *Client) WaitMachine(ctx context.Context, cattleID string) (*Machine, error) {
	var m *Machine
	err := c.poll(ctx, func() (bool, error) {
		ms, err := c.Machines(ctx, cattleID)
		if err != nil || len(ms) == 0 {
			return false, err
		}
		m = &ms[0]
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("no machine for node %s: %w", cattleID, err)
	}
	return m, nil
}

// Connect makes the registration call a node's install script makes (GET /v3/connect/agent
// with the registration token and the node's CATTLE_ID, as a worker) and returns the status.
// Rancher creates the node's machine when it answers 200. The harness uses it to learn when
// Rancher is ready to register nodes (2.13+ answers 503 until CAPI runs, older versions 401
// while their caches fill).
func (c *Client) Connect(ctx context.Context, token, cattleID string) (int, error) {
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+token)
	hdr.Set("X-Cattle-Id", cattleID)
	hdr.Set("X-Cattle-Role-Worker", "true")
	hdr.Set("X-Cattle-Node-Name", cattleID)
	err := c.do(ctx, http.MethodGet, "/v3/connect/agent", false, hdr, nil, nil)
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status, err
	}
	if err != nil {
		return 0, err
	}
	return http.StatusOK, nil
}

// WaitRegistrationReady waits, bounded by ctx, until Rancher accepts registrations with token:
// a Connect for probeID answers 200. It leaves a machine for probeID behind.
func (c *Client) WaitRegistrationReady(ctx context.Context, token, probeID string) error {
	var last error
	err := c.poll(ctx, func() (bool, error) {
		_, err := c.Connect(ctx, token, probeID)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, ErrUnreachable) {
			return false, err
		}
		last = err
		return false, nil
	})
	if err != nil {
		if last != nil {
			return fmt.Errorf("rancher does not accept registrations yet (last answer: %v): %w", last, err)
		}
		return fmt.Errorf("rancher does not accept registrations yet: %w", err)
	}
	return nil
}

// poll calls f until it reports done, fails with a non-transient error, or ctx ends. Transient
// errors (unreachable, 5xx, 404 while objects appear) are retried; the last one is reported.
func (c *Client) poll(ctx context.Context, f func() (bool, error)) error {
	var last error
	for {
		done, err := f()
		if err == nil && done {
			return nil
		}
		if err != nil {
			if !transient(err) {
				return err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(c.every):
		}
	}
}

func transient(err error) bool {
	if errors.Is(err, ErrUnreachable) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusNotFound || ae.Status == http.StatusConflict || ae.Status == http.StatusTooManyRequests
	}
	return false
}
