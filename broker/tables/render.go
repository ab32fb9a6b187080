package tables

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// TableFormat names the layout of a released table.
const TableFormat = "censusvault.table/v1"

// Margin is the category of a margin cell: all categories of its block.
const Margin = "*"

// Method names the disclosure control applied.
const Method = "cell-key perturbation (ABS/ONS), then small-cell suppression"

// Render writes the table in its plan's format. The bytes depend only on
// the normalized request (as-of point and parameters included) and the
// data as of that point: no time, no budget, nothing about the requester,
// so the same request as of the same point always gives the same bytes.
func (t *Table) Render() []byte {
	switch {
	case t.Plan.dp != nil && t.Plan.Norm.Format == FormatCSV:
		return t.dpCSV()
	case t.Plan.dp != nil:
		return t.dpJSON()
	case t.Plan.std != nil && t.Plan.Norm.Format == FormatCSV:
		return t.stdCSV()
	case t.Plan.std != nil:
		return t.stdJSON()
	case t.Plan.Norm.Format == FormatCSV:
		return t.csv()
	}
	return t.json()
}

func js(s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

func (t *Table) value(c Cell) string {
	if t.Plan.op == "count" {
		return strconv.FormatInt(c.Count, 10)
	}
	if t.Plan.dp != nil && t.Plan.op == "sum" {
		return strconv.FormatFloat(c.Value, 'f', 0, 64) // dp sums are whole units
	}
	return strconv.FormatFloat(c.Value, 'f', 2, 64)
}

// cellCats returns the categories of cell i: one per row dimension, then
// one per column dimension, Margin for a block's total.
func (t *Table) cellCats(i int) (row, col []string) {
	p := t.Plan
	w := p.width()
	r, c := i/w, i%w
	row = blockCats(p.rows, r, p.R)
	if len(p.cols) > 0 {
		col = blockCats(p.cols, c, p.C)
	}
	return row, col
}

func blockCats(ds []dim, idx, total int) []string {
	out := make([]string, len(ds))
	if idx == total {
		for k := range out {
			out[k] = Margin
		}
		return out
	}
	for k := len(ds) - 1; k >= 0; k-- {
		out[k] = ds[k].values[idx%ds[k].n]
		idx /= ds[k].n
	}
	return out
}

func (t *Table) json() []byte {
	p := t.Plan
	n := &p.Norm
	var b bytes.Buffer
	b.WriteString(`{"table":`)
	b.Write(js(TableFormat))
	b.WriteString(`,"project":`)
	b.Write(js(n.Project))
	fmt.Fprintf(&b, `,"as_of":%d,"unit":`, n.AsOf)
	b.Write(js(string(n.Unit)))
	m, _ := n.Measure.MarshalJSON()
	b.WriteString(`,"measure":`)
	b.Write(m)
	f, _ := json.Marshal(n.Filter)
	b.WriteString(`,"filter":`)
	b.Write(f)
	t.writeDims(&b)
	pa := p.params
	b.WriteString(`,"margin":`)
	b.Write(js(Margin))
	b.WriteString(`,"disclosure_control":{"method":`)
	b.Write(js(Method))
	fmt.Fprintf(&b, `,"max_noise":%d,"variance":%s,"small_cell":%d,"max_dims":%d,"max_cells":%d,"min_universe":%d,"params":`,
		pa.MaxNoise, strconv.FormatFloat(pa.Variance, 'g', -1, 64), pa.SmallCell, pa.MaxDims, pa.MaxCells, pa.MinUniverse)
	b.Write(js(pa.Canonical()))
	b.WriteString(`}`)
	t.writeCells(&b)
	return b.Bytes()
}

// writeDims writes the "rows" and "cols" members: each dimension and its
// categories.
func (t *Table) writeDims(b *bytes.Buffer) {
	p := t.Plan
	for _, blk := range []struct {
		name string
		ds   []dim
	}{{"rows", p.rows}, {"cols", p.cols}} {
		fmt.Fprintf(b, `,%q:[`, blk.name)
		for k, d := range blk.ds {
			if k > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"var":`)
			b.Write(js(d.name))
			b.WriteString(`,"categories":[`)
			for j := range d.values {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`{"value":`)
				b.Write(js(d.values[j]))
				b.WriteString(`,"label":`)
				b.Write(js(d.labels[j]))
				b.WriteByte('}')
			}
			b.WriteString("]}")
		}
		b.WriteByte(']')
	}
}

// writeCells writes the "cells" member and closes the table object.
func (t *Table) writeCells(b *bytes.Buffer) {
	p := t.Plan
	b.WriteString(`,"cells":[`)

	// Each block's category arrays, encoded once: a cell is then two
	// copies and a number.
	rowFrag := blockFragments(p.rows, p.R)
	colFrag := []string{"[]"}
	if len(p.cols) > 0 {
		colFrag = blockFragments(p.cols, p.C)
	}
	w := p.width()
	for i, c := range t.Cells {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n{\"row\":")
		b.WriteString(rowFrag[i/w])
		b.WriteString(`,"col":`)
		b.WriteString(colFrag[i%w])
		if c.Suppressed {
			b.WriteString(`,"suppressed":true}`)
		} else {
			b.WriteString(`,"value":`)
			b.WriteString(t.value(c))
			b.WriteByte('}')
		}
	}
	b.WriteString("\n]}\n")
}

// blockFragments returns the JSON array of categories of every index of
// a block, the margin (index total) last.
func blockFragments(ds []dim, total int) []string {
	out := make([]string, total+1)
	var b bytes.Buffer
	for i := range out {
		b.Reset()
		writeStrings(&b, blockCats(ds, i, total))
		out[i] = b.String()
	}
	return out
}

func writeStrings(b *bytes.Buffer, ss []string) {
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(js(s))
	}
	b.WriteByte(']')
}

// csv writes '#' comment lines with the request and the parameters, a
// header (the row and column variables, "value", "status"), then one line
// per cell: a suppressed cell has an empty value and status "suppressed".
func (t *Table) csv() []byte {
	p := t.Plan
	n := &p.Norm
	var b bytes.Buffer
	m, _ := n.Measure.MarshalJSON()
	f, _ := json.Marshal(n.Filter)
	fmt.Fprintf(&b, "# %s project=%s as_of=%d unit=%s measure=%s filter=%s margin=%s\n", TableFormat, n.Project, n.AsOf, n.Unit, m, f, Margin)
	fmt.Fprintf(&b, "# disclosure control: %s; %s\n", Method, p.params.Canonical())
	w := csv.NewWriter(&b)
	t.writeCSVCells(w)
	w.Flush()
	return b.Bytes()
}

// Describe is a one-line summary of a plan for logs and audit reasons:
// never a value.
func (p *Plan) Describe() string {
	if p.std != nil {
		return fmt.Sprintf("standard table %s (catalogue %d) for %s %s at point %s, %d cells", p.std.Table, p.std.Catalogue, p.stdArea.level, p.stdArea.code, p.std.Point, p.Cells())
	}
	if p.dp != nil {
		return fmt.Sprintf("dp table (ρ=%s) of %s %s by %s × %s at point %s, %d cells", p.dp.rho, p.Norm.Measure.Op, p.unit,
			strings.Join(p.Norm.Rows, "×"), strings.Join(p.Norm.Cols, "×"), p.dp.norm.Point, p.Cells())
	}
	return fmt.Sprintf("%s %s by %s × %s, %d cells", p.Norm.Measure.Op, p.unit, strings.Join(p.Norm.Rows, "×"), strings.Join(p.Norm.Cols, "×"), p.Cells())
}

// writeCSVCells writes the header (the row and column variables, "value",
// "status") and one line per cell: a suppressed cell has an empty value
// and status "suppressed".
func (t *Table) writeCSVCells(w *csv.Writer) {
	p := t.Plan
	var head []string
	for _, d := range p.rows {
		head = append(head, d.name)
	}
	for _, d := range p.cols {
		head = append(head, d.name)
	}
	head = append(head, "value", "status")
	w.Write(head)
	for i, c := range t.Cells {
		row, col := t.cellCats(i)
		rec := append(append(row, col...), "", "")
		if c.Suppressed {
			rec[len(rec)-1] = "suppressed"
		} else {
			rec[len(rec)-2] = t.value(c)
		}
		w.Write(rec)
	}
}
