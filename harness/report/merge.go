package report

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Merge joins the shards of one run into one Results. The parts must share every run parameter
// that can change a verdict: schema, agenttls version, backend, Rancher and system-agent
// versions, script sha256 and profile, scenario, and config except the keys that are per part by
// nature (shard, run-id, artifacts: see isPerPartKey). Cells are unioned; a cell in two parts
// is an error. The merged Shard is empty when the parts are all n shards of an i/n split, else
// the parts' shards joined with "+"; the merged RunID is the parts' run ID, or their distinct IDs
// joined with "+" when each shard job made its own. Started and Finished span all parts. The
// parts are not modified.
func Merge(parts ...*Results) (*Results, error) {
	if len(parts) == 0 {
		return nil, errors.New("merge: no results given")
	}
	for i, p := range parts {
		if p == nil {
			return nil, fmt.Errorf("merge: part %d is nil", i+1)
		}
	}
	first := parts[0]
	var diffs []string
	for i, p := range parts[1:] {
		for _, f := range runParamDiffs(first, p) {
			diffs = append(diffs, fmt.Sprintf("%s differs in %s", partName(i+2, p), f))
		}
	}
	if len(diffs) > 0 {
		return nil, fmt.Errorf("merge: the parts are not shards of one run (compared with %s): %s: merge only the shards of one run, with the same versions and config",
			partName(1, first), strings.Join(diffs, "; "))
	}
	shard, err := mergedShard(parts)
	if err != nil {
		return nil, err
	}
	out := *first
	out.Shard = shard
	for _, p := range parts {
		out.Interrupted = out.Interrupted || p.Interrupted
	}
	var runIDs []string
	seenRun := map[string]bool{}
	for _, p := range parts {
		if !seenRun[p.RunID] {
			seenRun[p.RunID] = true
			runIDs = append(runIDs, p.RunID)
		}
	}
	out.RunID = strings.Join(runIDs, "+")
	out.Config = nil
	if first.Config != nil {
		out.Config = map[string]string{}
		for k, v := range first.Config {
			if !isPerPartKey(k) {
				out.Config[k] = v
			}
		}
	}
	out.Cells = nil
	owner := map[string]int{}
	for i, p := range parts {
		if !p.Started.IsZero() && (out.Started.IsZero() || p.Started.Before(out.Started)) {
			out.Started = p.Started
		}
		if p.Finished.After(out.Finished) {
			out.Finished = p.Finished
		}
		for _, c := range p.Cells {
			if j, dup := owner[c.ID]; dup {
				return nil, fmt.Errorf("merge: cell %s is in both %s and %s: each cell must come from one shard only (were the shards split with different counts?)",
					c.ID, partName(j+1, parts[j]), partName(i+1, p))
			}
			owner[c.ID] = i
			out.Cells = append(out.Cells, c)
		}
	}
	out.Cells = sortedCells(out.Cells)
	if out.Cells == nil {
		out.Cells = []CellResult{}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("merge: merged results are invalid: %w", err)
	}
	return &out, nil
}

func partName(i int, r *Results) string {
	if r.Shard != "" {
		return fmt.Sprintf("part %d (shard %s)", i, r.Shard)
	}
	return fmt.Sprintf("part %d (run %s)", i, r.RunID)
}

// runParamDiffs lists the run parameters on which b differs from a.
func runParamDiffs(a, b *Results) []string {
	var d []string
	field := func(name, x, y string) {
		if x != y {
			d = append(d, fmt.Sprintf("%s: %q vs %q", name, x, y))
		}
	}
	field("schema", a.Schema, b.Schema)
	field("toolVersion", a.ToolVersion, b.ToolVersion)
	field("backend", a.Backend, b.Backend)
	field("rancherVersion", a.RancherVersion, b.RancherVersion)
	field("systemAgentVersion", a.SystemAgentVersion, b.SystemAgentVersion)
	field("scriptSha256", a.ScriptSHA256, b.ScriptSHA256)
	field("scriptProfile", a.ScriptProfile, b.ScriptProfile)
	field("scenario", a.Scenario, b.Scenario)
	keys := map[string]bool{}
	for k := range a.Config {
		keys[k] = true
	}
	for k := range b.Config {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		if !isPerPartKey(k) {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		x, okx := a.Config[k]
		y, oky := b.Config[k]
		switch {
		case okx && !oky:
			d = append(d, fmt.Sprintf("config[%s]: %q vs unset", k, x))
		case !okx && oky:
			d = append(d, fmt.Sprintf("config[%s]: unset vs %q", k, y))
		case x != y:
			d = append(d, fmt.Sprintf("config[%s]: %q vs %q", k, x, y))
		}
	}
	return d
}

// isPerPartKey reports whether a config key legitimately differs between the shards of one
// run: the shard itself, the run ID, the artifacts folder, where the script was found and how
// the machine was handled, under any namespace prefix ("shard", "harness.shard", "run-id",
// "artifacts", "e2e.artifacts-folder").
func isPerPartKey(k string) bool {
	k = strings.ToLower(k)
	if i := strings.LastIndexAny(k, "./"); i >= 0 {
		k = k[i+1:]
	}
	switch strings.NewReplacer("_", "-").Replace(k) {
	case "shard", "run-id", "runid", "artifacts", "artifacts-folder", "artifacts-dir":
		return true
	case "script-file", "script-url":
		// Where each shard found its script: the script itself is compared by its sha256.
		return true
	case "keep", "setup-timeout":
		// How a shard's machine was handled; no verdict depends on them.
		return true
	}
	return strings.HasSuffix(k, "-shard") || strings.HasSuffix(k, "_shard")
}

// mergedShard computes the merged Shard value and rejects a shard given twice.
func mergedShard(parts []*Results) (string, error) {
	seen := map[string]int{}
	var list []string
	for i, p := range parts {
		if p.Shard == "" {
			continue
		}
		if j, dup := seen[p.Shard]; dup {
			return "", fmt.Errorf("merge: shard %s is given twice (parts %d and %d)", p.Shard, j+1, i+1)
		}
		seen[p.Shard] = i
		list = append(list, p.Shard)
	}
	if len(list) == 0 {
		return "", nil
	}
	// Complete i/n split: all parts are shards of the same n and every index is there.
	n, complete := 0, len(list) == len(parts)
	idx := map[int]bool{}
	for _, s := range list {
		a, b, ok := strings.Cut(s, "/")
		i, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || m < 1 || i < 1 || i > m || (n != 0 && m != n) {
			complete = false
			break
		}
		n = m
		idx[i] = true
	}
	if complete && len(idx) == n {
		return "", nil
	}
	sort.Strings(list)
	return strings.Join(list, "+"), nil
}
