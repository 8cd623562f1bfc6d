package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Versions is fixtures/versions.yaml: which system-agent script each Rancher release serves.
type Versions struct {
	DefaultSystemAgent string         `yaml:"default-system-agent"`
	Rancher            []RancherRange `yaml:"rancher"`
}

// RancherRange maps an inclusive range of Rancher releases to the script they serve.
type RancherRange struct {
	From           string `yaml:"from"`
	To             string `yaml:"to"`
	SystemAgent    string `yaml:"system-agent"`
	Preamble       string `yaml:"preamble"`
	DefaultTLSMode string `yaml:"default-tls-mode"`
}

// LoadVersions reads a versions file.
func LoadVersions(path string) (*Versions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read version map: %w", err)
	}
	var v Versions
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("version map %s: %w", path, err)
	}
	if v.DefaultSystemAgent == "" {
		return nil, fmt.Errorf("version map %s: default-system-agent is empty", path)
	}
	for _, r := range v.Rancher {
		if _, err := parseSemver(r.From); err != nil {
			return nil, fmt.Errorf("version map %s: %w", path, err)
		}
		if _, err := parseSemver(r.To); err != nil {
			return nil, fmt.Errorf("version map %s: %w", path, err)
		}
	}
	return &v, nil
}

// ForRancher returns the range a Rancher version falls in, or an error naming the known span.
func (v *Versions) ForRancher(version string) (RancherRange, error) {
	want, err := parseSemver(version)
	if err != nil {
		return RancherRange{}, fmt.Errorf("rancher version: %w", err)
	}
	for _, r := range v.Rancher {
		from, _ := parseSemver(r.From)
		to, _ := parseSemver(r.To)
		if cmpSemver(from, want) <= 0 && cmpSemver(want, to) <= 0 {
			return r, nil
		}
	}
	first, last := v.Rancher[0].From, v.Rancher[len(v.Rancher)-1].To
	return RancherRange{}, fmt.Errorf("rancher %s is not in fixtures/versions.yaml (it knows %s to %s): add its row, or pass the system-agent version directly", version, first, last)
}

func parseSemver(s string) ([3]int, error) {
	var out [3]int
	core := strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if !strings.HasPrefix(s, "v") || len(parts) != 3 {
		return out, fmt.Errorf("%q is not a version of the form vX.Y.Z", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, fmt.Errorf("%q is not a version of the form vX.Y.Z", s)
		}
		out[i] = n
	}
	return out, nil
}

func cmpSemver(a, b [3]int) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
