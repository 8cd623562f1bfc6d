package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/agenttls/agenttls/harness/emulator/accesslog"
)

// tokenMACLen is how many hex characters of the HMAC a token carries.
const tokenMACLen = 32

// CellToken mints the registration token for name: "<name>.<first 32 hex chars of
// HMAC-SHA256(secret, name)>". The emulator accepts exactly the tokens minted with its secret.
func CellToken(secret, name string) string {
	return name + "." + tokenMAC(secret, name)
}

func tokenMAC(secret, name string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(name))
	return hex.EncodeToString(m.Sum(nil))[:tokenMACLen]
}

// checkToken returns the token's name when it was minted with secret.
func checkToken(secret, token string) (string, bool) {
	i := strings.LastIndexByte(token, '.')
	if i <= 0 {
		return "", false
	}
	name, mac := token[:i], token[i+1:]
	return name, hmac.Equal([]byte(mac), []byte(tokenMAC(secret, name)))
}

// PlanSecretName is the machine-plan secret name the emulator hands to a machine id:
// "custom-<first 12 hex of sha256(id)>-machine-plan".
func PlanSecretName(cattleID string) string {
	sum := sha256.Sum256([]byte(cattleID))
	return "custom-" + hex.EncodeToString(sum[:])[:12] + "-machine-plan"
}

// Registration is one successful /v3/connect/agent call.
type Registration struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// TokenName is the name the token was minted for (CellToken).
	TokenName string `json:"tokenName"`
	// CattleID is X-Cattle-Id, the machine id the script generated.
	CattleID string `json:"cattleId"`
	// Roles lists the X-Cattle-Role-<Role> headers whose value is "true", lower-cased and sorted
	// (e.g. "control-plane", "etcd", "worker").
	Roles           []string `json:"roles"`
	NodeName        string   `json:"nodeName"`
	Address         string   `json:"address,omitempty"`
	InternalAddress string   `json:"internalAddress,omitempty"`
	Labels          string   `json:"labels,omitempty"`
	Taints          string   `json:"taints,omitempty"`
	// Client is the node's IP (through a proxy: the first X-Forwarded-For hop).
	Client string `json:"client"`
	// Remote is the TCP peer the emulator saw.
	Remote string `json:"remote"`
	// InterceptedBy is the mode of the agenttls proxy the call came through, "" when direct.
	InterceptedBy string `json:"interceptedBy"`
	// SecretName is the plan secret name handed out.
	SecretName string `json:"secretName"`
	// Machine is the machine created for a cluster's registration token (admin surface); empty
	// for per-cell tokens. TokenName is then the cluster's name.
	Machine string `json:"machine,omitempty"`
}

// RegistrationList is the answer of GET /agenttls/v1/registrations.
type RegistrationList struct {
	Seq           uint64         `json:"seq"`
	Registrations []Registration `json:"registrations"`
}

// Registrations returns the registrations after since for token name ("" for all).
func (e *Emulator) Registrations(name string, since uint64) RegistrationList {
	seq := e.log.Seq()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := RegistrationList{Seq: seq, Registrations: []Registration{}}
	for _, r := range e.registrations {
		if r.Seq > since && (name == "" || r.TokenName == name) {
			out.Registrations = append(out.Registrations, r)
		}
	}
	return out
}

// ConnectionInfo is the JSON body of /v3/connect/agent.
type ConnectionInfo struct {
	KubeConfig string `json:"kubeConfig"`
	Namespace  string `json:"namespace"`
	SecretName string `json:"secretName"`
}

func (e *Emulator) serveConnectAgent(w http.ResponseWriter, r *http.Request) {
	cattleID := r.Header.Get("X-Cattle-Id")
	if cattleID == "" {
		accesslog.Annotate(r.Context(), "connect: no X-Cattle-Id")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	// A cluster's registration token (admin surface) or a per-cell token minted with the secret.
	clu, isCluster := e.clusterForToken(token)
	name, ok := "", isCluster
	if isCluster {
		name = clu.name
	} else {
		name, ok = checkToken(e.cfg.TokenSecret, token)
	}
	if !ok {
		accesslog.Annotate(r.Context(), "connect: unknown token")
		http.Error(w, "agenttls emulator: no machine matches this registration token", http.StatusInternalServerError)
		return
	}

	server := e.ServerURL()
	if server == "" {
		server = "https://" + r.Host
	}
	planToken := e.planToken(name, cattleID)
	kubeConfig, err := agentKubeconfig(server, e.cfg.CACerts, planToken)
	if err != nil {
		http.Error(w, "agenttls emulator: build kubeconfig: "+err.Error(), http.StatusInternalServerError)
		return
	}
	secretName := PlanSecretName(cattleID)

	var roles []string
	for k, vs := range r.Header {
		role, ok := strings.CutPrefix(k, "X-Cattle-Role-")
		if ok && len(vs) > 0 && strings.EqualFold(vs[0], "true") {
			roles = append(roles, strings.ToLower(role))
		}
	}
	sort.Strings(roles)
	machineName := ""
	if isCluster {
		machineName = e.recordMachine(clu, cattleID, roles)
	}
	reg := Registration{
		Seq:             e.log.NextSeq(),
		Time:            e.cfg.Now().UTC(),
		TokenName:       name,
		CattleID:        cattleID,
		Roles:           append([]string{}, roles...),
		NodeName:        r.Header.Get("X-Cattle-Node-Name"),
		Address:         r.Header.Get("X-Cattle-Address"),
		InternalAddress: r.Header.Get("X-Cattle-Internal-Address"),
		Labels:          r.Header.Get("X-Cattle-Labels"),
		Taints:          r.Header.Get("X-Cattle-Taints"),
		Client:          accesslog.ClientIP(r),
		Remote:          r.RemoteAddr,
		InterceptedBy:   r.Header.Get(accesslog.HeaderInterceptedBy),
		SecretName:      secretName,
		Machine:         machineName,
	}
	e.mu.Lock()
	e.registrations = append(e.registrations, reg)
	e.mu.Unlock()
	accesslog.Annotate(r.Context(), fmt.Sprintf("registered %s (seq %d)", name, reg.Seq))

	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(ConnectionInfo{KubeConfig: kubeConfig, Namespace: DefaultNamespace, SecretName: secretName})
}

func (e *Emulator) planToken(name, cattleID string) string {
	m := hmac.New(sha256.New, []byte(e.cfg.TokenSecret))
	m.Write([]byte("plan\x00" + name + "\x00" + cattleID))
	return hex.EncodeToString(m.Sum(nil))
}

// Kubeconfig is the shape of the kubeconfig handed to the agent (cluster, user and context all
// named "agent").
type Kubeconfig struct {
	APIVersion     string            `yaml:"apiVersion"`
	Clusters       []KubeconfigNamed `yaml:"clusters"`
	Contexts       []KubeconfigNamed `yaml:"contexts"`
	CurrentContext string            `yaml:"current-context"`
	Kind           string            `yaml:"kind"`
	Preferences    struct{}          `yaml:"preferences"`
	Users          []KubeconfigNamed `yaml:"users"`
}

// KubeconfigNamed is one named entry of a kubeconfig list; exactly one of its bodies is set.
type KubeconfigNamed struct {
	Cluster *KubeconfigCluster `yaml:"cluster,omitempty"`
	Context *KubeconfigContext `yaml:"context,omitempty"`
	Name    string             `yaml:"name"`
	User    *KubeconfigUser    `yaml:"user,omitempty"`
}

// KubeconfigCluster is a kubeconfig cluster body.
type KubeconfigCluster struct {
	// CertificateAuthorityData is base64 of the cacerts setting; absent without cacerts.
	CertificateAuthorityData string `yaml:"certificate-authority-data,omitempty"`
	Server                   string `yaml:"server"`
}

// KubeconfigContext is a kubeconfig context body.
type KubeconfigContext struct {
	Cluster string `yaml:"cluster"`
	User    string `yaml:"user"`
}

// KubeconfigUser is a kubeconfig user body.
type KubeconfigUser struct {
	Token string `yaml:"token"`
}

func agentKubeconfig(server string, cacerts []byte, token string) (string, error) {
	cluster := &KubeconfigCluster{Server: server}
	if strings.TrimSpace(string(cacerts)) != "" {
		cluster.CertificateAuthorityData = base64.StdEncoding.EncodeToString(cacerts)
	}
	kc := Kubeconfig{
		APIVersion:     "v1",
		Kind:           "Config",
		Clusters:       []KubeconfigNamed{{Name: "agent", Cluster: cluster}},
		Contexts:       []KubeconfigNamed{{Name: "agent", Context: &KubeconfigContext{Cluster: "agent", User: "agent"}}},
		CurrentContext: "agent",
		Users:          []KubeconfigNamed{{Name: "agent", User: &KubeconfigUser{Token: token}}},
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(kc); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return b.String(), nil
}
