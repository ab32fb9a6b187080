package audit

import "crypto/sha256"

// Genesis is the chain hash before the first event: 32 zero bytes. The
// first record's chain hash is ChainHash(Genesis, its leaf hash). It is a
// variable only because Go has no array constants; nothing may modify it.
var Genesis [32]byte

// LeafHash returns the RFC 6962 leaf hash of an event's bytes,
// SHA-256(0x00 ‖ eventBytes). The 0x00 prefix keeps leaves distinct from
// interior nodes (prefix 0x01) once events become Merkle tree leaves.
func LeafHash(eventBytes []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(eventBytes)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ChainHash returns SHA-256(prev ‖ leaf), the chain hash of an event whose
// leaf hash is leaf and whose predecessor's chain hash is prev (Genesis for
// the first event).
func ChainHash(prev, leaf [32]byte) [32]byte {
	var buf [64]byte
	copy(buf[:32], prev[:])
	copy(buf[32:], leaf[:])
	return sha256.Sum256(buf[:])
}

// Record is what storage keeps per event: the canonical bytes and both
// hashes, at the event's index. Storage treats it as opaque.
type Record struct {
	Index     int64
	Event     []byte
	LeafHash  [32]byte
	ChainHash [32]byte
}

// Seal encodes e and links it after the record whose chain hash is
// prevChain (Genesis for index 0). The caller assigns e.Index, the next
// position in the log, and stores the result in the same transaction as the
// change the event records.
func Seal(prevChain [32]byte, e *Event) (Record, error) {
	b, err := e.Encode()
	if err != nil {
		return Record{}, err
	}
	leaf := LeafHash(b)
	return Record{
		Index:     e.Index,
		Event:     b,
		LeafHash:  leaf,
		ChainHash: ChainHash(prevChain, leaf),
	}, nil
}
