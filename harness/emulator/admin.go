package emulator

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agenttls/agenttls/harness/command"
	"github.com/agenttls/agenttls/harness/emulator/accesslog"
)

// The admin surface: the calls a harness makes to drive a Rancher, in the shapes Rancher's API
// answers them (reference/rancher-api.md, section 2), so that one client works against the
// emulator and against a real Rancher:
//
//	POST /v3-public/localProviders/local?action=login              log in with the bootstrap password
//	GET|PUT /v3/settings/<name>                                    norman view of a setting
//	GET|PUT /v1/management.cattle.io.settings/<name>               steve view (metadata, resourceVersion)
//	POST|GET /v1/provisioning.cattle.io.clusters[/<ns>/<name>]     v2prov custom clusters (and DELETE)
//	GET /v3/clusterregistrationtokens?clusterId=<c-m-...>          nodeCommand / insecureNodeCommand
//	GET /v1/secrets/<c-m-...>/<name>                               the token secret (placeholder mode)
//	GET /v1/cluster.x-k8s.io.machines/<ns>?labelSelector=k=v       machines created by /v3/connect/agent
//
// Everything but login needs "Authorization: Bearer <login token>". Switching agent-tls-mode
// from system-store to strict is refused while a cluster exists, as Rancher's admission webhook
// refuses it for clusters whose agents never reported a valid CA, unless the new object carries
// the annotation cattle.io/force: "true".

// Names the admin surface uses.
const (
	SettingServerURL    = "server-url"
	SettingAgentTLSMode = "agent-tls-mode"
	SettingCACerts      = "cacerts"
	SettingRKE2Default  = "rke2-default-version"

	// AnnotationForce lets a setting change through the strict-switch rule.
	AnnotationForce = "cattle.io/force"
	// LabelMachineID is the machine label holding the node's CATTLE_ID.
	LabelMachineID = "rke.cattle.io/machine-id"
	// LabelClusterName is the machine label holding the provisioning cluster's name.
	LabelClusterName = "cluster.x-k8s.io/cluster-name"
	// TokenPlaceholder stands for the registration token in commands stored by newer Rancher
	// versions; the API normally substitutes it.
	TokenPlaceholder = "{token}"

	// rke2DefaultVersion is what the emulator answers for rke2-default-version.
	rke2DefaultVersion = "v1.33.5+rke2r1"
)

// setting is one stored setting.
type setting struct {
	value, def  string
	readOnly    bool
	annotations map[string]string
	rv          uint64
}

func (s *setting) effective() string {
	if s.value != "" {
		return s.value
	}
	return s.def
}

// cluster is one provisioning cluster and its default registration token.
type cluster struct {
	name, namespace string
	id              string // the management cluster id, c-m-xxxxxxxx
	spec            json.RawMessage
	created         time.Time
	rv              uint64
	token           string
	tokenSecret     string
}

// machine is one machine created by a /v3/connect/agent call with a cluster's token.
type machine struct {
	name, namespace string
	cattleID        string
	cluster         string
	roles           []string
	created         time.Time
}

// admin is the state of the admin surface; guarded by Emulator.mu.
type admin struct {
	logins   map[string]bool // "token-xxxxx:key"
	settings map[string]*setting
	clusters map[string]*cluster // by namespace/name
	machines map[string]*machine // by CATTLE_ID
	rv       uint64
}

func newAdmin(cfg Config) *admin {
	a := &admin{logins: map[string]bool{}, settings: map[string]*setting{}, clusters: map[string]*cluster{}, machines: map[string]*machine{}}
	a.put(SettingServerURL, &setting{value: cfg.ServerURL})
	a.put(SettingCACerts, &setting{value: string(cfg.CACerts), readOnly: true})
	a.put(SettingRKE2Default, &setting{def: rke2DefaultVersion})
	if !cfg.NoAgentTLSModeSetting {
		// A fresh install: the value is empty and the default carries the mode.
		a.put(SettingAgentTLSMode, &setting{def: cfg.AgentTLSMode})
	}
	return a
}

func (a *admin) put(name string, s *setting) {
	a.rv++
	s.rv = a.rv
	if s.annotations == nil {
		s.annotations = map[string]string{}
	}
	a.settings[name] = s
}

// apiError writes an error in the shape Rancher's APIs use: {"type":"error","status":..,"code":..,"message":..}.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	accesslog.WriteJSON(w, status, map[string]any{
		"type": "error", "baseType": "error", "status": status, "code": code, "message": msg,
	})
}

func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// tokenAlphabet is the alphabet of Rancher's generated tokens (no vowels, no look-alikes).
const tokenAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func (e *Emulator) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /v3-public/localProviders/local", e.serveLogin)
	mux.HandleFunc("GET /v3/settings/{name}", e.authed(e.serveV3SettingGet))
	mux.HandleFunc("PUT /v3/settings/{name}", e.authed(e.serveV3SettingPut))
	mux.HandleFunc("GET /v1/management.cattle.io.settings/{name}", e.authed(e.serveV1SettingGet))
	mux.HandleFunc("PUT /v1/management.cattle.io.settings/{name}", e.authed(e.serveV1SettingPut))
	mux.HandleFunc("POST /v1/provisioning.cattle.io.clusters", e.authed(e.serveClusterCreate))
	mux.HandleFunc("GET /v1/provisioning.cattle.io.clusters", e.authed(e.serveClusterList))
	mux.HandleFunc("GET /v1/provisioning.cattle.io.clusters/{ns}/{name}", e.authed(e.serveClusterGet))
	mux.HandleFunc("DELETE /v1/provisioning.cattle.io.clusters/{ns}/{name}", e.authed(e.serveClusterDelete))
	mux.HandleFunc("GET /v3/clusterregistrationtokens", e.authed(e.serveCRTList))
	mux.HandleFunc("GET /v1/secrets/{ns}/{name}", e.authed(e.serveSecretGet))
	mux.HandleFunc("GET /v1/cluster.x-k8s.io.machines/{ns}", e.authed(e.serveMachineList))
}

// loginRequest is the body of the local provider's login action.
type loginRequest struct {
	Username     string `json:"username"`
	Password     string `json:"password"`
	ResponseType string `json:"responseType"`
}

func (e *Emulator) serveLogin(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("action") != "login" {
		apiError(w, http.StatusNotFound, "NotFound", "agenttls emulator: the local provider only has the action login")
		return
	}
	var req loginRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "InvalidBodyContent", "agenttls emulator: login body is not JSON: "+err.Error())
		return
	}
	if e.cfg.BootstrapPassword == "" || req.Username != "admin" || req.Password != e.cfg.BootstrapPassword {
		accesslog.Annotate(r.Context(), "login refused")
		apiError(w, http.StatusUnauthorized, "Unauthorized", "agenttls emulator: wrong username or password")
		return
	}
	name := "token-" + randomString(tokenAlphabet[:20], 5)
	token := name + ":" + randomString(tokenAlphabet, 54)
	e.mu.Lock()
	e.admin.logins[token] = true
	e.mu.Unlock()
	accesslog.Annotate(r.Context(), "login "+name)
	accesslog.WriteJSON(w, http.StatusCreated, map[string]any{
		"type": "token", "baseType": "token", "id": name, "name": name, "token": token,
		"authProvider": "local", "userId": "user-admin", "ttl": 57600000, "isDerived": false,
	})
}

// authed requires a token from a login.
func (e *Emulator) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		e.mu.Lock()
		valid := ok && e.admin.logins[strings.TrimSpace(tok)]
		e.mu.Unlock()
		if !valid {
			apiError(w, http.StatusUnauthorized, "Unauthorized", "agenttls emulator: log in first and send the token as Authorization: Bearer <token>")
			return
		}
		h(w, r)
	}
}

// v3Setting is the norman view of a setting.
func v3Setting(name string, s *setting) map[string]any {
	source := "db"
	if s.value == "" {
		source = "default"
	}
	return map[string]any{
		"type": "setting", "baseType": "setting", "id": name, "name": name,
		"value": s.effective(), "default": s.def, "source": source, "customized": s.value != "" && s.value != s.def,
		"annotations": s.annotations, "links": map[string]string{"self": "/v3/settings/" + name},
	}
}

// v1Setting is the steve view of a setting: the Setting object with top-level value and default.
func v1Setting(name string, s *setting) map[string]any {
	return map[string]any{
		"id": name, "type": "management.cattle.io.setting",
		"apiVersion": "management.cattle.io/v3", "kind": "Setting",
		"metadata": map[string]any{
			"name": name, "resourceVersion": strconv.FormatUint(s.rv, 10), "annotations": s.annotations,
		},
		"value": s.value, "default": s.def, "source": "",
	}
}

func (e *Emulator) serveV3SettingGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.admin.settings[name]
	if !ok {
		apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("agenttls emulator: no setting %q", name))
		return
	}
	accesslog.WriteJSON(w, http.StatusOK, v3Setting(name, s))
}

func (e *Emulator) serveV3SettingPut(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var body struct {
		Value *string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.Value == nil {
		apiError(w, http.StatusUnprocessableEntity, "InvalidBodyContent", `agenttls emulator: send {"value": "..."}`)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.admin.settings[name]
	if !ok {
		apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("agenttls emulator: no setting %q", name))
		return
	}
	next := *s
	next.value = *body.Value
	e.updateSetting(w, r, name, s, &next, v3Setting)
}

// updateSetting admits next in place of old (the rules Rancher enforces) and stores it, or
// answers with the refusal. Called with e.mu held.
func (e *Emulator) updateSetting(w http.ResponseWriter, r *http.Request, name string, old, next *setting,
	render func(string, *setting) map[string]any) {
	if code, msg := e.admitSetting(name, old, next); code != 0 {
		accesslog.Annotate(r.Context(), "setting refused")
		apiError(w, code, http.StatusText(code), msg)
		return
	}
	e.admin.put(name, next)
	accesslog.Annotate(r.Context(), fmt.Sprintf("setting %s=%q", name, next.value))
	accesslog.WriteJSON(w, http.StatusOK, render(name, next))
}

func (e *Emulator) serveV1SettingGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.admin.settings[name]
	if !ok {
		apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("agenttls emulator: settings.management.cattle.io %q not found", name))
		return
	}
	accesslog.WriteJSON(w, http.StatusOK, v1Setting(name, s))
}

func (e *Emulator) serveV1SettingPut(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var body struct {
		Metadata struct {
			Name            string            `json:"name"`
			ResourceVersion string            `json:"resourceVersion"`
			Annotations     map[string]string `json:"annotations"`
		} `json:"metadata"`
		Value   *string `json:"value"`
		Default *string `json:"default"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		apiError(w, http.StatusUnprocessableEntity, "InvalidBodyContent", "agenttls emulator: the body is not a Setting object: "+err.Error())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.admin.settings[name]
	if !ok {
		apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("agenttls emulator: settings.management.cattle.io %q not found", name))
		return
	}
	if body.Metadata.ResourceVersion != strconv.FormatUint(s.rv, 10) {
		apiError(w, http.StatusConflict, "Conflict", fmt.Sprintf("agenttls emulator: setting %q changed since resourceVersion %q (now %d): read it again and retry", name, body.Metadata.ResourceVersion, s.rv))
		return
	}
	next := *s
	if body.Value != nil {
		next.value = *body.Value
	}
	if body.Default != nil {
		next.def = *body.Default
	}
	next.annotations = map[string]string{}
	for k, v := range body.Metadata.Annotations {
		next.annotations[k] = v
	}
	e.updateSetting(w, r, name, s, &next, v1Setting)
}

// admitSetting applies the rules Rancher enforces on a setting update; 0 means allowed. Called
// with e.mu held.
func (e *Emulator) admitSetting(name string, old, next *setting) (int, string) {
	if old.readOnly && (next.value != old.value || next.def != old.def) {
		return http.StatusMethodNotAllowed, fmt.Sprintf("agenttls emulator: setting %s cannot be changed through the API", name)
	}
	switch name {
	case SettingAgentTLSMode:
		if _, err := ParseAgentTLSMode(next.effective()); err != nil {
			return http.StatusUnprocessableEntity, "agenttls emulator: " + err.Error()
		}
		if old.effective() == ModeSystemStore && next.effective() == ModeStrict && next.annotations[AnnotationForce] != "true" {
			for _, k := range sortedKeys(e.admin.clusters) {
				c := e.admin.clusters[k]
				return http.StatusForbidden, fmt.Sprintf("agenttls emulator: agent-tls-mode may not go from system-store to strict: "+
					"cluster %s has no AgentTlsStrictCheck=True condition (its agents never proved they hold the CA); "+
					"delete the cluster or set the annotation %s: \"true\" on the setting", c.id, AnnotationForce)
			}
		}
	case SettingServerURL:
		if v := next.value; v != "" && !strings.HasPrefix(v, "https://") {
			return http.StatusUnprocessableEntity, fmt.Sprintf("agenttls emulator: server-url %q must start with https://", v)
		}
	}
	return 0, ""
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// effectiveSetting returns a setting's effective value ("" when absent).
func (e *Emulator) effectiveSetting(name string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.admin.settings[name]
	if !ok {
		return "", false
	}
	return s.effective(), true
}

// ServerURL returns the effective server-url setting.
func (e *Emulator) ServerURL() string {
	v, _ := e.effectiveSetting(SettingServerURL)
	return strings.TrimRight(v, "/")
}

func (e *Emulator) clusterObject(c *cluster, withStatus bool) map[string]any {
	var spec any = map[string]any{}
	if len(c.spec) > 0 {
		spec = c.spec
	}
	status := map[string]any{}
	if withStatus {
		status = map[string]any{
			"clusterName": c.id, "ready": false, "observedGeneration": 1,
			"conditions": []map[string]string{{"type": "Provisioned", "status": "Unknown", "message": "waiting for machines"}},
		}
	}
	return map[string]any{
		"id": c.namespace + "/" + c.name, "type": "provisioning.cattle.io.cluster",
		"apiVersion": "provisioning.cattle.io/v1", "kind": "Cluster",
		"metadata": map[string]any{
			"name": c.name, "namespace": c.namespace, "resourceVersion": strconv.FormatUint(c.rv, 10),
			"creationTimestamp": c.created.UTC().Format(time.RFC3339),
		},
		"spec": spec, "status": status,
	}
}

func (e *Emulator) serveClusterCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Type     string `json:"type"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		apiError(w, http.StatusUnprocessableEntity, "InvalidBodyContent", "agenttls emulator: the body is not a Cluster object: "+err.Error())
		return
	}
	if body.Metadata.Name == "" {
		apiError(w, http.StatusUnprocessableEntity, "MissingRequired", "agenttls emulator: metadata.name is required")
		return
	}
	if body.Metadata.Namespace == "" {
		body.Metadata.Namespace = DefaultNamespace
	}
	key := body.Metadata.Namespace + "/" + body.Metadata.Name
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.admin.clusters[key]; ok {
		apiError(w, http.StatusConflict, "AlreadyExists", fmt.Sprintf("agenttls emulator: cluster %s already exists", key))
		return
	}
	e.admin.rv++
	c := &cluster{
		name: body.Metadata.Name, namespace: body.Metadata.Namespace, spec: body.Spec,
		id: "c-m-" + randomString("abcdefghijklmnopqrstuvwxyz0123456789", 8), created: e.cfg.Now(), rv: e.admin.rv,
		token: randomString(tokenAlphabet, 54),
	}
	c.tokenSecret = "crt-" + randomString("abcdefghijklmnopqrstuvwxyz0123456789", 5)
	e.admin.clusters[key] = c
	accesslog.Annotate(r.Context(), "cluster "+key+" ("+c.id+")")
	// As with Rancher, the management cluster id appears in the status a moment later: the
	// answer to the create has no status yet.
	accesslog.WriteJSON(w, http.StatusCreated, e.clusterObject(c, false))
}

func (e *Emulator) serveClusterGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("ns") + "/" + r.PathValue("name")
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.admin.clusters[key]
	if !ok {
		apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("agenttls emulator: clusters.provisioning.cattle.io %q not found", key))
		return
	}
	accesslog.WriteJSON(w, http.StatusOK, e.clusterObject(c, true))
}

func (e *Emulator) serveClusterList(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	data := []any{}
	for _, k := range sortedKeys(e.admin.clusters) {
		data = append(data, e.clusterObject(e.admin.clusters[k], true))
	}
	accesslog.WriteJSON(w, http.StatusOK, collection("provisioning.cattle.io.cluster", data))
}

func (e *Emulator) serveClusterDelete(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("ns") + "/" + r.PathValue("name")
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.admin.clusters[key]
	if !ok {
		apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("agenttls emulator: clusters.provisioning.cattle.io %q not found", key))
		return
	}
	delete(e.admin.clusters, key)
	for id, m := range e.admin.machines {
		if m.namespace == c.namespace && m.cluster == c.name {
			delete(e.admin.machines, id)
		}
	}
	accesslog.WriteJSON(w, http.StatusOK, e.clusterObject(c, true))
}

func collection(resourceType string, data []any) map[string]any {
	return map[string]any{"type": "collection", "resourceType": resourceType, "data": data}
}

// clusterByID returns the cluster whose management id is id. Called with e.mu held.
func (e *Emulator) clusterByID(id string) *cluster {
	for _, c := range e.admin.clusters {
		if c.id == id {
			return c
		}
	}
	return nil
}

func (e *Emulator) serveCRTList(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("clusterId")
	server := e.ServerURL()
	checksum := e.Checksum()
	e.mu.Lock()
	defer e.mu.Unlock()
	data := []any{}
	for _, k := range sortedKeys(e.admin.clusters) {
		c := e.admin.clusters[k]
		if id != "" && c.id != id {
			continue
		}
		data = append(data, e.crtObject(c, server, checksum))
	}
	accesslog.WriteJSON(w, http.StatusOK, collection("clusterRegistrationToken", data))
}

// crtObject is the norman view of a cluster's default registration token. Without a server-url
// Rancher assigns no commands, and neither does the emulator.
func (e *Emulator) crtObject(c *cluster, server, checksum string) map[string]any {
	token := c.token
	if e.cfg.TokenPlaceholder {
		token = TokenPlaceholder
	}
	var nodeCmd, insecureCmd string
	if server != "" {
		nodeCmd = command.NodeCommand(server, token, checksum, nil)
		insecureCmd = strings.Replace(nodeCmd, "curl -fL", "curl --insecure -fL", 1)
	}
	o := map[string]any{
		"type": "clusterRegistrationToken", "baseType": "clusterRegistrationToken",
		"id": c.id + ":default-token", "name": "default-token", "namespaceId": c.id, "clusterId": c.id,
		"nodeCommand": nodeCmd, "insecureNodeCommand": insecureCmd, "state": "active",
	}
	if e.cfg.TokenPlaceholder {
		o["token"] = ""
		o["tokenSecretName"] = c.tokenSecret
	} else {
		o["token"] = c.token
	}
	return o
}

func (e *Emulator) serveSecretGet(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.clusterByID(ns)
	if c == nil || c.tokenSecret != name {
		apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("agenttls emulator: secrets %q not found", ns+"/"+name))
		return
	}
	accesslog.WriteJSON(w, http.StatusOK, map[string]any{
		"id": ns + "/" + name, "type": "secret", "apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"data":     map[string]string{"token": base64.StdEncoding.EncodeToString([]byte(c.token))},
	})
}

// MachineName is the name of the machine (and its custom machine and bootstrap) Rancher creates
// for a CATTLE_ID: "custom-<first 12 hex of sha256(id)>".
func MachineName(cattleID string) string {
	sum := sha256.Sum256([]byte(cattleID))
	return "custom-" + hex.EncodeToString(sum[:])[:12]
}

func machineObject(m *machine) map[string]any {
	labels := map[string]string{LabelMachineID: m.cattleID, LabelClusterName: m.cluster}
	for _, r := range m.roles {
		labels["rke.cattle.io/"+r+"-role"] = "true"
	}
	return map[string]any{
		"id": m.namespace + "/" + m.name, "type": "cluster.x-k8s.io.machine",
		"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
		"metadata": map[string]any{
			"name": m.name, "namespace": m.namespace, "labels": labels,
			"creationTimestamp": m.created.UTC().Format(time.RFC3339),
		},
		"spec": map[string]any{
			"clusterName":       m.cluster,
			"bootstrap":         map[string]any{"configRef": map[string]string{"kind": "RKEBootstrap", "name": m.name}},
			"infrastructureRef": map[string]string{"kind": "CustomMachine", "name": m.name},
		},
		"status": map[string]any{"phase": "Pending"},
	}
}

// parseSelector reads an equality label selector "k=v,k2==v2".
func parseSelector(s string) (map[string]string, error) {
	sel := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return sel, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		v = strings.TrimPrefix(v, "=")
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(k, "!()") {
			return nil, fmt.Errorf("label selector %q: the emulator understands only key=value terms", s)
		}
		sel[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return sel, nil
}

func (e *Emulator) serveMachineList(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	sel, err := parseSelector(r.URL.Query().Get("labelSelector"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "BadRequest", "agenttls emulator: "+err.Error())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	data := []any{}
	for _, id := range sortedKeys(e.admin.machines) {
		m := e.admin.machines[id]
		if m.namespace != ns {
			continue
		}
		o := machineObject(m)
		labels := o["metadata"].(map[string]any)["labels"].(map[string]string)
		match := true
		for k, v := range sel {
			if labels[k] != v {
				match = false
			}
		}
		if match {
			data = append(data, o)
		}
	}
	accesslog.WriteJSON(w, http.StatusOK, collection("cluster.x-k8s.io.machine", data))
}

// clusterForToken returns the cluster whose registration token is token.
func (e *Emulator) clusterForToken(token string) (*cluster, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.admin.clusters {
		if token != "" && c.token == token {
			return c, true
		}
	}
	return nil, false
}

// recordMachine creates the machine for cattleID in cluster c (once: a node that registers again
// with the same id finds its machine).
func (e *Emulator) recordMachine(c *cluster, cattleID string, roles []string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if m, ok := e.admin.machines[cattleID]; ok {
		return m.name
	}
	m := &machine{name: MachineName(cattleID), namespace: c.namespace, cattleID: cattleID, cluster: c.name,
		roles: append([]string(nil), roles...), created: e.cfg.Now()}
	e.admin.machines[cattleID] = m
	return m.name
}
