package audit

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrProof is returned by CheckInclusion and CheckConsistency for a proof
// that does not verify: the leaf is not in the tree, or the newer tree does
// not extend the older one, or the proof, a root or a size is wrong.
var ErrProof = errors.New("audit Merkle proof does not verify")

// MaxTreeSize is the largest tree this package handles: one leaf per event
// index, so MaxIndex+1.
const MaxTreeSize = MaxIndex + 1

// emptyRoot is the root of the empty tree, SHA-256 of the empty string
// (RFC 6962, section 2.1).
var emptyRoot = sha256.Sum256(nil)

// TreeBuilder computes the RFC 6962 Merkle tree root of leaf hashes as they
// stream past, keeping only the root of each complete subtree (one per set
// bit of the size): O(log n) memory whatever the number of leaves. Its root
// equals the one golang.org/x/mod/sumdb/tlog computes from stored hashes.
// The zero value is an empty tree, ready to use. It is not safe for
// concurrent use.
type TreeBuilder struct {
	size int64
	// nodes holds the roots of the complete subtrees the leaves so far
	// make up, largest (leftmost) first.
	nodes [][32]byte
}

// Add appends a leaf hash (LeafHash of an event's bytes) to the tree.
func (t *TreeBuilder) Add(leaf [32]byte) {
	h := leaf
	// Each trailing 1 bit of the old size is a complete subtree the new
	// leaf's subtree now pairs with.
	for n := t.size; n&1 == 1; n >>= 1 {
		h = nodeHash(t.nodes[len(t.nodes)-1], h)
		t.nodes = t.nodes[:len(t.nodes)-1]
	}
	t.nodes = append(t.nodes, h)
	t.size++
}

// Size returns the number of leaves added.
func (t *TreeBuilder) Size() int64 { return t.size }

// Root returns the Merkle tree root of the leaves added so far: SHA-256 of
// the empty string for no leaves, as RFC 6962 and tlog define it.
func (t *TreeBuilder) Root() [32]byte {
	if len(t.nodes) == 0 {
		return emptyRoot
	}
	h := t.nodes[len(t.nodes)-1]
	for i := len(t.nodes) - 2; i >= 0; i-- {
		h = nodeHash(t.nodes[i], h)
	}
	return h
}

func nodeHash(left, right [32]byte) [32]byte {
	return tlog.NodeHash(left, right)
}

// HashReader reads the stored hashes of a tree by their stored-hash
// indexes (see StoredHashIndex). It must return exactly one hash per index,
// in order, or an error. The broker implements it over storage, which keeps
// the hashes StoredHashes returns.
type HashReader interface {
	ReadHashes(indexes []int64) ([][32]byte, error)
}

// HashReaderFunc adapts a function to a HashReader.
type HashReaderFunc func(indexes []int64) ([][32]byte, error)

// ReadHashes calls f(indexes).
func (f HashReaderFunc) ReadHashes(indexes []int64) ([][32]byte, error) { return f(indexes) }

// tlogReader adapts a HashReader to tlog's, so callers never import tlog.
type tlogReader struct{ r HashReader }

func (t tlogReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if t.r == nil {
		return nil, errors.New("audit: nil HashReader")
	}
	hs, err := t.r.ReadHashes(indexes)
	if err != nil {
		return nil, err
	}
	if len(hs) != len(indexes) {
		return nil, fmt.Errorf("audit: HashReader returned %d hashes for %d indexes", len(hs), len(indexes))
	}
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out, nil
}

func fromTlog(hs []tlog.Hash) [][32]byte {
	out := make([][32]byte, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

func toTlog(hs [][32]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

func checkIndex(index int64) error {
	if index < 0 || index > MaxIndex {
		return fmt.Errorf("audit: leaf index %d out of range [0, %d]", index, int64(MaxIndex))
	}
	return nil
}

func checkSize(size int64) error {
	if size < 0 || size > MaxTreeSize {
		return fmt.Errorf("audit: tree size %d out of range [0, %d]", size, int64(MaxTreeSize))
	}
	return nil
}

// StoredHashes returns the hashes to store when the leaf with hash leaf is
// appended at index, the tree then having index+1 leaves: the leaf hash
// itself and the root of every subtree it completes. They are stored at
// consecutive stored-hash indexes from StoredHashIndex(index). r must read
// the hashes stored for the leaves before index; StoredHashes reads at most
// log₂(index) of them. It is tlog.StoredHashesForRecordHash.
func StoredHashes(index int64, leaf [32]byte, r HashReader) ([][32]byte, error) {
	if err := checkIndex(index); err != nil {
		return nil, err
	}
	hs, err := tlog.StoredHashesForRecordHash(index, leaf, tlogReader{r})
	if err != nil {
		return nil, fmt.Errorf("audit: stored hashes for leaf %d: %w", index, err)
	}
	return fromTlog(hs), nil
}

// StoredHashIndex returns the stored-hash index of the first hash
// StoredHashes returns for the leaf at index, tlog.StoredHashIndex(0,
// index). Stored-hash indexes are dense: the hashes of leaf index+1 start
// right after the last hash of leaf index. It panics if index is outside
// [0, MaxIndex], which StoredHashes refuses with an error.
func StoredHashIndex(index int64) int64 {
	if err := checkIndex(index); err != nil {
		panic(err)
	}
	return tlog.StoredHashIndex(0, index)
}

// StoredHashCount returns how many hashes are stored for a tree of size
// leaves: the stored-hash index the next leaf's hashes start at. Storage
// can compare it with what it holds. It panics if size is outside [0,
// MaxTreeSize].
func StoredHashCount(size int64) int64 {
	if err := checkSize(size); err != nil {
		panic(err)
	}
	return tlog.StoredHashCount(size)
}

// TreeRoot returns the root of the tree of the first size leaves, reading
// at most 1+log₂(size) stored hashes from r. The empty tree's root is
// SHA-256 of the empty string.
func TreeRoot(size int64, r HashReader) ([32]byte, error) {
	if err := checkSize(size); err != nil {
		return [32]byte{}, err
	}
	h, err := tlog.TreeHash(size, tlogReader{r})
	if err != nil {
		return [32]byte{}, fmt.Errorf("audit: tree root at size %d: %w", size, err)
	}
	return h, nil
}

// InclusionProof returns the RFC 6962 audit path proving that the leaf at
// index is in the tree of size leaves (index < size). A client checks it
// with CheckInclusion against a checkpoint of that size.
func InclusionProof(size, index int64, r HashReader) ([][32]byte, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	if index < 0 || index >= size {
		return nil, fmt.Errorf("audit: inclusion proof of leaf %d in a tree of size %d: the index must be below the size", index, size)
	}
	p, err := tlog.ProveRecord(size, index, tlogReader{r})
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof of leaf %d at size %d: %w", index, size, err)
	}
	return fromTlog(p), nil
}

// ConsistencyProof returns the RFC 6962 consistency proof that the tree of
// newSize leaves extends the tree of its first oldSize leaves (oldSize ≤
// newSize). A client holding a checkpoint of oldSize checks it with
// CheckConsistency against a newer one. The proof from the empty tree, and
// between equal sizes, is empty.
func ConsistencyProof(newSize, oldSize int64, r HashReader) ([][32]byte, error) {
	if err := checkSize(newSize); err != nil {
		return nil, err
	}
	if oldSize < 0 || oldSize > newSize {
		return nil, fmt.Errorf("audit: consistency proof from size %d to %d: the old size must be in [0, new size]", oldSize, newSize)
	}
	if oldSize == 0 {
		return [][32]byte{}, nil
	}
	p, err := tlog.ProveTree(newSize, oldSize, tlogReader{r})
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof from size %d to %d: %w", oldSize, newSize, err)
	}
	return fromTlog(p), nil
}

// CheckInclusion verifies that proof shows the leaf hash leaf at index in
// the tree of size leaves whose root is root. It returns an error wrapping
// ErrProof if it does not.
func CheckInclusion(proof [][32]byte, size int64, root [32]byte, index int64, leaf [32]byte) error {
	if err := checkSize(size); err != nil {
		return fmt.Errorf("%w: %v", ErrProof, err)
	}
	if index < 0 || index >= size {
		return fmt.Errorf("%w: leaf %d is not below the tree size %d", ErrProof, index, size)
	}
	if tlog.CheckRecord(toTlog(proof), size, root, index, leaf) != nil {
		return fmt.Errorf("%w: leaf %d is not in the tree of size %d with that root", ErrProof, index, size)
	}
	return nil
}

// CheckConsistency verifies that proof shows the tree of newSize leaves
// with root newRoot extending the tree of oldSize leaves with root oldRoot:
// the log grew by appending only. It returns an error wrapping ErrProof if
// it does not, which, for two checkpoints signed by the same key, is
// evidence of a rewritten log (a fork).
func CheckConsistency(proof [][32]byte, newSize int64, newRoot [32]byte, oldSize int64, oldRoot [32]byte) error {
	if err := checkSize(newSize); err != nil {
		return fmt.Errorf("%w: %v", ErrProof, err)
	}
	if oldSize < 0 || oldSize > newSize {
		return fmt.Errorf("%w: old size %d is not in [0, new size %d]", ErrProof, oldSize, newSize)
	}
	if oldSize == 0 {
		// Every tree extends the empty one, whose root is fixed.
		if len(proof) != 0 || oldRoot != emptyRoot || newSize == 0 && newRoot != emptyRoot {
			return fmt.Errorf("%w: bad proof or root for the empty tree", ErrProof)
		}
		return nil
	}
	if tlog.CheckTree(toTlog(proof), newSize, newRoot, oldSize, oldRoot) != nil {
		return fmt.Errorf("%w: the tree of size %d does not extend the tree of size %d with those roots", ErrProof, newSize, oldSize)
	}
	return nil
}
