package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
)

// noiseSeedLabel separates the noise seeds of dp tables from record keys,
// which are derived under the same vault secret: a seed is an HMAC under
// HMAC(secret, label), never under the secret itself, so no record key
// message can collide with a seed's.
const noiseSeedLabel = "censusvault/dp-noise-seed/v1"

// NoiseSeed derives the noise seed of a differentially private table from
// its canonical query: HMAC-SHA-256 under a key derived from the vault's
// record-key secret (sealed by the key provider). The same query always
// gets the same seed, hence the same noise — a repeat reveals nothing new
// — and a different query an independent one. The seed is a secret:
// whoever holds it can subtract the noise. Never log or store it.
func (r *RecordKeyer) NoiseSeed(query []byte) [32]byte {
	k := hmac.New(sha256.New, r.secret[:])
	k.Write([]byte(noiseSeedLabel))
	derived := k.Sum(nil)
	defer clear(derived)
	m := hmac.New(sha256.New, derived)
	m.Write(query)
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}
