package ingest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

var t0 = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

// counts is an Observer that remembers what it was told.
type counts struct {
	mu         sync.Mutex
	appended   []string
	duplicates []string
	ignored    []string
}

func (c *counts) add(to *[]string, values ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*to = append(*to, values...)
}

func (c *counts) Appended(types ...string) { c.add(&c.appended, types...) }
func (c *counts) Duplicate(route string)   { c.add(&c.duplicates, route) }
func (c *counts) Ignored(reason string)    { c.add(&c.ignored, reason) }

// newService is an ingest service over a fresh SQLite event store (which keeps the receipts too).
func newService(t *testing.T) (*ingest.Service, *counts, *sqlite.Store) {
	t.Helper()
	store, err := sqlite.New(context.Background(), sqlitetest.Open(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	c := &counts{}
	return ingest.NewService(aggregate.NewService(store, func() time.Time { return t0 }), store, c), c, store
}

func email(s string) aggregate.Attributes { return aggregate.Attributes{Email: &s} }

// event is a provider event about user u1 from one source.
func event(id string, kind ingest.Kind, at time.Time, a aggregate.Attributes) ingest.Event {
	return ingest.Event{ID: "env-" + id, Source: "https://idp.example.com", ProviderEventID: id, UserID: "u1",
		Kind: kind, OccurredAt: at, Attributes: a, Metadata: map[string]string{"trace": id}}
}

func TestApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, c, store := newService(t)
	apply := func(e ingest.Event) ingest.Result {
		t.Helper()
		r, err := svc.Apply(ctx, "/events", e)
		require.NoError(t, err)
		return r
	}

	created := event("e1", ingest.KindCreated, t0, email("a@example.com"))
	r := apply(created)
	assert.Equal(t, ingest.Result{EventID: "env-e1", UserID: "u1", Status: ingest.StatusApplied, Position: 1, UserPosition: 1}, r)
	stored, err := store.Load(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, stored, 1)
	assert.Equal(t, created.Key(), stored[0].ID, "the key is the id of the first event raised")
	assert.Equal(t, map[string]string{"trace": "e1"}, stored[0].Metadata)

	t.Run("a copy is a duplicate, checked before deciding", func(t *testing.T) {
		assert.Equal(t, ingest.StatusDuplicate, apply(created).Status)
	})
	t.Run("the reasons of ignored events, each remembered", func(t *testing.T) {
		for _, tc := range []struct {
			event  ingest.Event
			reason string
		}{
			{event("e2", "organization_created", t0, aggregate.Attributes{}), ingest.ReasonUnsupportedType},
			{event("e3", ingest.KindUpdated, t0.Add(-time.Minute), email("old@example.com")), ingest.ReasonStale},
			{event("e4", ingest.KindUpdated, t0.Add(time.Minute), email("a@example.com")), ingest.ReasonNoChange},
		} {
			r := apply(tc.event)
			assert.Equal(t, ingest.StatusIgnored, r.Status, tc.reason)
			assert.Equal(t, tc.reason, r.Reason)
			assert.Zero(t, r.Position, "nothing was applied")
			assert.Equal(t, ingest.StatusDuplicate, apply(tc.event).Status, "a copy of an ignored %s event", tc.reason)
		}
		assert.Equal(t, ingest.StatusApplied, apply(event("e5", ingest.KindDeleted, t0.Add(2*time.Minute), aggregate.Attributes{})).Status)
		r := apply(event("e6", ingest.KindUpdated, t0.Add(3*time.Minute), email("b@example.com")))
		assert.Equal(t, ingest.ReasonDeleted, r.Reason)
		assert.Equal(t, int64(2), r.UserPosition, "the user's latest position, for X-Event-Position")
	})
	t.Run("an ensure has no key: applied, then ignored for no change, never a duplicate", func(t *testing.T) {
		ensure := ingest.Event{UserID: "u2", Kind: ingest.KindEnsured, Attributes: email("c@example.com")}
		assert.Empty(t, ensure.Key())
		assert.Equal(t, ingest.StatusApplied, apply(ensure).Status)
		again := apply(ensure)
		assert.Equal(t, ingest.StatusIgnored, again.Status)
		assert.Equal(t, ingest.ReasonNoChange, again.Reason)
		assert.Equal(t, int64(3), again.UserPosition)
	})

	assert.Equal(t, []string{aggregate.TypeUserRegistered, aggregate.TypeUserDeleted, aggregate.TypeUserRegistered}, c.appended)
	assert.Equal(t, []string{"/events", "/events", "/events", "/events"}, c.duplicates)
	assert.Equal(t, []string{ingest.ReasonUnsupportedType, ingest.ReasonStale, ingest.ReasonNoChange, ingest.ReasonDeleted},
		c.ignored, "an ensure that changes nothing is not counted")
}

// TestApplyDeactivation: deactivations and reactivations are applied, or ignored with the reasons of the other
// kinds: no_change for a user already so or never registered, stale for one older than the user's last change,
// deleted for a deleted user. Each ignored one is remembered, so its copy is a duplicate.
func TestApplyDeactivation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, c, store := newService(t)
	minute := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	steps := []struct {
		name   string
		event  ingest.Event
		status string
		reason string
	}{
		{"deactivation of a user never registered", event("d0", ingest.KindDeactivated, minute(0), aggregate.Attributes{}), ingest.StatusIgnored, ingest.ReasonNoChange},
		{"reactivation of a user never registered", event("r0", ingest.KindReactivated, minute(0), aggregate.Attributes{}), ingest.StatusIgnored, ingest.ReasonNoChange},
		{"creation", event("c1", ingest.KindCreated, minute(1), email("a@example.com")), ingest.StatusApplied, ""},
		{"reactivation of an active user", event("r1", ingest.KindReactivated, minute(2), aggregate.Attributes{}), ingest.StatusIgnored, ingest.ReasonNoChange},
		{"deactivation", event("d1", ingest.KindDeactivated, minute(3), aggregate.Attributes{}), ingest.StatusApplied, ""},
		{"deactivation of an inactive user", event("d2", ingest.KindDeactivated, minute(4), aggregate.Attributes{}), ingest.StatusIgnored, ingest.ReasonNoChange},
		{"update of an inactive user", event("u1", ingest.KindUpdated, minute(5), email("b@example.com")), ingest.StatusApplied, ""},
		{"reactivation older than the update", event("r2", ingest.KindReactivated, minute(4), aggregate.Attributes{}), ingest.StatusIgnored, ingest.ReasonStale},
		{"reactivation", event("r3", ingest.KindReactivated, minute(6), aggregate.Attributes{}), ingest.StatusApplied, ""},
		{"deactivation older than the reactivation", event("d3", ingest.KindDeactivated, minute(5), aggregate.Attributes{}), ingest.StatusIgnored, ingest.ReasonStale},
		{"deletion", event("x1", ingest.KindDeleted, minute(7), aggregate.Attributes{}), ingest.StatusApplied, ""},
		{"deactivation of a deleted user", event("d4", ingest.KindDeactivated, minute(8), aggregate.Attributes{}), ingest.StatusIgnored, ingest.ReasonDeleted},
		{"reactivation of a deleted user", event("r4", ingest.KindReactivated, minute(8), aggregate.Attributes{}), ingest.StatusIgnored, ingest.ReasonDeleted},
	}
	var ignored []string
	for _, step := range steps {
		r, err := svc.Apply(ctx, "/events", step.event)
		require.NoError(t, err, step.name)
		assert.Equal(t, step.status, r.Status, step.name)
		assert.Equal(t, step.reason, r.Reason, step.name)
		if step.status == ingest.StatusApplied {
			assert.Positive(t, r.Position, step.name)
		} else {
			ignored = append(ignored, step.reason)
			assert.Zero(t, r.Position, step.name)
			again, err := svc.Apply(ctx, "/events", step.event)
			require.NoError(t, err)
			assert.Equal(t, ingest.StatusDuplicate, again.Status, "a copy of the %s", step.name)
		}
	}
	assert.Equal(t, ignored, c.ignored)
	assert.Equal(t, []string{aggregate.TypeUserRegistered, aggregate.TypeUserDeactivated, aggregate.TypeUserEmailChanged,
		aggregate.TypeUserReactivated, aggregate.TypeUserDeleted}, c.appended)
	stored, err := store.Load(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, stored, 5)
	assert.Equal(t, event("d1", "", time.Time{}, aggregate.Attributes{}).Key(), stored[1].ID, "the key is the event's id")
	assert.Equal(t, map[string]string{"trace": "d1"}, stored[1].Metadata)
}

// TestApplyCopiesAtOnce: copies of one event applied at the same moment store it once, whatever became of it.
func TestApplyCopiesAtOnce(t *testing.T) {
	t.Parallel()
	for _, e := range []ingest.Event{
		event("race-1", ingest.KindCreated, t0, email("a@example.com")),
		event("race-2", "organization_created", t0, aggregate.Attributes{}),
	} {
		svc, _, store := newService(t)
		statuses := make(chan string, 8)
		for range cap(statuses) {
			go func() {
				r, err := svc.Apply(context.Background(), "/events", e)
				assert.NoError(t, err)
				statuses <- r.Status
			}()
		}
		got := map[string]int{}
		for range cap(statuses) {
			got[<-statuses]++
		}
		assert.Equal(t, cap(statuses)-1, got[ingest.StatusDuplicate], "%s: %v", e.ProviderEventID, got)
		last, err := store.LastPosition(context.Background())
		require.NoError(t, err)
		assert.LessOrEqual(t, last, int64(1))
	}
}

func TestApplyFailsOnWhatTheDecoderShouldHaveRefused(t *testing.T) {
	t.Parallel()
	svc, c, _ := newService(t)
	_, err := svc.Apply(context.Background(), "/events", ingest.Event{Source: "s", ProviderEventID: "e1", Kind: ingest.KindCreated})
	assert.ErrorIs(t, err, userhook.ErrInvalid, "a user id is required")
	assert.Empty(t, c.duplicates)
	assert.Empty(t, c.ignored)
}

func TestKey(t *testing.T) {
	t.Parallel()
	a := ingest.Event{Source: "s", ProviderEventID: "1"}
	assert.Equal(t, a.Key(), ingest.Event{Source: "s", ProviderEventID: "1", ID: "other", UserID: "u"}.Key(),
		"only the source and the provider's id make the key")
	assert.NotEqual(t, a.Key(), ingest.Event{Source: "s\n1", ProviderEventID: ""}.Key())
	assert.NotEqual(t, a.Key(), ingest.Event{Source: "t", ProviderEventID: "1"}.Key())
	assert.Regexp(t, `^ce_[0-9a-f]{32}$`, a.Key())
	assert.Empty(t, ingest.Event{UserID: "u", Kind: ingest.KindEnsured}.Key())
}

func TestKinds(t *testing.T) {
	t.Parallel()
	for _, k := range []ingest.Kind{ingest.KindCreated, ingest.KindUpdated, ingest.KindDeleted, ingest.KindEmailVerified,
		ingest.KindEnsured, ingest.KindDeactivated, ingest.KindReactivated} {
		assert.True(t, k.Applies(), k)
		assert.Equal(t, "u1", ingest.Event{UserID: "u1", Kind: k}.Command().StreamID())
	}
	at := t0.Add(time.Minute)
	assert.Equal(t, aggregate.Deactivate{UserID: "u1", At: at}, ingest.Event{UserID: "u1", Kind: ingest.KindDeactivated, OccurredAt: at}.Command())
	assert.Equal(t, aggregate.Reactivate{UserID: "u1", At: at}, ingest.Event{UserID: "u1", Kind: ingest.KindReactivated, OccurredAt: at}.Command())
	assert.False(t, ingest.Kind("").Applies())
	assert.False(t, ingest.Kind("organization_created").Applies())
}

// receivedOnly hides the store's Receipted: the Service then checks Received (receipts and stored events)
// before deciding, as it does over a store that has no cheaper question.
type receivedOnly struct{ s *sqlite.Store }

func (r receivedOnly) Received(ctx context.Context, key string) (bool, error) {
	return r.s.Received(ctx, key)
}
func (r receivedOnly) Receive(ctx context.Context, key, outcome string) error {
	return r.s.Receive(ctx, key, outcome)
}

// TestCopiesOfStoredEvents: a copy of an event that was stored is a duplicate whatever it says and whatever
// it would do, though the check before deciding looks only at receipts where the store offers that: the
// append's unique event id, Receive, or a last look when the command fails refuse it all the same.
func TestCopiesOfStoredEvents(t *testing.T) {
	t.Parallel()
	for name, wrap := range map[string]func(*sqlite.Store) eventstore.Receipts{
		"receipts checked":                   func(s *sqlite.Store) eventstore.Receipts { return s },
		"receipts and stored events checked": func(s *sqlite.Store) eventstore.Receipts { return receivedOnly{s} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store, err := sqlite.New(ctx, sqlitetest.Open(t))
			require.NoError(t, err)
			t.Cleanup(func() { _ = store.Close() })
			users := aggregate.NewService(store, func() time.Time { return t0 })
			users.CacheStates(100)
			c := &counts{}
			svc := ingest.NewService(users, wrap(store), c)
			apply := func(e ingest.Event) (ingest.Result, error) { return svc.Apply(ctx, "/events", e) }

			created := event("e1", ingest.KindCreated, t0, email("a@example.com"))
			r, err := apply(created)
			require.NoError(t, err)
			require.Equal(t, ingest.StatusApplied, r.Status)
			for what, copied := range map[string]func(e *ingest.Event){
				"as it was":                     func(e *ingest.Event) {},
				"saying something else":         func(e *ingest.Event) { e.Kind, e.Attributes = ingest.KindUpdated, email("b@example.com") },
				"with no time, saying more":     func(e *ingest.Event) { e.OccurredAt, e.Attributes = time.Time{}, email("b@example.com") },
				"of another user":               func(e *ingest.Event) { e.UserID = "u2" },
				"of another user, deleting":     func(e *ingest.Event) { e.UserID, e.Kind = "u3", ingest.KindDeleted },
				"older than the user":           func(e *ingest.Event) { e.OccurredAt = t0.Add(-time.Hour) },
				"of a type not applied":         func(e *ingest.Event) { e.Kind = "organization_created" },
				"that the command would refuse": func(e *ingest.Event) { e.UserID = "" },
			} {
				e := created
				copied(&e)
				r, err := apply(e)
				require.NoError(t, err, what)
				assert.Equal(t, ingest.StatusDuplicate, r.Status, what)
			}
			last, err := store.LastPosition(ctx)
			require.NoError(t, err)
			assert.Equal(t, int64(1), last, "no copy stored anything")
			assert.Len(t, c.duplicates, 8)
			assert.Empty(t, c.ignored)
			u, err := users.Load(ctx, "u1")
			require.NoError(t, err)
			assert.Equal(t, "a@example.com", u.Email)
		})
	}
}
