package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogWriterFlushesOnTimeAndOnClose(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	lw := newLogWriter(out, 20*time.Millisecond)
	_, err := lw.Write([]byte("first\n"))
	require.NoError(t, err)
	assert.Empty(t, out.String(), "buffered, not written at once")
	assert.Eventually(t, func() bool { return out.String() == "first\n" }, time.Second, 5*time.Millisecond)

	slow := newLogWriter(out, time.Hour)
	_, err = slow.Write([]byte("last\n"))
	require.NoError(t, err)
	require.NoError(t, slow.Close())
	assert.True(t, strings.HasSuffix(out.String(), "last\n"), "Close writes out what is left")
	require.NoError(t, lw.Close())
}
