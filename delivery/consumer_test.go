package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/delivery"
	deliverysqlite "github.com/userhook/userhook/delivery/sqlite"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
	"github.com/userhook/userhook/stream"
)

// TestConsumerLeavesOutAnEventItCannotDeliver: in a run with an event whose user's stream holds an event this
// build cannot read, the other events' deliveries are still created, and the message fails as unprocessable
// (bound for the poison topic) instead of failing, and holding back the whole run, forever.
func TestConsumerLeavesOutAnEventItCannotDeliver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t)
	events, err := sqlite.New(ctx, db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = events.Close() })
	hooks, err := deliverysqlite.New(ctx, db)
	require.NoError(t, err)
	require.NoError(t, hooks.CreateWebhook(ctx, delivery.Webhook{ID: "wh_all", Name: "all", URL: "https://example.com/hook",
		Events: []string{"all"}, Enabled: true, ContentType: "application/json", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		CreatedAt: time.Now(), UpdatedAt: time.Now()}))
	svc := aggregate.NewService(events, nil)
	// A stream that starts with an event of a type from a newer release, then a registration.
	_, err = events.Append(ctx, "ghost", 0, eventstore.Event{ID: "ev-new-type", StreamType: aggregate.StreamType,
		Type: "user.teleported.v9", Data: []byte(`{}`)})
	require.NoError(t, err)
	_, err = events.Append(ctx, "ghost", 1, eventstore.Event{ID: "ev-ghost-reg", StreamType: aggregate.StreamType,
		Type: aggregate.TypeUserRegistered, Data: []byte(`{"email":"g@example.com"}`)})
	require.NoError(t, err)
	for i := range 3 {
		_, err := svc.Execute(ctx, aggregate.Ensure{UserID: fmt.Sprintf("u%d", i), Email: "u@example.com"}, aggregate.Options{})
		require.NoError(t, err)
	}
	run, err := events.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	msgs, err := stream.Messages(run)
	require.NoError(t, err)
	require.Len(t, msgs, 1)

	consumer := &delivery.Consumer{Store: hooks, Events: events}
	err = consumer.Handle(message.NewMessage(msgs[0].UUID, msgs[0].Payload))
	assert.ErrorIs(t, err, stream.ErrUnprocessable)
	list, err := hooks.Deliveries(ctx, delivery.Filter{WebhookID: "wh_all", Limit: 100})
	require.NoError(t, err)
	var ids []string
	for _, d := range list {
		ids = append(ids, d.EventID)
	}
	assert.Len(t, ids, 3, "the three other users' registrations are delivered: %v", ids)
	assert.NotContains(t, ids, "ev-ghost-reg")
}

// TestConsumerDeliversDeactivations: a webhook subscribed to user.deactivated and user.reactivated gets a
// delivery of each, typed so, with the user's state after it, and none of the registration.
func TestConsumerDeliversDeactivations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t)
	events, err := sqlite.New(ctx, db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = events.Close() })
	hooks, err := deliverysqlite.New(ctx, db)
	require.NoError(t, err)
	require.NoError(t, hooks.CreateWebhook(ctx, delivery.Webhook{ID: "wh_lifecycle", Name: "lifecycle", URL: "https://example.com/hook",
		Events: []string{aggregate.PublicUserDeactivated, aggregate.PublicUserReactivated}, Enabled: true,
		ContentType: "application/json", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		CreatedAt: time.Now(), UpdatedAt: time.Now()}))
	svc := aggregate.NewService(events, nil)
	for _, cmd := range []aggregate.Command{
		aggregate.Ensure{UserID: "u1", Email: "u@example.com"},
		aggregate.Deactivate{UserID: "u1"},
		aggregate.Reactivate{UserID: "u1"},
	} {
		_, err := svc.Execute(ctx, cmd, aggregate.Options{})
		require.NoError(t, err)
	}
	run, err := events.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.NoError(t, (&delivery.Consumer{Store: hooks, Events: events}).ConsumeBatch(ctx, run))

	list, err := hooks.Deliveries(ctx, delivery.Filter{WebhookID: "wh_lifecycle", Limit: 100})
	require.NoError(t, err)
	require.Len(t, list, 2)
	byType := map[string]delivery.Delivery{}
	for _, d := range list {
		byType[d.EventType] = d
	}
	for typ, status := range map[string]string{"user.deactivated": "inactive", "user.reactivated": "active"} {
		d, ok := byType[typ]
		require.True(t, ok, "a %s delivery", typ)
		var ce struct {
			Type string `json:"type"`
			Data struct {
				User struct {
					Status string `json:"status"`
				} `json:"user"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(d.Payload, &ce))
		assert.Equal(t, typ, ce.Type)
		assert.Equal(t, status, ce.Data.User.Status, "the user's state right after the %s", typ)
	}
}
