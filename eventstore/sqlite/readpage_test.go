package sqlite_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
)

// TestReadAllPagesShareNothing: ReadAll's events keep the driver's copy of their data, which must be theirs
// alone: reading more pages, and more rows of the same page, leaves what was read as it was.
func TestReadAllPagesShareNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	defer s.Close()
	for i := range 20 {
		_, err := s.Append(ctx, fmt.Sprintf("s-%d", i), 0, eventstore.Event{
			ID: fmt.Sprintf("e-%d", i), StreamType: "T", Type: "t.v1",
			Data:     []byte(fmt.Sprintf(`{"n":%d,"pad":"%0*d"}`, i, i*7, 0)),
			Metadata: map[string]string{"request": fmt.Sprint(i)},
		})
		require.NoError(t, err)
	}
	var pages [][]eventstore.Event
	for after := int64(0); ; {
		page, err := s.ReadAll(ctx, after, 3)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		pages = append(pages, page)
		after = page[len(page)-1].Position
	}
	loaded, err := s.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	var all []eventstore.Event
	for _, page := range pages {
		all = append(all, page...)
	}
	require.Len(t, all, 20)
	assert.Equal(t, loaded, all)
	for i, e := range all {
		assert.JSONEq(t, fmt.Sprintf(`{"n":%d,"pad":"%0*d"}`, i, i*7, 0), string(e.Data))
		assert.Equal(t, map[string]string{"request": fmt.Sprint(i)}, e.Metadata)
		one, err := s.Load(ctx, e.StreamID)
		require.NoError(t, err)
		assert.Equal(t, one, []eventstore.Event{e}, "ReadAll reads what Load reads")
	}
}
