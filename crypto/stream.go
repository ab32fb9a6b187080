package crypto

import (
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// EncryptStream returns a writer that encrypts what is written to it with
// age to one recipient (as ParseRecipient accepts) and writes the
// ciphertext to w as it goes, holding at most one chunk (64 KiB) of
// plaintext. Close writes the last chunk, which age marks as the last:
// a stream that is never closed is incomplete, and age refuses to
// decrypt its end. A caller that finds, before Close, that what it wrote
// is wrong cuts the stream by not closing it.
func EncryptStream(w io.Writer, recipient string) (io.WriteCloser, error) {
	r, err := parseRecipient(strings.TrimSpace(recipient))
	if err != nil {
		return nil, err
	}
	enc, err := age.Encrypt(w, r)
	if err != nil {
		return nil, fmt.Errorf("crypto: age encryption failed: %w", err)
	}
	return enc, nil
}
