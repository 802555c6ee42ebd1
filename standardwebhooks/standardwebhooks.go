// Package standardwebhooks holds the Standard Webhooks primitives both directions use: inbound signatures that
// transport verifies and outbound deliveries that delivery signs. A signature is the base64 HMAC-SHA256 of
// "id.timestamp.body" under the key a whsec_ secret encodes, written "v1,<base64>"; several are separated by
// spaces (one per secret, during a rotation).
package standardwebhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every secret.
const SecretPrefix = "whsec_"

// ErrSecret says a string is not whsec_ followed by base64.
var ErrSecret = errors.New("a webhook secret is whsec_ followed by base64")

// ParseSecret returns the HMAC key of a whsec_ secret.
func ParseSecret(s string) ([]byte, error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(raw)
	if !ok || err != nil || len(key) == 0 {
		return nil, ErrSecret
	}
	return key, nil
}

// NewSecret returns a new secret of 24 random bytes.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// MAC is the raw HMAC-SHA256 of "id.timestamp.body" under key.
func MAC(key []byte, id, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return mac.Sum(nil)
}

// Sign returns the webhook-signature header value of a message: one v1 signature per key.
func Sign(id string, timestamp time.Time, body []byte, keys ...[]byte) string {
	ts := strconv.FormatInt(timestamp.Unix(), 10)
	sigs := make([]string, len(keys))
	for i, key := range keys {
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(MAC(key, id, ts, body))
	}
	return strings.Join(sigs, " ")
}

// Match returns the index of the first key that one of header's v1 signatures was made with, compared in
// constant time, or -1.
func Match(header, id, timestamp string, body []byte, keys [][]byte) int {
	for i, key := range keys {
		want := MAC(key, id, timestamp, body)
		for _, sig := range strings.Fields(header) {
			version, value, ok := strings.Cut(sig, ",")
			if !ok || version != "v1" {
				continue
			}
			if got, err := base64.StdEncoding.DecodeString(value); err == nil && hmac.Equal(got, want) {
				return i
			}
		}
	}
	return -1
}
