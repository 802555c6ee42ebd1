package unixnano_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/userhook/userhook/internal/unixnano"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	assert.Equal(t, int64(0), unixnano.Of(time.Time{}))
	assert.True(t, unixnano.Time(0).IsZero())
	at := time.Date(2024, 1, 1, 3, 21, 36, 123456789, time.FixedZone("x", 3600))
	assert.True(t, at.Equal(unixnano.Time(unixnano.Of(at))))
	assert.Equal(t, time.UTC, unixnano.Time(unixnano.Of(at)).Location())
}
