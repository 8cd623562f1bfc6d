package report

import (
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shards splits a run into n shards the way an index/total sharder would (round robin), each
// with its own times and a shard key in its config.
func shards(t *testing.T, r *Results, n int) []*Results {
	var out []*Results
	for i := 0; i < n; i++ {
		s := *r
		s.Shard = shardName(i+1, n)
		s.Started = r.Started.Add(time.Duration(i) * time.Second)
		s.Finished = r.Finished.Add(time.Duration(i) * time.Second)
		s.Config = map[string]string{}
		for k, v := range r.Config {
			s.Config[k] = v
		}
		s.Config["shard"] = s.Shard
		s.Config["artifacts"] = "/tmp/artifacts/shard-" + strconv.Itoa(i+1)
		s.Config["run-id"] = r.RunID
		s.Cells = nil
		for j, c := range r.Cells {
			if j%n == i {
				s.Cells = append(s.Cells, c)
			}
		}
		out = append(out, &s)
	}
	return out
}

func shardName(i, n int) string { return strconv.Itoa(i) + "/" + strconv.Itoa(n) }

func TestMergeShards(t *testing.T) {
	dir := t.TempDir()
	full := synthRun(t, "", "v0.15.0")
	parts := shards(t, full, 3)
	// Through real files: each shard job writes its own results.json.
	var read []*Results
	for i, p := range parts {
		d := filepath.Join(dir, "shard"+strconv.Itoa(i+1))
		if err := Write(d, p); err != nil {
			t.Fatal(err)
		}
		r, err := Read(filepath.Join(d, ResultsFile))
		if err != nil {
			t.Fatal(err)
		}
		read = append(read, r)
	}
	// Any order of parts gives the same result.
	m, err := Merge(read[2], read[0], read[1])
	if err != nil {
		t.Fatal(err)
	}
	if m.Shard != "" {
		t.Errorf("merged shard %q, want empty for a complete 3-way split", m.Shard)
	}
	if _, ok := m.Config["shard"]; ok || m.Config["harness.parallel"] != "2" || m.Config["artifacts"] != "" || m.RunID != full.RunID {
		t.Errorf("merged config %v", m.Config)
	}
	if !m.Started.Equal(full.Started) || !m.Finished.Equal(full.Finished.Add(2*time.Second)) {
		t.Errorf("merged span %v..%v", m.Started, m.Finished)
	}
	want := sortedCells(full.Cells)
	if !reflect.DeepEqual(m.Cells, want) {
		t.Fatalf("merged cells differ from the unsharded run (%d vs %d)", len(m.Cells), len(want))
	}
	if err := Write(filepath.Join(dir, "merged"), m); err != nil {
		t.Fatalf("merged results do not write: %v", err)
	}
	// The parts are untouched.
	if read[0].Shard != "1/3" || len(read[0].Cells) != 48 {
		t.Error("Merge modified a part")
	}
	// An incomplete merge says which shards it holds.
	part, err := Merge(read[0], read[2])
	if err != nil {
		t.Fatal(err)
	}
	if part.Shard != "1/3+3/3" || len(part.Cells) != 96 {
		t.Errorf("partial merge: shard %q, %d cells", part.Shard, len(part.Cells))
	}
	one, err := Merge(full)
	if err != nil || len(one.Cells) != 144 {
		t.Errorf("merge of one part: %v", err)
	}
}

func TestMergeRejects(t *testing.T) {
	full := synthRun(t, "", "v0.15.0")
	parts := shards(t, full, 3)

	other := *parts[1]
	other.SystemAgentVersion = "v0.3.16"
	other.Config = map[string]string{"harness.parallel": "4", "shard": "2/3", "harness.cell-timeout": "45s", "harness.keep": "false"}
	_, err := Merge(parts[0], &other, parts[2])
	if err == nil {
		t.Fatal("merged shards of different runs")
	}
	for _, want := range []string{
		"merge: the parts are not shards of one run (compared with part 1 (shard 1/3))",
		`part 2 (shard 2/3) differs in systemAgentVersion: "v0.15.0" vs "v0.3.16"`,
		`part 2 (shard 2/3) differs in config[harness.parallel]: "2" vs "4"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "config[shard]") || strings.Contains(err.Error(), "config[artifacts]") {
		t.Error("a per-part key was compared")
	}
	// Shards of the same script found at other paths (CI runners' own checkouts) merge; so do
	// shards kept for a look, or given more time to set up.
	p3 := *parts[1]
	p3.Config = map[string]string{}
	for k, v := range parts[1].Config {
		p3.Config[k] = v
	}
	p3.Config["script-file"], p3.Config["keep"], p3.Config["setup-timeout"] = "/runner-2/install.sh", "true", "30m"
	if _, err := Merge(parts[0], &p3, parts[2]); err != nil {
		t.Errorf("shards that differ only in where the script was and how the machine was handled: %v", err)
	}
	// Shard jobs that each made their own run ID still merge; the IDs are kept.
	p2 := *parts[1]
	p2.RunID = "run-b"
	m, err := Merge(parts[0], &p2, parts[2])
	if err != nil || m.RunID != full.RunID+"+run-b" {
		t.Errorf("merge across run IDs: %v, run id %q", err, m.RunID)
	}

	dup := *parts[1]
	dup.Shard = "4/4"
	dup.Cells = append([]CellResult{parts[0].Cells[5]}, parts[1].Cells...)
	_, err = Merge(parts[0], &dup)
	if err == nil || !strings.Contains(err.Error(), "cell "+parts[0].Cells[5].ID+" is in both part 1 (shard 1/3) and part 2 (shard 4/4)") {
		t.Errorf("duplicate cell: %v", err)
	}
	if _, err := Merge(parts[0], parts[0]); err == nil || !strings.Contains(err.Error(), "shard 1/3 is given twice") {
		t.Errorf("same shard twice: %v", err)
	}
	if _, err := Merge(); err == nil {
		t.Error("Merge() of nothing did not fail")
	}
	if _, err := Merge(parts[0], nil); err == nil {
		t.Error("Merge with a nil part did not fail")
	}
}
