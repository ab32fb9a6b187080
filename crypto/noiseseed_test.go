package crypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// TestNoiseSeed: seeds are fixed per (secret, query), differ between
// queries and secrets, and are not the record keys' HMAC of the same
// bytes under the bare secret (a seed leaked as a record key, or the
// other way round, would let someone subtract noise).
func TestNoiseSeed(t *testing.T) {
	a := newRecordKeyer(bytes.Repeat([]byte{1}, 32))
	b := newRecordKeyer(bytes.Repeat([]byte{2}, 32))
	q1, q2 := []byte(`{"dims":["sex"]}`), []byte(`{"dims":["religion"]}`)
	if a.NoiseSeed(q1) != a.NoiseSeed(q1) {
		t.Fatal("the same query got two seeds")
	}
	if a.NoiseSeed(q1) == a.NoiseSeed(q2) {
		t.Fatal("two queries got one seed")
	}
	if a.NoiseSeed(q1) == b.NoiseSeed(q1) {
		t.Fatal("two vault secrets gave one seed")
	}
	m := hmac.New(sha256.New, bytes.Repeat([]byte{1}, 32))
	m.Write(q1)
	if s := a.NoiseSeed(q1); bytes.Equal(s[:], m.Sum(nil)) {
		t.Fatal("the seed is the bare secret's HMAC of the query: not separated from other uses of the secret")
	}
}
