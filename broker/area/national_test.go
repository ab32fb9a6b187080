package area_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/area"
)

// nationalCSV builds a synthetic national tree shaped like Viet Nam's:
// 63 provinces × 11 districts × 15 communes × 23 EAs = 250,237 areas.
func nationalCSV() []byte {
	var b bytes.Buffer
	b.Grow(14 << 20)
	b.WriteString("code,parent,level,name,planned_households\n")
	b.WriteString("VN,,nation,Việt Nam,\n")
	for p := 1; p <= 63; p++ {
		pc := fmt.Sprintf("%02d", p)
		fmt.Fprintf(&b, "%s,VN,province,Tỉnh số %d,\n", pc, p)
		for d := 1; d <= 11; d++ {
			dc := fmt.Sprintf("%s%02d", pc, d)
			fmt.Fprintf(&b, "%s,%s,district,Huyện %d,\n", dc, pc, d)
			for c := 1; c <= 15; c++ {
				cc := fmt.Sprintf("%s%02d", dc, c)
				fmt.Fprintf(&b, "%s,%s,commune,\"Xã %d, huyện %d\",\n", cc, dc, c, d)
				for e := 1; e <= 23; e++ {
					fmt.Fprintf(&b, "%s.%03d,%s,ea,Địa bàn %d,%d\n", cc, e, cc, e, 80+e)
				}
			}
		}
	}
	return b.Bytes()
}

const nationalAreas = 1 + 63 + 63*11 + 63*11*15 + 63*11*15*23

// TestLoadNational builds the national tree, checks its shape and roll-up,
// and reports the time and the memory the tree keeps.
func TestLoadNational(t *testing.T) {
	if testing.Short() {
		t.Skip("national tree")
	}
	csv := nationalCSV()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	tr, err := area.Load(bytes.NewReader(csv))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	kept := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d areas (%d bytes of CSV) loaded in %v; tree keeps ≈ %d bytes (%d per area)",
		tr.Len(), len(csv), elapsed, kept, kept/int64(tr.Len()))
	// The goal is < 1 s; the bound here is loose because the test machine
	// is shared.
	if elapsed > 5*time.Second {
		t.Errorf("Load took %v", elapsed)
	}
	if tr.Len() != nationalAreas {
		t.Fatalf("Len = %d, want %d", tr.Len(), nationalAreas)
	}
	var wantTotal int64
	for e := 1; e <= 23; e++ {
		wantTotal += int64(80 + e)
	}
	perCommune := wantTotal
	wantTotal *= 63 * 11 * 15
	root, _ := tr.Get("VN")
	if root.Planned != wantTotal {
		t.Errorf("national plan %d, want %d", root.Planned, wantTotal)
	}
	c, _ := tr.Get("421107")
	if c.Planned != perCommune || c.Name != "Xã 7, huyện 11" {
		t.Errorf("commune = %+v", c)
	}
	if got, _ := tr.Ancestor("631115.023", area.Province); got != "63" {
		t.Errorf("Ancestor = %q", got)
	}
	n := 0
	tr.Walk("42", -1, func(area.Area, int) bool { n++; return true })
	if want := 1 + 11 + 11*15 + 11*15*23; n != want {
		t.Errorf("Walk visited %d, want %d", n, want)
	}
	runtime.KeepAlive(tr)
	runtime.KeepAlive(csv)
}

func BenchmarkLoadNational(b *testing.B) {
	csv := nationalCSV()
	b.SetBytes(int64(len(csv)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := area.Load(bytes.NewReader(csv)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(nationalAreas), "areas")
}

func BenchmarkLookup(b *testing.B) {
	tr, err := area.Load(bytes.NewReader(nationalCSV()))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !tr.Contains("42", "421107.013") {
			b.Fatal("not contained")
		}
	}
}
