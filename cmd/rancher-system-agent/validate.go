package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// connectionInfo is the file /v3/connect/agent returns.
type connectionInfo struct {
	KubeConfig string `json:"kubeConfig"`
	Namespace  string `json:"namespace"`
	SecretName string `json:"secretName"`
}

// validateConnection applies the real agent's checks, in its order (reference/contract.md,
// section 2.2): the file exists; its mode is exactly 0600; it belongs to the current user and
// group; its name says JSON (".json" anywhere in it, checked first) or YAML (".yaml") and it
// decodes as such; then kubeConfig, namespace and secretName are non-empty, in that order. The
// kubeconfig itself is not parsed.
func validateConnection(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no connection info file at %s", path)
	}
	if err != nil {
		return fmt.Errorf("cannot stat connection info: %w", err)
	}
	if mode := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); mode != 0o600 {
		return fmt.Errorf("%s has permissions %04o; only exactly 0600 is accepted", path, uint32(mode.Perm())|specialBits(mode))
	}
	if err := ownedByCurrentUser(fi, path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot open connection info: %w", err)
	}
	defer f.Close()

	var ci connectionInfo
	base := filepath.Base(path)
	switch {
	case strings.Contains(base, ".json"):
		if err := json.NewDecoder(f).Decode(&ci); err != nil {
			return fmt.Errorf("%s does not decode as JSON: %w", path, err)
		}
	case strings.Contains(base, ".yaml"):
		b, err := io.ReadAll(f)
		if err != nil {
			return fmt.Errorf("cannot read connection info: %w", err)
		}
		if err := yaml.Unmarshal(b, &ci); err != nil {
			return fmt.Errorf("%s does not decode as YAML: %w", path, err)
		}
	default:
		return fmt.Errorf("cannot tell the format of %s: its name holds neither .json nor .yaml", base)
	}
	switch {
	case ci.KubeConfig == "":
		return errors.New("the kubeConfig field is empty or absent")
	case ci.Namespace == "":
		return errors.New("the namespace field is empty or absent")
	case ci.SecretName == "":
		return errors.New("the secretName field is empty or absent")
	}
	return nil
}

func specialBits(m os.FileMode) uint32 {
	var b uint32
	if m&os.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}
