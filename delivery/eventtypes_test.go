package delivery_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/delivery"
)

// TestEventTypesAreThePublicTypes ties the outbound filter list to the domain: every public type a stored
// event maps to can be subscribed to, and nothing else can.
func TestEventTypesAreThePublicTypes(t *testing.T) {
	t.Parallel()
	reachable := map[string]bool{}
	for _, stored := range aggregate.StoredTypes() {
		public := aggregate.PublicType(stored)
		reachable[public] = true
		assert.Contains(t, delivery.EventTypes, public, "a %s (stored %s) can be subscribed to", public, stored)
	}
	for _, typ := range delivery.EventTypes {
		assert.True(t, reachable[typ], "%s is subscribable but no event is one", typ)
	}
	assert.NotContains(t, delivery.EventTypes, delivery.All, "all is a filter, not a type")
}

// TestEventTypesListed: the names a webhook subscribes to, in the order they are listed (API.md).
func TestEventTypesListed(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"user.created", "user.updated", "user.deleted", "user.email_verified",
		"user.deactivated", "user.reactivated"}, delivery.EventTypes)
	for _, typ := range []string{"user.deactivated", "user.reactivated"} {
		w := delivery.Webhook{Name: "lifecycle", URL: "https://example.com/hook", Events: []string{typ}, Enabled: true,
			ContentType: "application/json"}
		assert.NoError(t, delivery.Validate(w, delivery.Guard{}), "a webhook can subscribe to %s", typ)
		assert.True(t, w.Matches(typ))
		assert.False(t, w.Matches(aggregate.PublicUserCreated))
		w.Events = []string{delivery.All}
		assert.True(t, w.Matches(typ), "all includes %s", typ)
	}
}
