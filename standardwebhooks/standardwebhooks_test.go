package standardwebhooks_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/standardwebhooks"
)

func TestSignAndMatch(t *testing.T) {
	t.Parallel()
	k1, err := standardwebhooks.ParseSecret(standardwebhooks.NewSecret())
	require.NoError(t, err)
	k2, err := standardwebhooks.ParseSecret(standardwebhooks.NewSecret())
	require.NoError(t, err)
	at := time.Unix(1_700_000_000, 0)
	body := []byte(`{"a":1}`)
	header := standardwebhooks.Sign("msg_1", at, body, k1, k2)
	require.Len(t, strings.Fields(header), 2, "one signature per key")

	// The first signature, computed by hand as the spec says.
	mac := hmac.New(sha256.New, k1)
	mac.Write([]byte("msg_1.1700000000." + string(body)))
	assert.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), strings.Fields(header)[0])

	assert.Equal(t, 0, standardwebhooks.Match(header, "msg_1", "1700000000", body, [][]byte{k1}))
	assert.Equal(t, 1, standardwebhooks.Match(strings.Fields(header)[1], "msg_1", "1700000000", body, [][]byte{k1, k2}))
	assert.Equal(t, -1, standardwebhooks.Match(header, "msg_1", "1700000000", []byte(`{"a":2}`), [][]byte{k1, k2}), "another body")
	assert.Equal(t, -1, standardwebhooks.Match(header, "msg_2", "1700000000", body, [][]byte{k1}), "another id")
	assert.Equal(t, -1, standardwebhooks.Match("v2,"+strings.TrimPrefix(strings.Fields(header)[0], "v1,"), "msg_1", "1700000000", body, [][]byte{k1}), "another version")
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "whsec_", "secret", "whsec_!!!", "WHSEC_AAAA"} {
		_, err := standardwebhooks.ParseSecret(bad)
		assert.ErrorIs(t, err, standardwebhooks.ErrSecret, bad)
	}
	key, err := standardwebhooks.ParseSecret(" whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")) + " ")
	require.NoError(t, err)
	assert.Equal(t, []byte("0123456789abcdef"), key)
}
