package emulator

import "testing"

func TestAgentKubeconfigText(t *testing.T) {
	got, err := agentKubeconfig("https://r.test", []byte("PEM"), "tok")
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: v1
clusters:
  - cluster:
      certificate-authority-data: UEVN
      server: https://r.test
    name: agent
contexts:
  - context:
      cluster: agent
      user: agent
    name: agent
current-context: agent
kind: Config
preferences: {}
users:
  - name: agent
    user:
      token: tok
`
	if got != want {
		t.Fatalf("kubeconfig:\n%s\nwant:\n%s", got, want)
	}
	got, err = agentKubeconfig("https://r.test", []byte(" \n"), "tok")
	if err != nil {
		t.Fatal(err)
	}
	if want := "apiVersion: v1\nclusters:\n  - cluster:\n      server: https://r.test\n    name: agent\n"; got[:len(want)] != want {
		t.Fatalf("no-CA kubeconfig:\n%s", got)
	}
}
