package aggregate

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStateCacheKeepsWhatItWasGiven: a cached state comes back as it was put (times as instants in UTC), shares
// nothing mutable with the caller, keeps the latest recentIDs event ids, and an older state never replaces a
// newer one.
func TestStateCacheKeepsWhatItWasGiven(t *testing.T) {
	c := newStateCache(10)
	created := time.Date(2024, 5, 1, 10, 0, 0, 123, time.UTC)
	u := User{ID: "auth0|1", Email: "a@example.com", EmailVerified: true, Name: "A", Profile: map[string]any{"k": "v"},
		Status: StatusDeleted, Version: 3, Position: 42, CreatedAt: created, UpdatedAt: created.Add(time.Hour)}
	var ids []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("e%d", i))
	}
	c.put(u, ids)
	u.Profile["k"] = "changed by the caller"

	got, gotIDs, ok := c.get("auth0|1")
	require.True(t, ok)
	assert.Equal(t, ids[20-recentIDs:], gotIDs, "the latest ids, oldest first")
	assert.Equal(t, "v", got.Profile["k"])
	got.Profile["k"] = "changed by a reader"
	again, _, _ := c.get("auth0|1")
	assert.Equal(t, "v", again.Profile["k"])
	want := u
	want.Profile = map[string]any{"k": "v"}
	assert.Equal(t, want, again)

	c.put(User{ID: "auth0|1", Version: 2}, []string{"old"})
	again, _, _ = c.get("auth0|1")
	assert.Equal(t, int64(3), again.Version, "an older state does not replace a newer one")

	c.put(User{ID: "auth0|2", Status: StatusActive, Version: 1}, nil)
	fresh, freshIDs, ok := c.get("auth0|2")
	require.True(t, ok)
	assert.Empty(t, freshIDs)
	assert.True(t, fresh.CreatedAt.IsZero())
	assert.Equal(t, StatusActive, fresh.Status)

	for _, status := range []Status{StatusActive, StatusInactive, StatusDeleted} {
		c.put(User{ID: "auth0|3", Status: status, Version: 2}, nil)
		got, _, ok := c.get("auth0|3")
		require.True(t, ok)
		assert.Equal(t, status, got.Status, "every status comes back as it was put")
		c.drop("auth0|3")
	}
}

func TestStateCacheIsBounded(t *testing.T) {
	c := newStateCache(100)
	for i := range 1000 {
		c.put(User{ID: fmt.Sprintf("u%d", i), Version: 1}, []string{fmt.Sprintf("e%d", i)})
		require.LessOrEqual(t, len(c.m), 100)
	}
	_, _, ok := c.get("u999")
	assert.True(t, ok, "the newest is kept")
}
