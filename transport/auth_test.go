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

// A verified HS256 token is remembered, but its time window is still checked on every use.
func TestVerifiedTokenStillExpires(t *testing.T) {
	t.Parallel()
	secret := []byte("test-secret-0123456789abcdef0123456789")
	v, err := NewJWTVerifier(context.Background(), JWTConfig{Secret: secret})
	require.NoError(t, err)
	tok, err := SignToken(TokenRequest{Secret: secret, Subject: "svc", TTL: time.Second})
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

	time.Sleep(2100 * time.Millisecond) // exp has second resolution
	_, err = v.Verify(tok)
	assert.ErrorIs(t, err, userhook.ErrUnauthorized)
	assert.ErrorContains(t, err, "expired")

	_, err = v.Verify(tok + "x")
	assert.ErrorIs(t, err, userhook.ErrUnauthorized, "a changed token is verified afresh")
}
