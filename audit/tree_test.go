package audit_test

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/censusvault/censusvault/audit"
)

// hashStore keeps stored hashes as the broker's storage would, and reads
// them both as an audit.HashReader and as a tlog.HashReader, so our
// wrappers can be checked against tlog on the same data.
type hashStore struct {
	m     map[int64][32]byte
	reads int // indexes read
}

func newHashStore() *hashStore { return &hashStore{m: map[int64][32]byte{}} }

func (s *hashStore) ReadHashes(indexes []int64) ([][32]byte, error) {
	out := make([][32]byte, len(indexes))
	for i, x := range indexes {
		h, ok := s.m[x]
		if !ok {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = h
		s.reads++
	}
	return out, nil
}

func (s *hashStore) tlog() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs, err := s.ReadHashes(indexes)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(hs))
		for i, h := range hs {
			out[i] = h
		}
		return out, nil
	})
}

// append stores the hashes for the leaf at index, as the broker does in
// the transaction that seals the event.
func (s *hashStore) append(t testing.TB, index int64, leaf [32]byte) {
	t.Helper()
	hs, err := audit.StoredHashes(index, leaf, s)
	if err != nil {
		t.Fatalf("StoredHashes(%d): %v", index, err)
	}
	start := audit.StoredHashIndex(index)
	for i, h := range hs {
		if _, dup := s.m[start+int64(i)]; dup {
			t.Fatalf("StoredHashes(%d) overwrites stored hash %d", index, start+int64(i))
		}
		s.m[start+int64(i)] = h
	}
	if got, want := int64(len(s.m)), audit.StoredHashCount(index+1); got != want {
		t.Fatalf("after leaf %d: %d stored hashes, StoredHashCount says %d", index, got, want)
	}
}

// testLeaf is the leaf hash of a synthetic record, distinct per index.
func testLeaf(i int64) [32]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return audit.LeafHash(b[:])
}

// naiveRoot is RFC 6962's MTH, written from the RFC's definition.
func naiveRoot(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := naiveRoot(leaves[:k]), naiveRoot(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func TestTreeBuilderMatchesTlog(t *testing.T) {
	var tb audit.TreeBuilder
	store := newHashStore()
	var leaves [][32]byte
	check := func(n int64) {
		t.Helper()
		want, err := tlog.TreeHash(n, store.tlog())
		if err != nil {
			t.Fatalf("tlog.TreeHash(%d): %v", n, err)
		}
		if tb.Size() != n || tb.Root() != [32]byte(want) {
			t.Fatalf("n=%d: TreeBuilder size %d root %x, tlog root %x", n, tb.Size(), tb.Root(), want)
		}
		got, err := audit.TreeRoot(n, store)
		if err != nil || got != [32]byte(want) {
			t.Fatalf("TreeRoot(%d) = %x, %v; want %x", n, got, err, want)
		}
	}
	check(0)
	if tb.Root() != sha256.Sum256(nil) {
		t.Fatalf("empty root %x, want SHA-256 of the empty string", tb.Root())
	}
	for i := range int64(300) {
		leaf := testLeaf(i)
		tb.Add(leaf)
		store.append(t, i, leaf)
		leaves = append(leaves, leaf)
		check(i + 1)
		if r := naiveRoot(leaves); r != tb.Root() {
			t.Fatalf("n=%d: TreeBuilder %x, RFC 6962 by definition %x", i+1, tb.Root(), r)
		}
	}
	// Larger trees, across several powers of two.
	const big = 1<<17 + 12345
	for i := int64(300); i < big; i++ {
		leaf := testLeaf(i)
		tb.Add(leaf)
		store.append(t, i, leaf)
		if n := i + 1; n == 1<<16 || n == 1<<16+1 || n == 1<<17-1 || n == big {
			check(n)
		}
	}
	if store.reads > 4*big {
		t.Errorf("StoredHashes read %d hashes for %d leaves; want about two per leaf", store.reads, big)
	}
}

// Our proofs are tlog's, and each side accepts the other's.
func TestProofsMatchTlog(t *testing.T) {
	const n = 77
	store := newHashStore()
	var tb audit.TreeBuilder
	roots := []tlog.Hash{tb.Root()}
	for i := range int64(n) {
		store.append(t, i, testLeaf(i))
		tb.Add(testLeaf(i))
		roots = append(roots, tb.Root())
	}
	tr := store.tlog()
	for _, size := range []int64{1, 2, 3, 7, 8, 9, 31, 32, 33, 64, n} {
		for index := range size {
			ours, err := audit.InclusionProof(size, index, store)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", size, index, err)
			}
			theirs, err := tlog.ProveRecord(size, index, tr)
			if err != nil {
				t.Fatal(err)
			}
			if len(ours) != len(theirs) {
				t.Fatalf("InclusionProof(%d, %d): %d hashes, tlog %d", size, index, len(ours), len(theirs))
			}
			for i := range ours {
				if ours[i] != [32]byte(theirs[i]) {
					t.Fatalf("InclusionProof(%d, %d)[%d] differs from tlog's", size, index, i)
				}
			}
			if err := audit.CheckInclusion(ours, size, roots[size], index, testLeaf(index)); err != nil {
				t.Fatalf("CheckInclusion(%d, %d): %v", size, index, err)
			}
			if err := tlog.CheckRecord(theirs, size, roots[size], index, testLeaf(index)); err != nil {
				t.Fatal(err)
			}
			// A wrong leaf, index, root or proof fails.
			bad := []struct {
				name string
				err  error
			}{
				{"other leaf", audit.CheckInclusion(ours, size, roots[size], index, testLeaf(index+1))},
				{"other root", audit.CheckInclusion(ours, size, roots[size-1], index, testLeaf(index))},
				{"index past size", audit.CheckInclusion(ours, size, roots[size], size, testLeaf(index))},
			}
			if size > 1 {
				alt := append([][32]byte(nil), ours...)
				alt[len(alt)-1][0] ^= 1
				bad = append(bad,
					struct {
						name string
						err  error
					}{"altered proof", audit.CheckInclusion(alt, size, roots[size], index, testLeaf(index))},
					struct {
						name string
						err  error
					}{"short proof", audit.CheckInclusion(ours[:len(ours)-1], size, roots[size], index, testLeaf(index))},
					struct {
						name string
						err  error
					}{"other index", audit.CheckInclusion(ours, size, roots[size], (index+1)%size, testLeaf(index))},
				)
			}
			for _, b := range bad {
				if !errors.Is(b.err, audit.ErrProof) {
					t.Fatalf("CheckInclusion(%d, %d) with %s: %v, want ErrProof", size, index, b.name, b.err)
				}
			}
		}
	}
	for _, newSize := range []int64{1, 2, 5, 8, 13, 32, 33, n} {
		for oldSize := int64(0); oldSize <= newSize; oldSize++ {
			ours, err := audit.ConsistencyProof(newSize, oldSize, store)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", newSize, oldSize, err)
			}
			if err := audit.CheckConsistency(ours, newSize, roots[newSize], oldSize, roots[oldSize]); err != nil {
				t.Fatalf("CheckConsistency(%d, %d): %v", newSize, oldSize, err)
			}
			if oldSize == 0 {
				if len(ours) != 0 {
					t.Fatalf("ConsistencyProof(%d, 0) has %d hashes, want none", newSize, len(ours))
				}
			} else {
				theirs, err := tlog.ProveTree(newSize, oldSize, tr)
				if err != nil {
					t.Fatal(err)
				}
				if len(ours) != len(theirs) {
					t.Fatalf("ConsistencyProof(%d, %d): %d hashes, tlog %d", newSize, oldSize, len(ours), len(theirs))
				}
				for i := range ours {
					if ours[i] != [32]byte(theirs[i]) {
						t.Fatalf("ConsistencyProof(%d, %d)[%d] differs from tlog's", newSize, oldSize, i)
					}
				}
				if err := tlog.CheckTree(theirs, newSize, roots[newSize], oldSize, roots[oldSize]); err != nil {
					t.Fatal(err)
				}
			}
			// A rewritten old tree (another root at that size) is refused.
			forged := roots[oldSize]
			forged[5] ^= 0x40
			if err := audit.CheckConsistency(ours, newSize, roots[newSize], oldSize, forged); !errors.Is(err, audit.ErrProof) {
				t.Fatalf("CheckConsistency(%d, %d) with a forged old root: %v, want ErrProof", newSize, oldSize, err)
			}
			if oldSize > 0 && oldSize < newSize {
				if err := audit.CheckConsistency(ours, newSize, roots[newSize-1], oldSize, roots[oldSize]); !errors.Is(err, audit.ErrProof) {
					t.Fatalf("CheckConsistency(%d, %d) with a wrong new root: %v, want ErrProof", newSize, oldSize, err)
				}
			}
		}
	}
}

// Bad arguments are errors, never tlog panics.
func TestTreeBadArguments(t *testing.T) {
	store := newHashStore()
	for i := range int64(4) {
		store.append(t, i, testLeaf(i))
	}
	var zero [32]byte
	errs := map[string]error{}
	_, errs["StoredHashes(-1)"] = audit.StoredHashes(-1, zero, store)
	_, errs["StoredHashes(MaxIndex+1)"] = audit.StoredHashes(audit.MaxIndex+1, zero, store)
	_, errs["StoredHashes nil reader"] = audit.StoredHashes(5, zero, nil)
	_, errs["StoredHashes missing hashes"] = audit.StoredHashes(7, zero, store)
	_, errs["StoredHashes short read"] = audit.StoredHashes(3, zero, audit.HashReaderFunc(func([]int64) ([][32]byte, error) { return nil, nil }))
	_, errs["TreeRoot(-1)"] = audit.TreeRoot(-1, store)
	_, errs["TreeRoot(too big)"] = audit.TreeRoot(audit.MaxTreeSize+1, store)
	_, errs["TreeRoot(beyond store)"] = audit.TreeRoot(9, store)
	_, errs["InclusionProof(4, 4)"] = audit.InclusionProof(4, 4, store)
	_, errs["InclusionProof(4, -1)"] = audit.InclusionProof(4, -1, store)
	_, errs["InclusionProof(0, 0)"] = audit.InclusionProof(0, 0, store)
	_, errs["ConsistencyProof(2, 3)"] = audit.ConsistencyProof(2, 3, store)
	_, errs["ConsistencyProof(2, -1)"] = audit.ConsistencyProof(2, -1, store)
	_, errs["ConsistencyProof(-1, 0)"] = audit.ConsistencyProof(-1, 0, store)
	errs["CheckInclusion size 0"] = audit.CheckInclusion(nil, 0, zero, 0, zero)
	errs["CheckInclusion size -5"] = audit.CheckInclusion(nil, -5, zero, -7, zero)
	errs["CheckConsistency old > new"] = audit.CheckConsistency(nil, 2, zero, 3, zero)
	errs["CheckConsistency negative"] = audit.CheckConsistency(nil, -1, zero, -2, zero)
	errs["CheckConsistency from empty with wrong root"] = audit.CheckConsistency(nil, 2, zero, 0, zero)
	for name, err := range errs {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	empty := sha256.Sum256(nil)
	if err := audit.CheckConsistency(nil, 0, empty, 0, empty); err != nil {
		t.Errorf("empty tree is not consistent with itself: %v", err)
	}
	for _, f := range []func(){
		func() { audit.StoredHashIndex(-1) },
		func() { audit.StoredHashCount(-1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("out-of-range argument did not panic")
				}
			}()
			f()
		}()
	}
}
