package matrix

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/agenttls/agenttls/harness/bounded"
)

// Scenario is a scenario file: a named selection of cells, as data. A reader of the file alone
// can tell what runs: the cartesian product of each entry in `matrices`, plus each of `cells`.
type Scenario struct {
	Name        string
	Description string
	File        string
	Cells       []Cell
}

// LoadScenario reads and validates a scenario file. Errors name the file, the line and the
// allowed values.
func LoadScenario(path string) (*Scenario, error) {
	data, err := bounded.ReadFile(path, maxScenarioBytes, "scenario")
	if err != nil {
		return nil, fmt.Errorf("%w (the scenarios are in scenarios/)", err)
	}
	return ParseScenario(path, data)
}

// maxScenarioBytes bounds a scenario file: the full matrix takes a few hundred bytes.
const maxScenarioBytes = 4 << 20

// ParseScenario validates scenario data; name is used in error messages.
func ParseScenario(name string, data []byte) (*Scenario, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("scenario %s is empty: give matrices and/or cells (see scenarios/smoke.yaml)", name)
		}
		return nil, fmt.Errorf("scenario %s: not valid YAML: %w", name, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		line := more.Line
		if err != nil {
			line = 0
		}
		return nil, fmt.Errorf("scenario %s:%d: a second YAML document: a scenario file holds one (drop the ---)", name, line)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("scenario %s:%d: want a mapping with name, description, matrices and/or cells", name, doc.Line)
	}
	p := &parser{file: name, seen: map[string]int{}}
	s := &Scenario{File: name, Name: strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))}
	root := doc.Content[0]
	if err := p.uniqueKeys(root, "scenario"); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "name":
			name, err := p.text(k, v)
			if err != nil {
				return nil, err
			}
			s.Name = name
		case "description":
			desc, err := p.text(k, v)
			if err != nil {
				return nil, err
			}
			s.Description = strings.TrimSpace(desc)
		case "matrices":
			if v.Kind != yaml.SequenceNode {
				return nil, p.errf(v, "matrices must be a list of axis -> [values] mappings")
			}
			for _, m := range v.Content {
				cells, err := p.matrix(m)
				if err != nil {
					return nil, err
				}
				if err := p.add(s, m, cells); err != nil {
					return nil, err
				}
			}
		case "cells":
			if v.Kind != yaml.SequenceNode {
				return nil, p.errf(v, "cells must be a list of axis -> value mappings")
			}
			for _, m := range v.Content {
				c, err := p.cell(m)
				if err != nil {
					return nil, err
				}
				if err := p.add(s, m, []Cell{c}); err != nil {
					return nil, err
				}
			}
		default:
			return nil, p.errf(k, "unknown key %q: use name, description, matrices, cells", k.Value)
		}
	}
	if len(s.Cells) == 0 {
		return nil, fmt.Errorf("scenario %s: selects no cells: add a `matrices:` or `cells:` entry", name)
	}
	return s, nil
}

type parser struct {
	file string
	seen map[string]int // cell ID -> line it was first selected on
}

func (p *parser) errf(n *yaml.Node, format string, a ...any) error {
	return fmt.Errorf("scenario %s:%d: %s", p.file, n.Line, fmt.Sprintf(format, a...))
}

// uniqueKeys refuses a mapping (the scenario, a matrix or a cell) that gives a key twice: YAML
// decoders keep one of the two silently, so the file would not say what runs.
func (p *parser) uniqueKeys(m *yaml.Node, what string) error {
	first := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if line, dup := first[k.Value]; dup {
			name := "key " + k.Value
			if _, isAxis := Values[Axis(k.Value)]; isAxis && what != "scenario" {
				name = "axis " + k.Value
			}
			return p.errf(k, "%s given twice in one %s (first on line %d): give it once", name, what, line)
		}
		first[k.Value] = k.Line
	}
	return nil
}

// text is the value of a free-text key (name, description, note): a YAML string.
func (p *parser) text(k, v *yaml.Node) (string, error) {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		return "", p.errf(v, "%s: want a string, got %s (quote it if it is text)", k.Value, yamlKind(v))
	}
	return v.Value, nil
}

// yamlKind names what a node holds, for errors.
func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing"
	case "!!bool":
		return "a boolean (" + n.Value + ")"
	case "!!int", "!!float":
		return "a number (" + n.Value + ")"
	}
	return n.ShortTag()
}

func (p *parser) add(s *Scenario, at *yaml.Node, cells []Cell) error {
	for _, c := range cells {
		if line, dup := p.seen[c.ID()]; dup {
			return p.errf(at, "cell %s is already selected on line %d: list each cell once", c.ID(), line)
		}
		p.seen[c.ID()] = at.Line
		s.Cells = append(s.Cells, c)
	}
	return nil
}

func (p *parser) axis(k *yaml.Node) (Axis, error) {
	a := Axis(k.Value)
	if _, ok := Values[a]; !ok {
		return "", p.errf(k, "unknown axis %q: use one of %s", k.Value, axisList())
	}
	return a, nil
}

func (p *parser) value(a Axis, v *yaml.Node) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", p.errf(v, "%s: want a single value", a)
	}
	if err := CheckValue(a, v.Value); err != nil {
		return "", p.errf(v, "%v", err)
	}
	return v.Value, nil
}

// matrix expands one axis -> [values] mapping into its cartesian product.
func (p *parser) matrix(m *yaml.Node) ([]Cell, error) {
	if m.Kind != yaml.MappingNode {
		return nil, p.errf(m, "a matrix is a mapping of axis -> [values]")
	}
	if err := p.uniqueKeys(m, "matrix"); err != nil {
		return nil, err
	}
	values := map[Axis][]string{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		a, err := p.axis(k)
		if err != nil {
			return nil, err
		}
		items := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			items = v.Content
		}
		if len(items) == 0 {
			return nil, p.errf(v, "axis %s has no values: use some of %s", a, strings.Join(Values[a], ", "))
		}
		for _, it := range items {
			x, err := p.value(a, it)
			if err != nil {
				return nil, err
			}
			values[a] = append(values[a], x)
		}
	}
	if err := p.required(m, func(a Axis) bool { _, ok := values[a]; return ok }); err != nil {
		return nil, err
	}
	cells := []Cell{{}}
	for _, a := range Axes {
		vs, ok := values[a]
		if !ok {
			continue
		}
		next := make([]Cell, 0, len(cells)*len(vs))
		for _, c := range cells {
			for _, v := range vs {
				c2 := c
				c2.set(a, v)
				next = append(next, c2)
			}
		}
		cells = next
	}
	return cells, nil
}

func (p *parser) cell(m *yaml.Node) (Cell, error) {
	var c Cell
	if m.Kind != yaml.MappingNode {
		return c, p.errf(m, "a cell is a mapping of axis -> value (and an optional note)")
	}
	if err := p.uniqueKeys(m, "cell"); err != nil {
		return c, err
	}
	set := map[Axis]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Value == "note" {
			note, err := p.text(k, v)
			if err != nil {
				return c, err
			}
			c.Note = strings.TrimSpace(note)
			continue
		}
		a, err := p.axis(k)
		if err != nil {
			return c, err
		}
		x, err := p.value(a, v)
		if err != nil {
			return c, err
		}
		c.set(a, x)
		set[a] = true
	}
	return c, p.required(m, func(a Axis) bool { return set[a] })
}

func (p *parser) required(m *yaml.Node, has func(Axis) bool) error {
	var missing []string
	for _, a := range Required {
		if !has(a) {
			missing = append(missing, string(a))
		}
	}
	if len(missing) > 0 {
		return p.errf(m, "missing axis %s: every cell sets %s", strings.Join(missing, ", "), requiredList())
	}
	return nil
}

func requiredList() string {
	s := make([]string, len(Required))
	for i, a := range Required {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// Shard returns the i-th of n deterministic, disjoint parts of cells (1 <= i <= n): cells are
// ordered by ID and dealt round-robin, so every shard gets a spread of the matrix.
func Shard(cells []Cell, i, n int) ([]Cell, error) {
	if n < 1 || i < 1 || i > n {
		return nil, fmt.Errorf("shard %d/%d: want i/n with 1 <= i <= n", i, n)
	}
	sorted := append([]Cell(nil), cells...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].ID() < sorted[b].ID() })
	var out []Cell
	for k, c := range sorted {
		if k%n == i-1 {
			out = append(out, c)
		}
	}
	Sort(out)
	return out, nil
}

// ParseShard parses "i/n": two decimal integers without signs, spaces or leading zeros, with
// 1 <= i <= n. The empty string means no sharding (1/1).
func ParseShard(s string) (i, n int, err error) {
	if s == "" {
		return 1, 1, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	if ok {
		i, ok = shardNumber(is)
	}
	if ok {
		n, ok = shardNumber(ns)
	}
	if !ok || i > n {
		return 0, 0, fmt.Errorf("shard %q: want i/n, two whole numbers without spaces or leading zeros with 1 <= i <= n, e.g. 2/4", s)
	}
	return i, n, nil
}

// shardNumber parses one side of i/n: a positive decimal integer written without a sign,
// spaces or leading zeros.
func shardNumber(s string) (int, bool) {
	if s == "" || s[0] == '0' || len(s) > 9 {
		return 0, false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	v, err := strconv.Atoi(s)
	return v, err == nil
}
