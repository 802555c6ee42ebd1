package postgres

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/storetest"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
)

// TestIntegrationCommitFast: a batch the unique indexes decide alone is written in one round trip; one they
// would refuse, or one that expects a version its stream lacks, is left unwritten for the reading path to
// decide, and nothing of it is stored.
func TestIntegrationCommitFast(t *testing.T) {
	ctx := context.Background()
	db, err := postgresdb.Open(ctx, pgtest.URL(t), 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s, err := New(ctx, db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	pending := func(stream string, expected int64, events ...eventstore.Event) *eventstore.Pending {
		return &eventstore.Pending{Ctx: ctx, Stream: stream, Expected: expected, Events: events}
	}
	seed := storetest.Event("t.v1", `{}`)
	first := []*eventstore.Pending{pending("a", 0, seed), pending("b", 0, storetest.Event("t.v1", `{}`))}
	done, err := s.commitFast(ctx, first)
	require.NoError(t, err)
	require.True(t, done)
	assert.Equal(t, []int64{1, 2}, []int64{first[0].Out[0].Position, first[1].Out[0].Position})
	assert.Equal(t, int64(1), first[1].Out[0].Version)

	count := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
		return n
	}
	for name, batch := range map[string][]*eventstore.Pending{
		"a stored event id":       {pending("c", 0, storetest.Event("t.v1", `{}`)), pending("d", 0, seed)},
		"a stream taken":          {pending("c", 0, storetest.Event("t.v1", `{}`)), pending("a", 0, storetest.Event("t.v1", `{}`))},
		"a version not yet there": {pending("c", 0, storetest.Event("t.v1", `{}`)), pending("a", 3, storetest.Event("t.v1", `{}`))},
	} {
		done, err := s.commitFast(ctx, batch)
		require.NoError(t, err, name)
		assert.False(t, done, name)
		assert.Equal(t, 2, count(), "%s: nothing written", name)
	}
	// An update that names the version stored goes the fast way too.
	next := []*eventstore.Pending{pending("a", 1, storetest.Event("t.v1", `{}`))}
	done, err = s.commitFast(ctx, next)
	require.NoError(t, err)
	require.True(t, done)
	assert.Equal(t, int64(2), next[0].Out[0].Version)
	assert.Equal(t, int64(3), next[0].Out[0].Position)
}
