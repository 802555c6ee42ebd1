package source_test

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/source"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		want    []string
	}{
		{"None", nil, nil},
		{"Empty", []string{}, nil},
		{"One", []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		{"TwoInOrder", []string{"next", "current"}, []string{"next", "current"}},
		{"AnyText", []string{"", "quote \" back\\slash ü \x00 \n"}, []string{"", "quote \" back\\slash ü \x00 \n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := source.Seal(tc.secrets)
			require.NoError(t, err)
			require.NotEmpty(t, sealed, "the sealed form is never empty, so a store's NOT NULL column always has a value")
			assert.Equal(t, byte(0x00), sealed[0], "format 0: plain")
			got, err := source.Open(sealed)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSealDoesNotShareMemory(t *testing.T) {
	t.Parallel()
	secrets := []string{"a", "b"}
	sealed, err := source.Seal(secrets)
	require.NoError(t, err)
	secrets[0] = "changed"
	got, err := source.Open(sealed)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, got)
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value-never-in-an-error"
	tests := []struct {
		name   string
		sealed []byte
	}{
		{"Nothing", nil},
		{"Empty", []byte{}},
		{"UnknownFormat", append([]byte{0x7f}, `["`+secret+`"]`...)},
		{"NotJSON", append([]byte{0x00}, secret...)},
		{"Truncated", append([]byte{0x00}, `["`+secret...)},
		{"NotStrings", append([]byte{0x00}, `[{"`+secret+`": 1}]`...)},
		{"NotAList", append([]byte{0x00}, `"`+secret+`"`...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := source.Open(tc.sealed)
			require.Error(t, err)
			assert.Nil(t, got)
			assert.NotContains(t, err.Error(), secret, "an error never carries a secret")
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		id := source.NewID()
		require.True(t, strings.HasPrefix(id, "src_"), id)
		b, err := hex.DecodeString(strings.TrimPrefix(id, "src_"))
		require.NoError(t, err, id)
		assert.Len(t, b, 16)
		assert.False(t, seen[id], "ids are unique: %s", id)
		seen[id] = true
	}
}

func TestGenerateSecret(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		s := source.GenerateSecret()
		assert.NotContains(t, s, "=", "no padding")
		b, err := base64.RawURLEncoding.DecodeString(s)
		require.NoError(t, err, "base64url")
		assert.Len(t, b, 32)
		assert.False(t, seen[s], "secrets are unique")
		seen[s] = true
	}
}

func TestParseProvider(t *testing.T) {
	t.Parallel()
	for _, p := range source.Providers() {
		got, err := source.ParseProvider(string(p))
		require.NoError(t, err)
		assert.Equal(t, p, got)
	}
	_, err := source.ParseProvider("github")
	assert.ErrorIs(t, err, userhook.ErrInvalid)
	assert.Equal(t, []source.Provider{source.Clerk, source.WorkOS, source.Zitadel},
		filter(source.Providers(), source.Provider.IssuesSecret), "the providers that issue their own secret")
}

func filter[T any](xs []T, keep func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}
