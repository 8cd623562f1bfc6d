package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// adminCall sends a JSON request to the admin surface and decodes the answer.
func adminCall(t *testing.T, f *fixture, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd *strings.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.client(t, "127.0.0.1").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func login(t *testing.T, f *fixture, password string) (int, string) {
	t.Helper()
	code, out := adminCall(t, f, http.MethodPost, "/v3-public/localProviders/local?action=login", "",
		map[string]string{"username": "admin", "password": password, "responseType": "json"})
	tok, _ := out["token"].(string)
	return code, tok
}

func TestAdminLoginAndAuth(t *testing.T) {
	f := start(t, true, func(c *Config) { c.BootstrapPassword = "pw" })
	if code, _ := login(t, f, "nope"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	code, tok := login(t, f, "pw")
	if code != http.StatusCreated || !strings.HasPrefix(tok, "token-") {
		t.Fatalf("login: %d %q", code, tok)
	}
	if code, out := adminCall(t, f, http.MethodGet, "/v3/settings/server-url", "", nil); code != http.StatusUnauthorized || out["type"] != "error" {
		t.Fatalf("no token: %d %v", code, out)
	}
	if code, _ := adminCall(t, f, http.MethodGet, "/v3/settings/server-url", "token-x:forged", nil); code != http.StatusUnauthorized {
		t.Fatalf("forged token: %d", code)
	}
	if code, out := adminCall(t, f, http.MethodGet, "/v3/settings/server-url", tok, nil); code != 200 || out["value"] != "https://"+rancherHost {
		t.Fatalf("server-url: %d %v", code, out)
	}
	// The public cacerts setting needs no token, as before.
	if code, _ := adminCall(t, f, http.MethodGet, "/v3/settings/cacerts", "", nil); code != 200 {
		t.Fatalf("cacerts: %d", code)
	}
	// Without a bootstrap password no login succeeds.
	g := start(t, true, nil)
	if code, _ := login(t, g, ""); code != http.StatusUnauthorized {
		t.Fatalf("empty password configured: login %d", code)
	}
}

func TestAdminSettingRules(t *testing.T) {
	f := start(t, true, func(c *Config) { c.BootstrapPassword = "pw"; c.AgentTLSMode = ModeSystemStore })
	_, tok := login(t, f, "pw")

	if code, _ := adminCall(t, f, http.MethodPut, "/v3/settings/cacerts", tok, map[string]string{"value": "x"}); code != http.StatusMethodNotAllowed {
		t.Fatalf("cacerts PUT: %d, want 405", code)
	}
	if code, _ := adminCall(t, f, http.MethodGet, "/v3/settings/no-such-setting", tok, nil); code != http.StatusNotFound {
		t.Fatalf("unknown setting: %d", code)
	}

	// The v1 object carries a resourceVersion; a stale one is a conflict.
	code, obj := adminCall(t, f, http.MethodGet, "/v1/management.cattle.io.settings/agent-tls-mode", tok, nil)
	if code != 200 || obj["default"] != ModeSystemStore || obj["value"] != "" {
		t.Fatalf("v1 get: %d %v", code, obj)
	}
	md := obj["metadata"].(map[string]any)
	rv := md["resourceVersion"].(string)
	md["resourceVersion"] = "1" + rv
	obj["value"] = ModeStrict
	if code, _ := adminCall(t, f, http.MethodPut, "/v1/management.cattle.io.settings/agent-tls-mode", tok, obj); code != http.StatusConflict {
		t.Fatalf("stale resourceVersion: %d, want 409", code)
	}
	// With no cluster, system-store -> strict needs no force.
	md["resourceVersion"] = rv
	if code, out := adminCall(t, f, http.MethodPut, "/v1/management.cattle.io.settings/agent-tls-mode", tok, obj); code != 200 || f.emu.AgentTLSMode() != ModeStrict {
		t.Fatalf("switch without clusters: %d %v", code, out)
	}
	if code, _ := adminCall(t, f, http.MethodPut, "/v3/settings/agent-tls-mode", tok, map[string]string{"value": ModeSystemStore}); code != 200 {
		t.Fatalf("back to system-store: %d", code)
	}
	// With a cluster, it is refused unless the new object carries the force annotation.
	if code, _ := adminCall(t, f, http.MethodPost, "/v1/provisioning.cattle.io.clusters", tok,
		map[string]any{"metadata": map[string]string{"name": "c1", "namespace": "fleet-default"}, "spec": map[string]any{"rkeConfig": map[string]any{}}}); code != http.StatusCreated {
		t.Fatalf("create cluster: %d", code)
	}
	if code, out := adminCall(t, f, http.MethodPut, "/v3/settings/agent-tls-mode", tok, map[string]string{"value": ModeStrict}); code != http.StatusForbidden || !strings.Contains(out["message"].(string), AnnotationForce) {
		t.Fatalf("unforced switch with a cluster: %d %v", code, out)
	}
	_, obj = adminCall(t, f, http.MethodGet, "/v1/management.cattle.io.settings/agent-tls-mode", tok, nil)
	obj["value"] = ModeStrict
	obj["metadata"].(map[string]any)["annotations"] = map[string]string{AnnotationForce: "false"}
	if code, _ := adminCall(t, f, http.MethodPut, "/v1/management.cattle.io.settings/agent-tls-mode", tok, obj); code != http.StatusForbidden {
		t.Fatalf("force=false: %d, want 403", code)
	}
	_, obj = adminCall(t, f, http.MethodGet, "/v1/management.cattle.io.settings/agent-tls-mode", tok, nil)
	obj["value"] = ModeStrict
	obj["metadata"].(map[string]any)["annotations"] = map[string]string{AnnotationForce: "true"}
	if code, _ := adminCall(t, f, http.MethodPut, "/v1/management.cattle.io.settings/agent-tls-mode", tok, obj); code != 200 || f.emu.AgentTLSMode() != ModeStrict {
		t.Fatalf("forced switch: %d, mode %s", code, f.emu.AgentTLSMode())
	}
	if code, _ := adminCall(t, f, http.MethodPut, "/v3/settings/agent-tls-mode", tok, map[string]string{"value": "relaxed"}); code != http.StatusUnprocessableEntity {
		t.Fatalf("unknown mode: %d", code)
	}
}

func TestAdminClustersTokensMachines(t *testing.T) {
	f := start(t, false, func(c *Config) { c.BootstrapPassword = "pw" })
	_, tok := login(t, f, "pw")
	code, created := adminCall(t, f, http.MethodPost, "/v1/provisioning.cattle.io.clusters", tok,
		map[string]any{"type": "provisioning.cattle.io.cluster", "metadata": map[string]string{"name": "c1", "namespace": "fleet-default"}, "spec": map[string]any{"rkeConfig": map[string]any{}}})
	if code != http.StatusCreated || created["status"].(map[string]any)["clusterName"] != nil {
		t.Fatalf("create: %d %v (the create answer has no status yet)", code, created)
	}
	_, got := adminCall(t, f, http.MethodGet, "/v1/provisioning.cattle.io.clusters/fleet-default/c1", tok, nil)
	id, _ := got["status"].(map[string]any)["clusterName"].(string)
	if !strings.HasPrefix(id, "c-m-") {
		t.Fatalf("clusterName %q", id)
	}
	_, list := adminCall(t, f, http.MethodGet, "/v3/clusterregistrationtokens?clusterId="+id, tok, nil)
	data := list["data"].([]any)
	if len(data) != 1 {
		t.Fatalf("tokens: %v", list)
	}
	crt := data[0].(map[string]any)
	token := crt["token"].(string)
	// Public CA: no checksum in the command.
	if cmd := crt["nodeCommand"].(string); strings.Contains(cmd, "--ca-checksum") || !strings.Contains(cmd, "--token "+token) {
		t.Fatalf("nodeCommand %q", cmd)
	}

	// The cluster's token registers a node and creates its machine; the registration is recorded
	// under the cluster's name.
	c := f.client(t, "127.0.0.1")
	resp, _ := do(t, c, http.MethodGet, f.srv.URL+"/v3/connect/agent", map[string]string{
		"Authorization": "Bearer " + token, "X-Cattle-Id": "abc", "X-Cattle-Role-Etcd": "true", "X-Cattle-Role-Worker": "true",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("connect: %d", resp.StatusCode)
	}
	regs := f.emu.Registrations("c1", 0).Registrations
	if len(regs) != 1 || regs[0].Machine != MachineName("abc") || regs[0].SecretName != MachineName("abc")+"-machine-plan" {
		t.Fatalf("registrations %+v", regs)
	}
	_, ms := adminCall(t, f, http.MethodGet, "/v1/cluster.x-k8s.io.machines/fleet-default?labelSelector=rke.cattle.io/machine-id%3Dabc", tok, nil)
	md := ms["data"].([]any)
	if len(md) != 1 {
		t.Fatalf("machines %v", ms)
	}
	labels := md[0].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels["rke.cattle.io/etcd-role"] != "true" || labels["rke.cattle.io/worker-role"] != "true" || labels[LabelClusterName] != "c1" {
		t.Fatalf("labels %v", labels)
	}
	if code, _ := adminCall(t, f, http.MethodGet, "/v1/cluster.x-k8s.io.machines/fleet-default?labelSelector=a!%3Db", tok, nil); code != http.StatusBadRequest {
		t.Fatalf("unsupported selector: %d", code)
	}
	_, other := adminCall(t, f, http.MethodGet, "/v1/cluster.x-k8s.io.machines/other-ns", tok, nil)
	if len(other["data"].([]any)) != 0 {
		t.Fatalf("machines in another namespace: %v", other)
	}
}
