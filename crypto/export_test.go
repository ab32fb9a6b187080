package crypto

import "filippo.io/age"

// NewIngestIdentityForTest builds an IngestIdentity from a known age secret
// key, so that the fuzz corpus can hold files encrypted to a fixed
// recipient. It exists in test builds only.
func NewIngestIdentityForTest(secret string) (*IngestIdentity, error) {
	id, err := age.ParseHybridIdentity(secret)
	if err != nil {
		return nil, err
	}
	return newIngestIdentity(id), nil
}
