package source

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Secrets at rest.
//
// Seal and Open are the one place that writes and reads a source's secrets at rest: a store keeps the bytes
// Seal returns, in a column of its own, and hands them back to Open; no store encodes, decodes, logs or
// compares secrets any other way. The sealed form starts with a one-byte format tag, so that a format added
// later is told apart from the ones already stored. Format 0, the only one today, is the secrets as a JSON
// array, unencrypted. The erasure issue (API.md, Erasure: "Webhook and source secrets are stored encrypted
// with the master key") adds an encrypted format here, and Open keeps reading format 0 so that sources
// stored before it still open.

// formatPlain tags secrets sealed as a plain JSON array.
const formatPlain byte = 0x00

// Seal returns the form in which secrets are stored: never empty, whatever secrets holds.
func Seal(secrets []string) ([]byte, error) {
	if secrets == nil {
		secrets = []string{} // "[]", not "null": one encoding for none
	}
	b, err := json.Marshal(secrets)
	if err != nil {
		return nil, fmt.Errorf("source: seal secrets: %w", err)
	}
	return append([]byte{formatPlain}, b...), nil
}

// errMalformed is what Open reports for sealed bytes it cannot read. It carries nothing of the bytes
// themselves (a decoder's message may quote part of its input, and the input is secrets).
var errMalformed = errors.New("source: sealed secrets are malformed")

// Open returns the secrets that Seal sealed, in their order; nil when there are none.
func Open(sealed []byte) ([]string, error) {
	if len(sealed) == 0 {
		return nil, errMalformed
	}
	switch sealed[0] {
	case formatPlain:
		var secrets []string
		if err := json.Unmarshal(sealed[1:], &secrets); err != nil {
			return nil, errMalformed
		}
		if len(secrets) == 0 {
			return nil, nil
		}
		return secrets, nil
	default:
		return nil, fmt.Errorf("source: sealed secrets of unknown format %d", sealed[0])
	}
}

// NewID returns a new source id: "src_" and 16 random bytes in hex.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program first)
	return "src_" + hex.EncodeToString(b)
}

// GenerateSecret returns a new secret for a source whose provider does not issue its own (see
// Provider.IssuesSecret): 32 random bytes, base64url without padding, so that it can be pasted into the
// provider's console as a header value or an HMAC key alike.
func GenerateSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
