package tables

import (
	"fmt"

	"github.com/censusvault/censusvault/broker/area"
)

// geo numbers the areas of a tree densely, in depth-first (CSV-like)
// order, and gives every EA its ancestors at each level, so that the
// engine keeps one int32 per household and resolves any area level with
// two array reads.
type geo struct {
	codes  []area.Code
	names  []string
	levels []area.Level
	end    []int32 // subtree of area i is [i, end[i])
	// planned is the planned households of area i's subtree (the
	// household listing's, public): what decides where a standard table
	// may be asked, never the true counts. The tree's own Planned,
	// which area.Load already rolls up from the EAs (adding the EAs
	// again here counted every area above them twice).
	planned []int64
	index   map[area.Code]int32
	// eaAnc[i] holds, for area i if it is an EA, its ancestors' indexes
	// at every level (nation … ea); nil rows for other areas.
	eaAnc [][area.EA + 1]int32
}

func newGeo(t *area.Tree) (*geo, error) {
	g := &geo{index: make(map[area.Code]int32, t.Len())}
	var stack [area.EA + 1]int32
	var walk func(c area.Code, depth int) error
	walk = func(c area.Code, depth int) error {
		a, ok := t.Get(c)
		if !ok || int(a.Level) != depth {
			return fmt.Errorf("tables: area %s is not where the tree says", c)
		}
		i := int32(len(g.codes))
		g.codes = append(g.codes, a.Code)
		g.names = append(g.names, a.Name)
		g.levels = append(g.levels, a.Level)
		g.end = append(g.end, 0)
		g.planned = append(g.planned, a.Planned)
		g.index[a.Code] = i
		stack[depth] = i
		if a.Level == area.EA {
			for len(g.eaAnc) < int(i) {
				g.eaAnc = append(g.eaAnc, [area.EA + 1]int32{})
			}
			g.eaAnc = append(g.eaAnc, stack)
		}
		for _, k := range t.Children(c) {
			if err := walk(k, depth+1); err != nil {
				return err
			}
		}
		g.end[i] = int32(len(g.codes))
		return nil
	}
	if err := walk(t.Root(), 0); err != nil {
		return nil, err
	}
	for len(g.eaAnc) < len(g.codes) {
		g.eaAnc = append(g.eaAnc, [area.EA + 1]int32{})
	}
	return g, nil
}

// ea returns the index of an EA, or false if c is not a known EA.
func (g *geo) ea(c string) (int32, bool) {
	i, ok := g.index[area.Code(c)]
	if !ok || g.levels[i] != area.EA {
		return 0, false
	}
	return i, true
}

// within reports whether area i is in the subtree of area a.
func (g *geo) within(i, a int32) bool { return a <= i && i < g.end[a] }
