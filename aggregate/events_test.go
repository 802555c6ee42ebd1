package aggregate_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
)

// TestEveryEventIsStoredAndPublic ties the domain events to the type lists: every event's stored type is one
// StoredTypes lists and Decode reads, and maps to a public type; the public types are exactly those reached.
func TestEveryEventIsStoredAndPublic(t *testing.T) {
	t.Parallel()
	events := []aggregate.Event{
		aggregate.UserRegistered{}, aggregate.UserEmailChanged{}, aggregate.UserProfileUpdated{},
		aggregate.UserEmailVerified{}, aggregate.UserDeleted{}, aggregate.UserRestored{},
		aggregate.UserDeactivated{}, aggregate.UserReactivated{},
	}
	var types []string
	reached := map[string]bool{}
	for _, e := range events {
		typ := e.EventType()
		types = append(types, typ)
		data, err := aggregate.Encode(e)
		require.NoError(t, err)
		decoded, err := aggregate.Decode(eventstore.Event{Type: typ, Data: data})
		require.NoError(t, err, typ)
		assert.Equal(t, typ, decoded.EventType())
		require.NotEmpty(t, aggregate.PublicType(typ), "%s has a public type", typ)
		reached[aggregate.PublicType(typ)] = true
	}
	assert.ElementsMatch(t, types, aggregate.StoredTypes())
	assert.Len(t, aggregate.PublicTypes(), len(reached))
	for _, p := range aggregate.PublicTypes() {
		assert.True(t, reached[p], "some event is a %s", p)
	}
	assert.Empty(t, aggregate.PublicType("user.exploded.v1"))
}

// TestPublicTypes: what each stored type is called outside, and the order subscribers see them listed in.
func TestPublicTypes(t *testing.T) {
	t.Parallel()
	for stored, public := range map[string]string{
		aggregate.TypeUserRegistered:     "user.created",
		aggregate.TypeUserRestored:       "user.created",
		aggregate.TypeUserEmailChanged:   "user.updated",
		aggregate.TypeUserProfileUpdated: "user.updated",
		aggregate.TypeUserDeleted:        "user.deleted",
		aggregate.TypeUserEmailVerified:  "user.email_verified",
		aggregate.TypeUserDeactivated:    "user.deactivated",
		aggregate.TypeUserReactivated:    "user.reactivated",
	} {
		assert.Equal(t, public, aggregate.PublicType(stored), stored)
	}
	assert.Equal(t, []string{"user.created", "user.updated", "user.deleted", "user.email_verified",
		"user.deactivated", "user.reactivated"}, aggregate.PublicTypes())
	assert.Equal(t, "user.deactivated.v1", aggregate.TypeUserDeactivated)
	assert.Equal(t, "user.reactivated.v1", aggregate.TypeUserReactivated)
}

// TestOutcomesCarryACategory: the outcomes a transport may let through answer with a status, not a 500.
func TestOutcomesCarryACategory(t *testing.T) {
	t.Parallel()
	assert.ErrorIs(t, aggregate.ErrStale, userhook.ErrConflict)
	assert.ErrorIs(t, aggregate.ErrUserDeleted, userhook.ErrConflict)
	assert.ErrorIs(t, aggregate.ErrUnknownUser, userhook.ErrNotFound)
	assert.NotErrorIs(t, aggregate.ErrStale, aggregate.ErrUserDeleted, "each outcome is told apart")
}
