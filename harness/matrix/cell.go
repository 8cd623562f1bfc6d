package matrix

import (
	"fmt"
	"sort"
	"strings"
)

// Cell is one combination of the matrix: what the node runs and through which path.
type Cell struct {
	CA             CAKind         `json:"ca"`
	Mode           Mode           `json:"mode"`
	Checksum       Checksum       `json:"checksum"`
	StrictVerify   StrictVerify   `json:"strictVerify"`
	Path           Path           `json:"path"`
	StrictVerifyAt StrictVerifyAt `json:"strictVerifyAt,omitempty"`
	// Note says why a scenario lists this cell (a field case, a remedy); not part of the ID.
	Note string `json:"note,omitempty"`
}

// ID is the cell's stable identifier, used as the spec name, in reports and for --focus:
// ca/mode/cs-<checksum>/sv-<strict-verify>/path[/at-<placement>].
func (c Cell) ID() string {
	id := fmt.Sprintf("%s/%s/cs-%s/sv-%s/%s", c.CA, c.Mode, c.Checksum, c.StrictVerify, c.Path)
	if at := c.At(); at != AtSh {
		id += "/at-" + string(at)
	}
	return id
}

// Slug is ID with '/' replaced, usable in file names and tokens.
func (c Cell) Slug() string { return strings.ReplaceAll(c.ID(), "/", "_") }

// At returns the strict-verify placement with its default applied.
func (c Cell) At() StrictVerifyAt {
	if c.StrictVerifyAt == "" {
		return AtSh
	}
	return c.StrictVerifyAt
}

// Labels returns one Ginkgo label per axis value, "axis:value", so that a filter such as
// 'mode:strict && path:mitm' selects cells.
func (c Cell) Labels() []string {
	l := []string{
		string(AxisCA) + ":" + string(c.CA),
		string(AxisMode) + ":" + string(c.Mode),
		string(AxisChecksum) + ":" + string(c.Checksum),
		string(AxisStrictVerify) + ":" + c.strictLabel(),
		string(AxisPath) + ":" + string(c.Path),
	}
	if c.At() != AtSh {
		l = append(l, string(AxisStrictVerifyAt)+":"+string(c.At()))
	}
	return l
}

// strictLabel keeps "TRUE" distinct from "true": Ginkgo matches labels case-insensitively.
func (c Cell) strictLabel() string {
	if c.StrictVerify == StrictTrueUpper {
		return "uppercase-true"
	}
	return string(c.StrictVerify)
}

// Get returns the cell's value on axis a.
func (c Cell) Get(a Axis) string {
	switch a {
	case AxisCA:
		return string(c.CA)
	case AxisMode:
		return string(c.Mode)
	case AxisChecksum:
		return string(c.Checksum)
	case AxisStrictVerify:
		return string(c.StrictVerify)
	case AxisPath:
		return string(c.Path)
	case AxisStrictVerifyAt:
		return string(c.At())
	}
	return ""
}

// set assigns value v on axis a; v must already be checked with CheckValue.
func (c *Cell) set(a Axis, v string) {
	switch a {
	case AxisCA:
		c.CA = CAKind(v)
	case AxisMode:
		c.Mode = Mode(v)
	case AxisChecksum:
		c.Checksum = Checksum(v)
	case AxisStrictVerify:
		c.StrictVerify = StrictVerify(v)
	case AxisPath:
		c.Path = Path(v)
	case AxisStrictVerifyAt:
		c.StrictVerifyAt = StrictVerifyAt(v)
	}
}

// ParseID is the inverse of ID; it rejects IDs with unknown values.
func ParseID(id string) (Cell, error) {
	parts := strings.Split(id, "/")
	if len(parts) != 5 && len(parts) != 6 {
		return Cell{}, fmt.Errorf("cell id %q: want ca/mode/cs-<checksum>/sv-<strict-verify>/path[/at-<placement>]", id)
	}
	raw := map[Axis]string{
		AxisCA: parts[0], AxisMode: parts[1],
		AxisChecksum:     strings.TrimPrefix(parts[2], "cs-"),
		AxisStrictVerify: strings.TrimPrefix(parts[3], "sv-"),
		AxisPath:         parts[4],
	}
	if len(parts) == 6 {
		raw[AxisStrictVerifyAt] = strings.TrimPrefix(parts[5], "at-")
	}
	var c Cell
	for _, a := range Axes {
		v, ok := raw[a]
		if !ok {
			continue
		}
		if err := CheckValue(a, v); err != nil {
			return Cell{}, fmt.Errorf("cell id %q: %w", id, err)
		}
		c.set(a, v)
	}
	return c, nil
}

// Sort orders cells by matrix order of their axis values (not alphabetically), so reports
// read the way the matrix is written.
func Sort(cells []Cell) {
	rank := func(a Axis, v string) int {
		for i, x := range Values[a] {
			if x == v {
				return i
			}
		}
		return len(Values[a])
	}
	sort.SliceStable(cells, func(i, j int) bool {
		for _, a := range Axes {
			ri, rj := rank(a, cells[i].Get(a)), rank(a, cells[j].Get(a))
			if ri != rj {
				return ri < rj
			}
		}
		return false
	})
}
