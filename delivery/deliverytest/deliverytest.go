// Package deliverytest is the contract suite every delivery.Store implementation runs:
//
//	func TestContract(t *testing.T) { deliverytest.Run(t, func(t *testing.T) delivery.Store { ... }) }
//
// Each subtest gets a fresh, empty store from newStore, which arranges for it to be closed when the test ends.
package deliverytest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/delivery"
)

// checkpoint is the consumer name the suite advances.
const checkpoint = "deliverytest"

// t0 carries nanoseconds, so a store that rounds times fails the round trips.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_dGhpcyBpcyB0aGUgbmV4dCBzZWNyZXQhIQ=="
)

// Run runs the whole contract against stores from newStore.
func Run(t *testing.T, newStore func(t *testing.T) delivery.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s delivery.Store)
	}{
		{"CreateAndGetWebhook", testCreateAndGetWebhook},
		{"UnknownWebhook", testUnknownWebhook},
		{"WebhooksOldestFirst", testWebhooksOldestFirst},
		{"UpdateWebhook", testUpdateWebhook},
		{"DeleteWebhookRemovesItsDeliveries", testDeleteWebhook},
		{"EnqueueStoresAndAdvancesCheckpoint", testEnqueue},
		{"CheckpointNeverGoesBack", testCheckpointNeverGoesBack},
		{"EnqueueIsOneTransaction", testEnqueueAtomic},
		{"EnqueueKeepsTheFirstDelivery", testEnqueueIdempotent},
		{"EnqueueSkipsDeletedWebhooks", testEnqueueDeletedWebhook},
		{"ClaimDuePendingSoonestFirst", testClaimDueSoonestFirst},
		{"ClaimLimit", testClaimLimit},
		{"ClaimLeases", testClaimLeases},
		{"ClaimPerWebhook", testClaimPerWebhook},
		{"ClaimPerWebhookPassesOverLeased", testClaimPerWebhookLeased},
		{"ClaimSkipsWebhooks", testClaimSkip},
		{"ClaimNothingWithoutRoom", testClaimNoRoom},
		{"ConcurrentClaimsHandEachDeliveryOnce", testConcurrentClaims},
		{"ConcurrentClaimsPerWebhookHandEachDeliveryOnce", testConcurrentClaimsPerWebhook},
		{"RecordSavesOutcomeAndReleasesLease", testRecord},
		{"RecordSavesWebhookChange", testRecordWebhook},
		{"RecordAfterWebhookDeleted", testRecordDeletedWebhook},
		{"RecordKeepsAConcurrentChange", testRecordKeepsConcurrentChange},
		{"ClaimOneRespectsTheLease", testClaimOne},
		{"DeliveriesPagesNewestFirst", testDeliveriesPages},
		{"DeliveriesFilterByStatus", testDeliveriesStatus},
		{"NextDue", testNextDue},
		{"NextDueSkipsWebhooks", testNextDueSkip},
		{"OldestDue", testOldestDue},
		{"Pending", testPending},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func webhook(id string, created time.Time) delivery.Webhook {
	return delivery.Webhook{
		ID: id, Name: "hook " + id, URL: "https://receiver.example.com/hooks/" + id,
		Events: []string{"user.created", "user.deleted"}, Enabled: true, ContentType: "application/json",
		Secrets: []string{secretA}, CreatedAt: created, UpdatedAt: created,
	}
}

func pending(webhookID, eventID string, position int64, next time.Time) delivery.Delivery {
	return delivery.Delivery{
		ID: "dlv_" + webhookID + "_" + eventID, WebhookID: webhookID, EventID: eventID, EventType: "user.created",
		Position: position, Payload: fmt.Appendf(nil, `{"specversion":"1.0","id":%q}`, eventID),
		Status: delivery.StatusPending, CreatedAt: t0, NextAttemptAt: next,
	}
}

func createWebhooks(t *testing.T, s delivery.Store, ws ...delivery.Webhook) {
	t.Helper()
	for _, w := range ws {
		require.NoError(t, s.CreateWebhook(context.Background(), w))
	}
}

func enqueue(t *testing.T, s delivery.Store, position int64, ds ...delivery.Delivery) {
	t.Helper()
	require.NoError(t, s.Enqueue(context.Background(), checkpoint, position, ds))
}

// settle records a final outcome for d.
func settle(t *testing.T, s delivery.Store, d delivery.Delivery, status string) delivery.Delivery {
	t.Helper()
	d.Status, d.Attempts, d.LastAttemptAt, d.NextAttemptAt = status, d.Attempts+1, t0, time.Time{}
	require.NoError(t, s.Record(context.Background(), d, nil))
	return d
}

func ids(ds []delivery.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func positions(ds []delivery.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.Position
	}
	return out
}

func testCreateAndGetWebhook(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	a := webhook("wh_a", t0)
	b := delivery.Webhook{
		ID: "wh_b", Name: "everything, as CloudEvents", URL: "https://receiver.example.com/all?x=1&y=ü",
		Events: []string{delivery.All}, Enabled: false, ContentType: "application/cloudevents+json",
		Secrets: []string{secretA, secretB}, DisabledReason: "disabled: the endpoint answered 410 Gone",
		FailingSince: t0.Add(-time.Hour), FromPosition: 42, CreatedAt: t0.Add(-2 * time.Hour), UpdatedAt: t0,
	}
	createWebhooks(t, s, a, b)

	got, err := s.Webhook(ctx, "wh_a")
	require.NoError(t, err)
	assert.Equal(t, a, got)
	got, err = s.Webhook(ctx, "wh_b")
	require.NoError(t, err)
	assert.Equal(t, b, got, "every field round-trips, times to the nanosecond")

	assert.Error(t, s.CreateWebhook(ctx, webhook("wh_a", t0)), "an id is stored once")
}

func testUnknownWebhook(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	_, err := s.Webhook(ctx, "wh_nobody")
	assert.ErrorIs(t, err, userhook.ErrNotFound)
	assert.ErrorIs(t, s.UpdateWebhook(ctx, webhook("wh_nobody", t0)), userhook.ErrNotFound)
	assert.ErrorIs(t, s.DeleteWebhook(ctx, "wh_nobody"), userhook.ErrNotFound)
	_, err = s.Delivery(ctx, "dlv_nobody")
	assert.ErrorIs(t, err, userhook.ErrNotFound)
}

func testWebhooksOldestFirst(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	list, err := s.Webhooks(ctx)
	require.NoError(t, err)
	assert.NotNil(t, list, "no webhooks is an empty list")
	assert.Empty(t, list)

	// Created out of order; wh_2 and wh_1 share a creation time, so their ids order them.
	createWebhooks(t, s, webhook("wh_3", t0.Add(2*time.Second)), webhook("wh_2", t0), webhook("wh_4", t0.Add(time.Second)),
		webhook("wh_1", t0))
	list, err = s.Webhooks(ctx)
	require.NoError(t, err)
	var got []string
	for _, w := range list {
		got = append(got, w.ID)
	}
	assert.Equal(t, []string{"wh_1", "wh_2", "wh_4", "wh_3"}, got)
	assert.Equal(t, webhook("wh_4", t0.Add(time.Second)), list[2])
}

func testUpdateWebhook(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	w := webhook("wh_a", t0)
	createWebhooks(t, s, w, webhook("wh_b", t0))

	w.Name, w.URL, w.Events = "renamed", "https://other.example.com/in", []string{"user.email_verified"}
	w.Enabled, w.ContentType, w.Secrets = false, "application/cloudevents+json", []string{secretB, secretA}
	w.DisabledReason, w.FailingSince, w.FromPosition = "disabled: every delivery failed for 72h0m0s", t0.Add(time.Minute), 7
	w.UpdatedAt = t0.Add(time.Hour)
	require.NoError(t, s.UpdateWebhook(ctx, w))
	got, err := s.Webhook(ctx, "wh_a")
	require.NoError(t, err)
	assert.Equal(t, w, got)

	other, err := s.Webhook(ctx, "wh_b")
	require.NoError(t, err)
	assert.Equal(t, webhook("wh_b", t0), other, "an update changes its webhook only")
}

func testDeleteWebhook(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0), webhook("wh_b", t0))
	da1, da2, db1 := pending("wh_a", "e1", 1, t0), pending("wh_a", "e2", 2, t0), pending("wh_b", "e1", 1, t0)
	enqueue(t, s, 2, da1, da2, db1)

	require.NoError(t, s.DeleteWebhook(ctx, "wh_a"))
	_, err := s.Webhook(ctx, "wh_a")
	assert.ErrorIs(t, err, userhook.ErrNotFound)
	for _, d := range []delivery.Delivery{da1, da2} {
		_, err := s.Delivery(ctx, d.ID)
		assert.ErrorIs(t, err, userhook.ErrNotFound, "the webhook's deliveries go with it")
	}
	list, err := s.Deliveries(ctx, delivery.Filter{WebhookID: "wh_a", Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, list)

	got, err := s.Delivery(ctx, db1.ID)
	require.NoError(t, err)
	assert.Equal(t, db1, got, "another webhook's deliveries stay")
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	claimed, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{db1.ID}, ids(claimed))

	assert.ErrorIs(t, s.DeleteWebhook(ctx, "wh_a"), userhook.ErrNotFound, "a webhook is deleted once")
}

func testEnqueue(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	pos, err := s.Checkpoint(ctx, checkpoint)
	require.NoError(t, err)
	assert.Zero(t, pos, "a consumer that never saved starts at 0")

	createWebhooks(t, s, webhook("wh_a", t0), webhook("wh_b", t0))
	d1, d2 := pending("wh_a", "e3", 3, t0), pending("wh_b", "e3", 3, t0.Add(time.Second))
	enqueue(t, s, 3, d1, d2)
	pos, err = s.Checkpoint(ctx, checkpoint)
	require.NoError(t, err)
	assert.Equal(t, int64(3), pos)
	for _, d := range []delivery.Delivery{d1, d2} {
		got, err := s.Delivery(ctx, d.ID)
		require.NoError(t, err)
		assert.Equal(t, d, got, "every field round-trips")
	}

	enqueue(t, s, 5) // events that matched no webhook still move the checkpoint
	pos, err = s.Checkpoint(ctx, checkpoint)
	require.NoError(t, err)
	assert.Equal(t, int64(5), pos)

	other, err := s.Checkpoint(ctx, "another-consumer")
	require.NoError(t, err)
	assert.Zero(t, other, "checkpoints are kept by name")
}

func testCheckpointNeverGoesBack(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	enqueue(t, s, 10)
	// A redelivered older event still stores its delivery, but leaves the checkpoint where it was.
	d := pending("wh_a", "e4", 4, t0)
	enqueue(t, s, 4, d)
	pos, err := s.Checkpoint(ctx, checkpoint)
	require.NoError(t, err)
	assert.Equal(t, int64(10), pos)
	_, err = s.Delivery(ctx, d.ID)
	assert.NoError(t, err)
}

func testEnqueueAtomic(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	d1 := pending("wh_a", "e1", 1, t0)
	clash := pending("wh_a", "e2", 2, t0)
	clash.ID = d1.ID // a second row with the same id cannot be stored
	require.Error(t, s.Enqueue(ctx, checkpoint, 2, []delivery.Delivery{d1, clash}))

	pos, err := s.Checkpoint(ctx, checkpoint)
	require.NoError(t, err)
	assert.Zero(t, pos, "a failed enqueue does not move the checkpoint")
	_, err = s.Delivery(ctx, d1.ID)
	assert.ErrorIs(t, err, userhook.ErrNotFound, "a failed enqueue stores nothing")
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func testEnqueueIdempotent(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	first := pending("wh_a", "e1", 1, t0)
	enqueue(t, s, 1, first)
	first = settle(t, s, first, delivery.StatusSucceeded)

	again := pending("wh_a", "e1", 1, t0.Add(time.Minute))
	again.ID, again.Payload = "dlv_again", []byte(`{"second":true}`)
	enqueue(t, s, 1, again)
	got, err := s.Delivery(ctx, first.ID)
	require.NoError(t, err)
	assert.Equal(t, first, got, "the delivery already stored is kept as it is")
	_, err = s.Delivery(ctx, again.ID)
	assert.ErrorIs(t, err, userhook.ErrNotFound)

	// Two copies within one enqueue: the first is kept.
	a, b := pending("wh_a", "e2", 2, t0), pending("wh_a", "e2", 2, t0)
	a.ID, b.ID = "dlv_z_first", "dlv_a_second"
	enqueue(t, s, 2, a, b)
	list, err := s.Deliveries(ctx, delivery.Filter{WebhookID: "wh_a", Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{a.ID, first.ID}, ids(list))
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
}

func testEnqueueDeletedWebhook(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0), webhook("wh_gone", t0))
	require.NoError(t, s.DeleteWebhook(ctx, "wh_gone"))

	kept := pending("wh_a", "e7", 7, t0)
	gone, never := pending("wh_gone", "e7", 7, t0), pending("wh_never", "e7", 7, t0)
	require.NoError(t, s.Enqueue(ctx, checkpoint, 7, []delivery.Delivery{gone, kept, never}),
		"a webhook deleted since the consumer listed them is skipped, not an error")

	pos, err := s.Checkpoint(ctx, checkpoint)
	require.NoError(t, err)
	assert.Equal(t, int64(7), pos)
	_, err = s.Delivery(ctx, kept.ID)
	assert.NoError(t, err)
	for _, d := range []delivery.Delivery{gone, never} {
		_, err = s.Delivery(ctx, d.ID)
		assert.ErrorIs(t, err, userhook.ErrNotFound)
	}
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
}

func testClaimDueSoonestFirst(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0), webhook("wh_b", t0))
	late := pending("wh_a", "e1", 1, t0.Add(-time.Minute))
	early := pending("wh_b", "e2", 2, t0.Add(-3*time.Minute))
	now := pending("wh_a", "e3", 3, t0) // due at exactly now
	future := pending("wh_a", "e4", 4, t0.Add(time.Nanosecond))
	tieHigh := pending("wh_a", "e9", 9, t0.Add(-2*time.Minute)) // ties tieLow in time, a later position
	tieLow := pending("wh_b", "e5", 5, t0.Add(-2*time.Minute))
	done := pending("wh_a", "e6", 6, t0.Add(-time.Hour))
	failed := pending("wh_b", "e7", 7, t0.Add(-time.Hour))
	enqueue(t, s, 9, late, early, now, future, tieHigh, tieLow, done, failed)
	settle(t, s, done, delivery.StatusSucceeded)
	settle(t, s, failed, delivery.StatusFailed)

	claimed, err := s.Claim(ctx, t0, 30*time.Second, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{early.ID, tieLow.ID, tieHigh.ID, late.ID, now.ID}, ids(claimed),
		"pending and due only, soonest first, then by position")
	for _, d := range claimed {
		stored, err := s.Delivery(ctx, d.ID)
		require.NoError(t, err)
		assert.Equal(t, stored, d, "a claimed delivery comes whole")
	}
	assert.Equal(t, early, claimed[0])
}

func testClaimLimit(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	var ds []delivery.Delivery
	for i := range 5 {
		// Positions run against due times, so each order is told apart.
		ds = append(ds, pending("wh_a", fmt.Sprintf("e%d", i), int64(10-i), t0.Add(-time.Duration(i)*time.Second)))
	}
	enqueue(t, s, 10, ds...)

	first, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[4].ID, ds[3].ID}, ids(first), "the limit takes the soonest")
	rest, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[2].ID, ds[1].ID, ds[0].ID}, ids(rest))
	none, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testClaimLeases(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	ds := []delivery.Delivery{pending("wh_a", "e1", 1, t0), pending("wh_a", "e2", 2, t0), pending("wh_a", "e3", 3, t0)}
	enqueue(t, s, 3, ds...)
	const lease = time.Minute

	claimed, err := s.Claim(ctx, t0, lease, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	require.Len(t, claimed, 3)
	for _, at := range []time.Time{t0, t0.Add(30 * time.Second), t0.Add(lease - time.Nanosecond)} {
		again, err := s.Claim(ctx, at, lease, delivery.ClaimLimits{Total: 10})
		require.NoError(t, err)
		assert.Empty(t, again, "a leased delivery is not handed out again before %s", at.Sub(t0))
	}

	again, err := s.Claim(ctx, t0.Add(lease), lease, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	assert.Equal(t, ids(ds), ids(again), "an expired lease is claimed again (its sender died)")
	assert.Equal(t, ds, again, "claiming changes nothing but the lease")
}

func testConcurrentClaims(t *testing.T, s delivery.Store) {
	concurrentClaims(t, s, delivery.ClaimLimits{Total: 7})
}

func testConcurrentClaimsPerWebhook(t *testing.T, s delivery.Store) {
	concurrentClaims(t, s, delivery.ClaimLimits{Total: 7, PerWebhook: 3, Skip: []string{"wh_nobody"}})
}

func concurrentClaims(t *testing.T, s delivery.Store, limits delivery.ClaimLimits) {
	ctx := context.Background()
	const hooks, perHook, claimers = 4, 50, 8
	var ds []delivery.Delivery
	for h := range hooks {
		id := fmt.Sprintf("wh_%d", h)
		createWebhooks(t, s, webhook(id, t0))
		for e := range perHook {
			ds = append(ds, pending(id, fmt.Sprintf("e%03d", e), int64(e+1), t0.Add(-time.Duration(e)*time.Millisecond)))
		}
	}
	enqueue(t, s, perHook, ds...)

	var (
		mu     sync.Mutex
		counts = map[string]int{}
		errs   []error
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				claimed, err := s.Claim(ctx, t0, time.Hour, limits)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, d := range claimed {
					counts[d.ID]++
				}
				mu.Unlock()
				if err != nil || len(claimed) == 0 {
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()

	require.Empty(t, errs)
	assert.Len(t, counts, len(ds), "every due delivery is claimed")
	var twice []string
	for id, n := range counts {
		if n != 1 {
			twice = append(twice, fmt.Sprintf("%s×%d", id, n))
		}
	}
	sort.Strings(twice)
	assert.Empty(t, twice, "no delivery is handed to two claimers")
	none, err := s.Claim(ctx, t0, time.Hour, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testClaimPerWebhook(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0), webhook("wh_b", t0), webhook("wh_c", t0))
	// wh_a has the soonest five, wh_b two later ones, wh_c one, and one not due yet.
	var ds []delivery.Delivery
	for i := range 5 {
		ds = append(ds, pending("wh_a", fmt.Sprintf("e%d", i), int64(i+1), t0.Add(-time.Hour+time.Duration(i)*time.Second)))
	}
	b1, b2 := pending("wh_b", "e1", 1, t0.Add(-time.Minute)), pending("wh_b", "e2", 2, t0.Add(-30*time.Second))
	c1, cLater := pending("wh_c", "e3", 3, t0.Add(-time.Second)), pending("wh_c", "e4", 4, t0.Add(time.Second))
	enqueue(t, s, 5, append(ds, b1, b2, c1, cLater)...)

	claimed, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10, PerWebhook: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[0].ID, ds[1].ID, b1.ID, b2.ID, c1.ID}, ids(claimed),
		"at most 2 of a webhook, each webhook's soonest, all of them soonest first")

	claimed, err = s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 1, PerWebhook: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[2].ID}, ids(claimed), "the total limit takes the soonest")
	claimed, err = s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10, PerWebhook: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[3].ID}, ids(claimed))
	claimed, err = s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[4].ID}, ids(claimed), "no per-webhook limit when it is 0")
}

// A webhook's leased deliveries (being sent) do not count against its limit: the next due ones are claimed.
func testClaimPerWebhookLeased(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	var ds []delivery.Delivery
	for i := range 4 {
		ds = append(ds, pending("wh_a", fmt.Sprintf("e%d", i), int64(i+1), t0.Add(time.Duration(i-10)*time.Second)))
	}
	enqueue(t, s, 4, ds...)
	first, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10, PerWebhook: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[0].ID, ds[1].ID}, ids(first))
	second, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10, PerWebhook: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[2].ID, ds[3].ID}, ids(second))
	assert.Equal(t, ds[2], second[0], "a claimed delivery comes whole")
}

func testClaimSkip(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0), webhook("wh_b", t0), webhook("wh_c", t0))
	a, b, c := pending("wh_a", "e1", 1, t0.Add(-time.Hour)), pending("wh_b", "e2", 2, t0.Add(-time.Minute)), pending("wh_c", "e3", 3, t0)
	enqueue(t, s, 3, a, b, c)

	claimed, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10, Skip: []string{"wh_a", "wh_c", "wh_nobody"}})
	require.NoError(t, err)
	assert.Equal(t, []string{b.ID}, ids(claimed), "a skipped webhook's deliveries are left, however due")
	claimed, err = s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10, PerWebhook: 5, Skip: []string{"wh_c"}})
	require.NoError(t, err)
	assert.Equal(t, []string{a.ID}, ids(claimed))
	claimed, err = s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 10, Skip: []string{}})
	require.NoError(t, err)
	assert.Equal(t, []string{c.ID}, ids(claimed), "an empty skip list skips nothing")
}

func testClaimNoRoom(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	d := pending("wh_a", "e1", 1, t0)
	enqueue(t, s, 1, d)
	claimed, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 0, PerWebhook: 2})
	require.NoError(t, err)
	assert.Empty(t, claimed)
	claimed, err = s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{d.ID}, ids(claimed), "a claim with no room leased nothing")
}

func testNextDueSkip(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0), webhook("wh_b", t0))
	enqueue(t, s, 2, pending("wh_a", "e1", 1, t0.Add(-time.Hour)), pending("wh_b", "e2", 2, t0.Add(time.Minute)))
	next, err := s.NextDue(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(-time.Hour), next)
	next, err = s.NextDue(ctx, []string{"wh_a"})
	require.NoError(t, err)
	assert.Equal(t, t0.Add(time.Minute), next, "a skipped webhook's deliveries are not waited for")
	next, err = s.NextDue(ctx, []string{"wh_a", "wh_b"})
	require.NoError(t, err)
	assert.True(t, next.IsZero(), "every webhook skipped: zero, got %s", next)
}

func testOldestDue(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	oldest, err := s.OldestDue(ctx, t0)
	require.NoError(t, err)
	assert.True(t, oldest.IsZero(), "nothing pending: zero, got %s", oldest)

	createWebhooks(t, s, webhook("wh_a", t0), webhook("wh_b", t0))
	old, newer, future := pending("wh_a", "e1", 1, t0.Add(-time.Hour)), pending("wh_b", "e2", 2, t0.Add(-time.Minute)),
		pending("wh_a", "e3", 3, t0.Add(time.Minute))
	enqueue(t, s, 3, old, newer, future)
	oldest, err = s.OldestDue(ctx, t0.Add(-2*time.Hour))
	require.NoError(t, err)
	assert.True(t, oldest.IsZero(), "nothing due yet: zero, got %s", oldest)
	oldest, err = s.OldestDue(ctx, t0)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(-time.Hour), oldest)

	claimed, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 1})
	require.NoError(t, err)
	require.Equal(t, []string{old.ID}, ids(claimed))
	oldest, err = s.OldestDue(ctx, t0)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(-time.Hour), oldest, "a delivery being sent still waits")

	settle(t, s, old, delivery.StatusSucceeded)
	oldest, err = s.OldestDue(ctx, t0)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(-time.Minute), oldest)
	settle(t, s, newer, delivery.StatusFailed)
	oldest, err = s.OldestDue(ctx, t0)
	require.NoError(t, err)
	assert.True(t, oldest.IsZero(), "only a later one pending: zero, got %s", oldest)
	oldest, err = s.OldestDue(ctx, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, t0.Add(time.Minute), oldest)
}

func testRecord(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	enqueue(t, s, 1, pending("wh_a", "e1", 1, t0))
	claimed, err := s.Claim(ctx, t0, 10*time.Minute, delivery.ClaimLimits{Total: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)

	d := claimed[0]
	d.Attempts, d.ResponseStatus = 1, 503
	d.ResponseBody = "busy \x00 ü \uFFFD" // the start of a body, made valid UTF-8 by the sender; NUL is valid UTF-8
	d.Error, d.LastAttemptAt, d.NextAttemptAt = "HTTP 503 (Retry-After: 120)", t0.Add(time.Second), t0.Add(2*time.Minute)
	require.NoError(t, s.Record(ctx, d, nil))
	got, err := s.Delivery(ctx, d.ID)
	require.NoError(t, err)
	assert.Equal(t, d, got)

	retried, err := s.Claim(ctx, t0.Add(2*time.Minute), 10*time.Minute, delivery.ClaimLimits{Total: 1})
	require.NoError(t, err)
	assert.Equal(t, []delivery.Delivery{d}, retried, "Record releases the lease: the retry is due at its own time")

	d = retried[0]
	d.Status, d.Attempts, d.ResponseStatus, d.ResponseBody, d.Error = delivery.StatusSucceeded, 2, 204, "", ""
	d.LastAttemptAt, d.NextAttemptAt = t0.Add(2*time.Minute), time.Time{}
	require.NoError(t, s.Record(ctx, d, nil))
	got, err = s.Delivery(ctx, d.ID)
	require.NoError(t, err)
	assert.Equal(t, d, got)
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	none, err := s.Claim(ctx, t0.Add(time.Hour), time.Minute, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	assert.Empty(t, none, "a settled delivery is never claimed")
	w, err := s.Webhook(ctx, "wh_a")
	require.NoError(t, err)
	assert.Equal(t, webhook("wh_a", t0), w, "Record without a webhook leaves it alone")
}

func testRecordWebhook(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	w := webhook("wh_a", t0)
	createWebhooks(t, s, w)
	enqueue(t, s, 1, pending("wh_a", "e1", 1, t0))
	claimed, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)

	d := claimed[0]
	d.Status, d.Attempts, d.ResponseStatus, d.LastAttemptAt = delivery.StatusFailed, 1, 410, t0
	w.Enabled, w.DisabledReason, w.FailingSince, w.UpdatedAt = false, "disabled: the endpoint answered 410 Gone", t0, t0.Add(time.Second)
	require.NoError(t, s.Record(ctx, d, &w))
	got, err := s.Webhook(ctx, "wh_a")
	require.NoError(t, err)
	assert.Equal(t, w, got)
	gotD, err := s.Delivery(ctx, d.ID)
	require.NoError(t, err)
	assert.Equal(t, d, gotD)
}

func testClaimOne(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	enqueue(t, s, 1, pending("wh_a", "e1", 1, t0))
	claimed, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	id := claimed[0].ID

	_, ok, err := s.ClaimOne(ctx, id, t0.Add(time.Second), time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "a delivery another sender holds is not handed out again")
	d, ok, err := s.ClaimOne(ctx, id, t0.Add(2*time.Minute), time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "once the lease ended it is")
	assert.Equal(t, id, d.ID)
	again, err := s.Claim(ctx, t0.Add(2*time.Minute), time.Minute, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	assert.Empty(t, again, "and Claim sees it leased")

	_, _, err = s.ClaimOne(ctx, "dlv_nope", t0, time.Minute)
	assert.ErrorIs(t, err, userhook.ErrNotFound)
}

// The sender read the webhook before an admin changed it; its Record writes only what it decides.
func testRecordKeepsConcurrentChange(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	w := webhook("wh_a", t0)
	createWebhooks(t, s, w)
	enqueue(t, s, 1, pending("wh_a", "e1", 1, t0))
	claimed, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)

	changed := w
	changed.Name, changed.URL, changed.Secrets = "renamed", "https://new.example/hook", []string{"whsec_" + strings.Repeat("A", 32)}
	changed.Enabled, changed.UpdatedAt = false, t0.Add(time.Minute)
	require.NoError(t, s.UpdateWebhook(ctx, changed))

	senderCopy := w // as the sender read it, before the change
	senderCopy.FailingSince, senderCopy.UpdatedAt = t0, t0.Add(2*time.Minute)
	d := claimed[0]
	d.Status, d.Attempts = delivery.StatusPending, 1
	require.NoError(t, s.Record(ctx, d, &senderCopy))
	got, err := s.Webhook(ctx, "wh_a")
	require.NoError(t, err)
	assert.Equal(t, "renamed", got.Name)
	assert.Equal(t, changed.URL, got.URL)
	assert.Equal(t, changed.Secrets, got.Secrets)
	assert.False(t, got.Enabled, "the sender never re-enables a webhook an admin disabled")
	assert.True(t, t0.Equal(got.FailingSince), "what the sender decides is saved")
}

func testRecordDeletedWebhook(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	w := webhook("wh_a", t0)
	createWebhooks(t, s, w)
	enqueue(t, s, 1, pending("wh_a", "e1", 1, t0))
	claimed, err := s.Claim(ctx, t0, time.Minute, delivery.ClaimLimits{Total: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.NoError(t, s.DeleteWebhook(ctx, "wh_a"))

	// The sender was attempting when the webhook was deleted.
	d := claimed[0]
	d.Status, d.Attempts, d.ResponseStatus, d.LastAttemptAt = delivery.StatusFailed, 1, 500, t0
	w.FailingSince = t0
	require.NoError(t, s.Record(ctx, d, &w))
	list, err := s.Webhooks(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "Record does not bring a deleted webhook back")
	_, err = s.Delivery(ctx, d.ID)
	assert.ErrorIs(t, err, userhook.ErrNotFound)
}

func testDeliveriesPages(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0), webhook("wh_b", t0))
	var ds []delivery.Delivery
	for _, p := range []int64{3, 1, 7, 5, 2, 6, 4} {
		ds = append(ds, pending("wh_a", fmt.Sprintf("e%d", p), p, t0))
		if p%2 == 0 {
			ds = append(ds, pending("wh_b", fmt.Sprintf("e%d", p), p, t0))
		}
	}
	enqueue(t, s, 7, ds...)

	var pages [][]int64
	before := int64(0)
	for range 5 {
		page, err := s.Deliveries(ctx, delivery.Filter{WebhookID: "wh_a", Before: before, Limit: 3})
		require.NoError(t, err)
		pages = append(pages, positions(page))
		if len(page) < 3 {
			break
		}
		before = page[len(page)-1].Position
	}
	assert.Equal(t, [][]int64{{7, 6, 5}, {4, 3, 2}, {1}}, pages, "newest first, each page before the last one's end")

	page, err := s.Deliveries(ctx, delivery.Filter{WebhookID: "wh_a", Before: 1, Limit: 3})
	require.NoError(t, err)
	assert.NotNil(t, page, "an empty page is an empty list")
	assert.Empty(t, page)
	page, err = s.Deliveries(ctx, delivery.Filter{WebhookID: "wh_b", Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []int64{6, 4, 2}, positions(page), "one webhook's deliveries only")
	assert.Equal(t, pending("wh_b", "e6", 6, t0), page[0])
	page, err = s.Deliveries(ctx, delivery.Filter{WebhookID: "wh_nobody", Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, page)
}

func testDeliveriesStatus(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	createWebhooks(t, s, webhook("wh_a", t0))
	var ds []delivery.Delivery
	for p := int64(1); p <= 6; p++ {
		ds = append(ds, pending("wh_a", fmt.Sprintf("e%d", p), p, t0))
	}
	enqueue(t, s, 6, ds...)
	settle(t, s, ds[0], delivery.StatusSucceeded)
	settle(t, s, ds[2], delivery.StatusSucceeded)
	settle(t, s, ds[3], delivery.StatusFailed)
	settle(t, s, ds[5], delivery.StatusSucceeded)

	for _, tc := range []struct {
		status string
		before int64
		limit  int
		want   []int64
	}{
		{delivery.StatusSucceeded, 0, 10, []int64{6, 3, 1}},
		{delivery.StatusSucceeded, 0, 2, []int64{6, 3}},
		{delivery.StatusSucceeded, 3, 10, []int64{1}},
		{delivery.StatusFailed, 0, 10, []int64{4}},
		{delivery.StatusPending, 0, 10, []int64{5, 2}},
		{"", 5, 10, []int64{4, 3, 2, 1}},
	} {
		t.Run(fmt.Sprintf("%s/before=%d/limit=%d", tc.status, tc.before, tc.limit), func(t *testing.T) {
			page, err := s.Deliveries(ctx, delivery.Filter{WebhookID: "wh_a", Status: tc.status, Before: tc.before, Limit: tc.limit})
			require.NoError(t, err)
			assert.Equal(t, tc.want, positions(page))
		})
	}
}

func testNextDue(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	next, err := s.NextDue(ctx, nil)
	require.NoError(t, err)
	assert.True(t, next.IsZero(), "nothing pending: zero, got %s", next)

	createWebhooks(t, s, webhook("wh_a", t0))
	later, sooner, settled := pending("wh_a", "e1", 1, t0.Add(5*time.Minute)), pending("wh_a", "e2", 2, t0.Add(2*time.Minute)),
		pending("wh_a", "e3", 3, t0.Add(-time.Minute))
	enqueue(t, s, 3, later, sooner, settled)
	settle(t, s, settled, delivery.StatusSucceeded)
	next, err = s.NextDue(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(2*time.Minute), next, "the earliest pending delivery")

	claimed, err := s.Claim(ctx, t0.Add(2*time.Minute), 10*time.Minute, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	require.Equal(t, []string{sooner.ID}, ids(claimed))
	next, err = s.NextDue(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(5*time.Minute), next, "a leased delivery is due when its lease ends")

	claimed, err = s.Claim(ctx, t0.Add(5*time.Minute), time.Hour, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	require.Equal(t, []string{later.ID}, ids(claimed))
	next, err = s.NextDue(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(12*time.Minute), next, "the earlier lease end")

	settle(t, s, sooner, delivery.StatusFailed)
	settle(t, s, later, delivery.StatusSucceeded)
	next, err = s.NextDue(ctx, nil)
	require.NoError(t, err)
	assert.True(t, next.IsZero(), "nothing pending: zero, got %s", next)
}

func testPending(t *testing.T, s delivery.Store) {
	ctx := context.Background()
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)

	createWebhooks(t, s, webhook("wh_a", t0))
	ds := []delivery.Delivery{pending("wh_a", "e1", 1, t0), pending("wh_a", "e2", 2, t0), pending("wh_a", "e3", 3, t0.Add(time.Hour))}
	enqueue(t, s, 3, ds...)
	n, err = s.Pending(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), n, "pending whether due or not")

	settle(t, s, ds[0], delivery.StatusSucceeded)
	settle(t, s, ds[1], delivery.StatusFailed)
	n, err = s.Pending(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)

	_, err = s.Claim(ctx, t0.Add(time.Hour), time.Minute, delivery.ClaimLimits{Total: 10})
	require.NoError(t, err)
	n, err = s.Pending(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "a leased delivery is still pending")
}
