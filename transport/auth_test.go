package transport

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
)

// A verified HS256 token is remembered, but its time window is still checked on every use, against the
// verifier's clock.
func TestVerifiedTokenStillExpires(t *testing.T) {
	t.Parallel()
	secret := []byte("test-secret-0123456789abcdef0123456789")
	t0 := time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	v, err := NewJWTVerifier(context.Background(), JWTConfig{Secret: secret, Now: clock})
	require.NoError(t, err)
	tok, err := SignToken(TokenRequest{Secret: secret, Subject: "svc", TTL: time.Second, Now: t0})
	require.NoError(t, err)

	for i := 0; i < 2; i++ {
		claims, err := v.Verify(tok)
		require.NoError(t, err)
		assert.Equal(t, "svc", claims.Subject)
	}
	v.mu.RLock()
	_, cached := v.verified[sha256.Sum256([]byte(tok))]
	v.mu.RUnlock()
	require.True(t, cached, "the second use came from the cache")

	now = t0.Add(-time.Second)
	_, err = v.Verify(tok)
	assert.ErrorIs(t, err, userhook.ErrUnauthorized)
	assert.ErrorContains(t, err, "not valid yet", "before nbf")

	now = t0.Add(2 * time.Second) // past exp (t0 + 1 s)
	_, err = v.Verify(tok)
	assert.ErrorIs(t, err, userhook.ErrUnauthorized)
	assert.ErrorContains(t, err, "expired")

	_, err = v.Verify(tok + "x")
	assert.ErrorIs(t, err, userhook.ErrUnauthorized, "a changed token is verified afresh")

	fresh, err := NewJWTVerifier(context.Background(), JWTConfig{Secret: secret, Now: clock})
	require.NoError(t, err)
	_, err = fresh.Verify(tok)
	assert.ErrorContains(t, err, "expired", "a token never seen is checked against the same clock")
}
