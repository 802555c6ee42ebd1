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
