package aggregate_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
)

// countingLoads counts the stream reads that reach the store.
type countingLoads struct {
	eventstore.Store
	loads int
}

func (s *countingLoads) Load(ctx context.Context, id string) ([]eventstore.Event, error) {
	s.loads++
	return s.Store.Load(ctx, id)
}

// TestGuessNewWithAnotherWriter: two services on one store, as two instances on one PostgreSQL. The one that
// guesses never decides from a stale guess: a user the other instance stored is read once the store refuses
// the guess, and every decision comes out as with a read.
func TestGuessNewWithAnotherWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other, store := newService(t, fixedClock)
	counted := &countingLoads{Store: store}
	guessing := aggregate.NewService(counted, fixedClock)
	guessing.GuessNew(100)

	res, err := guessing.Execute(ctx, aggregate.Ensure{UserID: "new", Email: "new@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	assert.Len(t, res.Events, 1)
	assert.Zero(t, counted.loads, "a new user is appended without a read")

	_, err = other.Execute(ctx, aggregate.Ensure{UserID: "elsewhere", Email: "a@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	res, err = guessing.Execute(ctx, aggregate.Ensure{UserID: "elsewhere", Email: "a@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	assert.Empty(t, res.Events, "the same ensure again changes nothing, though this instance never saw the user")
	assert.EqualValues(t, 1, res.User.Version)
	res, err = guessing.Execute(ctx, aggregate.Ensure{UserID: "elsewhere", Email: "b@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, aggregate.TypeUserEmailChanged, res.Events[0].Type, "an email change, not a second registration")
	assert.Len(t, loadStream(t, store, "elsewhere"), 2)

	// The other instance changes the user again; this one, which knows the user exists, reads before deciding.
	_, err = other.Execute(ctx, aggregate.Ensure{UserID: "elsewhere", Email: "c@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	before := counted.loads
	res, err = guessing.Execute(ctx, aggregate.Ensure{UserID: "elsewhere", Email: "b@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1, "back to b: a change, decided from the stream, not from memory")
	assert.Equal(t, before+1, counted.loads)
}

// TestGuessNewRemembersABoundedSet: the ids known to exist stay within the bound however many users come.
func TestGuessNewRemembersABoundedSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, store := newService(t, fixedClock)
	svc := aggregate.NewService(store, fixedClock)
	svc.GuessNew(10)
	for i := range 50 {
		_, err := svc.Execute(ctx, aggregate.Ensure{UserID: fmt.Sprintf("u%d", i), Email: "x@example.com"}, aggregate.Options{})
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, aggregate.KnownUsers(svc), 10)
}
