package tables

import (
	"encoding/binary"
	"hash/fnv"
	"strings"
	"sync"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/synth"
)

var (
	nationalOnce sync.Once
	nationalTree *area.Tree
)

// national is the synthetic national area tree (seed 2019), loaded once.
func national(t testing.TB) *area.Tree {
	nationalOnce.Do(func() {
		tr, err := area.Load(strings.NewReader(synth.NationalAreas(2019)))
		if err != nil {
			panic(err)
		}
		nationalTree = tr
	})
	return nationalTree
}

// testKey is a stand-in record key: uniform enough, and fixed per
// (household, person), as the vault's HMAC keys are.
func testKey(hh int, person int) uint32 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(hh))
	binary.LittleEndian.PutUint64(b[8:], uint64(person))
	h.Write(b[:])
	x := h.Sum64()
	return uint32(x ^ x>>32)
}

// synthHouseholds makes n synthetic households (seed 2019) as the cache
// takes them, with their decoded submissions, audit indexes 10, 12, 14 …
func synthHouseholds(t testing.TB, tr *area.Tree, n int) ([]Household, []*form.Submission) {
	t.Helper()
	f := form.Default()
	g, err := synth.New(synth.Opts{Seed: 2019, Form: f, EAs: synth.EAs(tr)})
	if err != nil {
		t.Fatal(err)
	}
	hs := make([]Household, 0, n)
	subs := make([]*form.Submission, 0, n)
	for i := range n {
		b, _, err := g.Household(i)
		if err != nil {
			t.Fatal(err)
		}
		s, err := form.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		parts, err := f.Split(s)
		if err != nil {
			t.Fatal(err)
		}
		h := Household{AuditIndex: int64(10 + 2*i), SupersedesIndex: -1, EA: s.Area, Key: testKey(i, 0), Analytic: parts[form.Analytic]}
		for p := range s.Persons {
			h.PersonKeys = append(h.PersonKeys, testKey(i, p+1))
		}
		hs = append(hs, h)
		subs = append(subs, s)
	}
	return hs, subs
}

func newTestCache(t testing.TB, tr *area.Tree, hs []Household) *Cache {
	t.Helper()
	s, err := NewSchema(form.Default())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(s, tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) > 0 {
		if err := c.Append(hs, hs[len(hs)-1].AuditIndex); err != nil {
			t.Fatal(err)
		}
	}
	return c
}
