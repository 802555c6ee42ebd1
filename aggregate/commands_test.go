package aggregate_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
)

const userID = "user-1"

// t0 is the start of every given history; minute(n) is n minutes later.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func minute(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

func ptr[T any](v T) *T { return &v }

// fact is one event of a given history: its stored type, the domain event and when it occurred.
type fact struct {
	typ   string
	event aggregate.Event
	at    time.Time
}

func registered(e aggregate.UserRegistered, at time.Time) fact {
	return fact{aggregate.TypeUserRegistered, e, at}
}

func emailChanged(email, previous string, at time.Time) fact {
	return fact{aggregate.TypeUserEmailChanged, aggregate.UserEmailChanged{Email: email, Previous: previous}, at}
}

func profileUpdated(e aggregate.UserProfileUpdated, at time.Time) fact {
	return fact{aggregate.TypeUserProfileUpdated, e, at}
}

func emailVerified(email string, at time.Time) fact {
	return fact{aggregate.TypeUserEmailVerified, aggregate.UserEmailVerified{Email: email}, at}
}

func deleted(at time.Time) fact { return fact{aggregate.TypeUserDeleted, aggregate.UserDeleted{}, at} }

func restored(at time.Time) fact {
	return fact{aggregate.TypeUserRestored, aggregate.UserRestored{}, at}
}

func deactivated(at time.Time) fact {
	return fact{aggregate.TypeUserDeactivated, aggregate.UserDeactivated{}, at}
}

func reactivated(at time.Time) fact {
	return fact{aggregate.TypeUserReactivated, aggregate.UserReactivated{}, at}
}

// stored turns a history into the events a store would hold: versions 1..n, positions 10, 20, ...
func stored(t *testing.T, history ...fact) []eventstore.Event {
	t.Helper()
	out := make([]eventstore.Event, len(history))
	for i, f := range history {
		require.Equal(t, f.typ, f.event.EventType(), "fixture %d: type constant and event disagree", i)
		data, err := aggregate.Encode(f.event)
		require.NoError(t, err)
		out[i] = eventstore.Event{
			ID:         fmt.Sprintf("evt-%d", i+1),
			StreamID:   userID,
			StreamType: aggregate.StreamType,
			Version:    int64(i + 1),
			Position:   int64(10 * (i + 1)),
			Type:       f.typ,
			Data:       data,
			OccurredAt: f.at,
		}
	}
	return out
}

// given is the state of userID after history.
func given(t *testing.T, history ...fact) aggregate.User {
	t.Helper()
	u, err := aggregate.Fold(userID, stored(t, history...))
	require.NoError(t, err)
	return u
}

// decideCase is one "given events, when command, then events or error".
type decideCase struct {
	name  string
	given []fact
	when  aggregate.Command
	then  []aggregate.Event // none for a no-op
	err   error             // matched with errors.Is; then is ignored
}

func runDecide(t *testing.T, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := given(t, tc.given...)
			before := u.Clone()
			got, err := tc.when.Decide(u)
			assert.Equal(t, before, u, "Decide must not modify the user")
			if tc.err != nil {
				assert.ErrorIs(t, err, tc.err)
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			if len(tc.then) == 0 {
				assert.Empty(t, got)
				return
			}
			assert.Equal(t, tc.then, got)
		})
	}
}

var (
	alice      = aggregate.UserRegistered{Email: "alice@example.com", Name: "Alice"}
	aliceFull  = aggregate.UserRegistered{Email: "alice@example.com", EmailVerified: true, Name: "Alice", Profile: map[string]any{"plan": "pro", "tags": []any{"a", "b"}}}
	aliceAttrs = aggregate.Attributes{Email: ptr("alice@example.com"), Name: ptr("Alice")}
)

func TestRegister(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name: "first registration raises UserRegistered with the attributes",
			when: aggregate.Register{UserID: userID, Attributes: aggregate.Attributes{
				Email: ptr("alice@example.com"), EmailVerified: ptr(true), Name: ptr("Alice"),
				Profile: map[string]any{"plan": "pro"},
			}, At: minute(1)},
			then: []aggregate.Event{aggregate.UserRegistered{
				Email: "alice@example.com", EmailVerified: true, Name: "Alice", Profile: map[string]any{"plan": "pro"},
			}},
		},
		{
			name: "first registration without email",
			when: aggregate.Register{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Alice")}},
			then: []aggregate.Event{aggregate.UserRegistered{Name: "Alice"}},
		},
		{
			name: "first registration with an empty profile stores no profile",
			when: aggregate.Register{UserID: userID, Attributes: aggregate.Attributes{
				Email: ptr("alice@example.com"), Profile: map[string]any{},
			}},
			then: []aggregate.Event{aggregate.UserRegistered{Email: "alice@example.com"}},
		},
		{
			name:  "identical repeat raises nothing",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.Register{UserID: userID, Attributes: aliceAttrs, At: minute(2)},
		},
		{
			name:  "identical repeat at the same time raises nothing",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.Register{UserID: userID, Attributes: aliceAttrs, At: minute(1)},
		},
		{
			name:  "known user with other attributes raises the changes",
			given: []fact{registered(alice, minute(1))},
			when: aggregate.Register{UserID: userID, Attributes: aggregate.Attributes{
				Email: ptr("alice@new.example"), Name: ptr("Alice B"), EmailVerified: ptr(true),
			}, At: minute(2)},
			then: []aggregate.Event{
				aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"},
				aggregate.UserProfileUpdated{Name: ptr("Alice B")},
				aggregate.UserEmailVerified{Email: "alice@new.example"},
			},
		},
		{
			name:  "older than the last change is stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.Register{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Old")}, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.Register{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("New")}},
			then:  []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("New")}},
		},
		{
			name:  "newer than a deletion restores",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.Register{UserID: userID, Attributes: aliceAttrs, At: minute(3)},
			then:  []aggregate.Event{aggregate.UserRestored{}},
		},
		{
			name:  "older than a deletion is stale",
			given: []fact{registered(alice, minute(1)), deleted(minute(3))},
			when:  aggregate.Register{UserID: userID, Attributes: aliceAttrs, At: minute(2)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "older than a tombstone is stale",
			given: []fact{deleted(minute(5))},
			when:  aggregate.Register{UserID: userID, Attributes: aliceAttrs, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "inactive user takes the attributes and stays inactive",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when: aggregate.Register{UserID: userID, Attributes: aggregate.Attributes{
				Email: ptr("alice@new.example"), Name: ptr("Alice"),
			}, At: minute(3)},
			then: []aggregate.Event{aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"}},
		},
		{
			name:  "inactive user, identical repeat raises nothing",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Register{UserID: userID, Attributes: aliceAttrs, At: minute(3)},
		},
		{
			name:  "older than a deactivation is stale",
			given: []fact{registered(alice, minute(1)), deactivated(minute(3))},
			when:  aggregate.Register{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Old")}, At: minute(2)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "newer than a tombstone restores with every attribute",
			given: []fact{deleted(minute(5))},
			when: aggregate.Register{UserID: userID, Attributes: aggregate.Attributes{
				Email: ptr("alice@example.com"), EmailVerified: ptr(true), Name: ptr("Alice"),
				Profile: map[string]any{"plan": "pro"},
			}, At: minute(6)},
			then: []aggregate.Event{
				aggregate.UserRestored{},
				aggregate.UserEmailChanged{Email: "alice@example.com"},
				aggregate.UserProfileUpdated{Name: ptr("Alice"), Profile: map[string]any{"plan": "pro"}},
				aggregate.UserEmailVerified{Email: "alice@example.com"},
			},
		},
	})
}

func TestChangeEmail(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name: "unknown user",
			when: aggregate.ChangeEmail{UserID: userID, Email: "alice@example.com"},
			err:  aggregate.ErrUnknownUser,
		},
		{
			name:  "new email raises UserEmailChanged",
			given: []fact{registered(aliceFull, minute(1))},
			when:  aggregate.ChangeEmail{UserID: userID, Email: "alice@new.example", At: minute(2)},
			then:  []aggregate.Event{aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"}},
		},
		{
			name:  "same email raises nothing",
			given: []fact{registered(aliceFull, minute(1))},
			when:  aggregate.ChangeEmail{UserID: userID, Email: "alice@example.com", At: minute(2)},
		},
		{
			name:  "email comparison is exact",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.ChangeEmail{UserID: userID, Email: "Alice@example.com", At: minute(2)},
			then:  []aggregate.Event{aggregate.UserEmailChanged{Email: "Alice@example.com", Previous: "alice@example.com"}},
		},
		{
			name:  "deleted user",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.ChangeEmail{UserID: userID, Email: "alice@new.example", At: minute(3)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "inactive user changes and stays inactive",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.ChangeEmail{UserID: userID, Email: "alice@new.example", At: minute(3)},
			then:  []aggregate.Event{aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"}},
		},
		{
			name:  "stale",
			given: []fact{registered(alice, minute(1)), emailChanged("alice@b.example", "alice@example.com", minute(5))},
			when:  aggregate.ChangeEmail{UserID: userID, Email: "alice@c.example", At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.ChangeEmail{UserID: userID, Email: "alice@new.example"},
			then:  []aggregate.Event{aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"}},
		},
	})
}

func TestUpdateProfile(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name: "unknown user",
			when: aggregate.UpdateProfile{UserID: userID, Name: ptr("Alice")},
			err:  aggregate.ErrUnknownUser,
		},
		{
			name:  "new name",
			given: []fact{registered(aliceFull, minute(1))},
			when:  aggregate.UpdateProfile{UserID: userID, Name: ptr("Alice B"), At: minute(2)},
			then:  []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("Alice B")}},
		},
		{
			name:  "name cleared",
			given: []fact{registered(aliceFull, minute(1))},
			when:  aggregate.UpdateProfile{UserID: userID, Name: ptr(""), At: minute(2)},
			then:  []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("")}},
		},
		{
			name:  "same name and a deeply equal profile raise nothing",
			given: []fact{registered(aliceFull, minute(1))},
			when: aggregate.UpdateProfile{UserID: userID, Name: ptr("Alice"),
				Profile: map[string]any{"plan": "pro", "tags": []any{"a", "b"}}, At: minute(2)},
		},
		{
			name:  "nothing given raises nothing",
			given: []fact{registered(aliceFull, minute(1))},
			when:  aggregate.UpdateProfile{UserID: userID, At: minute(2)},
		},
		{
			name:  "empty profile on a user without one raises nothing",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.UpdateProfile{UserID: userID, Profile: map[string]any{}, At: minute(2)},
		},
		{
			name:  "nested change raises the whole new profile",
			given: []fact{registered(aliceFull, minute(1))},
			when: aggregate.UpdateProfile{UserID: userID,
				Profile: map[string]any{"plan": "pro", "tags": []any{"a", "c"}}, At: minute(2)},
			then: []aggregate.Event{aggregate.UserProfileUpdated{
				Profile: map[string]any{"plan": "pro", "tags": []any{"a", "c"}},
			}},
		},
		{
			name:  "name and profile in one event",
			given: []fact{registered(alice, minute(1))},
			when: aggregate.UpdateProfile{UserID: userID, Name: ptr("Al"),
				Profile: map[string]any{"plan": "free"}, At: minute(2)},
			then: []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("Al"), Profile: map[string]any{"plan": "free"}}},
		},
		{
			name:  "deleted user",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.UpdateProfile{UserID: userID, Name: ptr("Al"), At: minute(3)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "inactive user",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.UpdateProfile{UserID: userID, Name: ptr("Al"), At: minute(3)},
			then:  []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("Al")}},
		},
		{
			name:  "stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.UpdateProfile{UserID: userID, Name: ptr("Al"), At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.UpdateProfile{UserID: userID, Name: ptr("Al")},
			then:  []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("Al")}},
		},
	})
}

func TestVerifyEmail(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name: "unknown user is registered verified",
			when: aggregate.VerifyEmail{UserID: userID, Attributes: aggregate.Attributes{Email: ptr("alice@example.com")}},
			then: []aggregate.Event{aggregate.UserRegistered{Email: "alice@example.com", EmailVerified: true}},
		},
		{
			name:  "unverified user",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.VerifyEmail{UserID: userID, At: minute(2)},
			then:  []aggregate.Event{aggregate.UserEmailVerified{Email: "alice@example.com"}},
		},
		{
			name:  "already verified raises nothing",
			given: []fact{registered(alice, minute(1)), emailVerified("alice@example.com", minute(2))},
			when:  aggregate.VerifyEmail{UserID: userID, Attributes: aggregate.Attributes{Email: ptr("alice@example.com")}, At: minute(3)},
		},
		{
			name:  "verified user with another email changes and verifies it",
			given: []fact{registered(aliceFull, minute(1))},
			when:  aggregate.VerifyEmail{UserID: userID, Attributes: aggregate.Attributes{Email: ptr("alice@new.example")}, At: minute(2)},
			then: []aggregate.Event{
				aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"},
				aggregate.UserEmailVerified{Email: "alice@new.example"},
			},
		},
		{
			name:  "deleted user",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.VerifyEmail{UserID: userID, At: minute(3)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "tombstone",
			given: []fact{deleted(minute(2))},
			when:  aggregate.VerifyEmail{UserID: userID, At: minute(3)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "inactive user",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.VerifyEmail{UserID: userID, At: minute(3)},
			then:  []aggregate.Event{aggregate.UserEmailVerified{Email: "alice@example.com"}},
		},
		{
			name:  "stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.VerifyEmail{UserID: userID, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.VerifyEmail{UserID: userID},
			then:  []aggregate.Event{aggregate.UserEmailVerified{Email: "alice@example.com"}},
		},
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name:  "active user",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.Delete{UserID: userID, At: minute(2)},
			then:  []aggregate.Event{aggregate.UserDeleted{}},
		},
		{
			name: "unknown user gets a tombstone",
			when: aggregate.Delete{UserID: userID, At: minute(2)},
			then: []aggregate.Event{aggregate.UserDeleted{}},
		},
		{
			name:  "already deleted raises nothing",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.Delete{UserID: userID, At: minute(3)},
		},
		{
			name:  "tombstone again raises nothing",
			given: []fact{deleted(minute(2))},
			when:  aggregate.Delete{UserID: userID, At: minute(3)},
		},
		{
			name:  "inactive user",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Delete{UserID: userID, At: minute(3)},
			then:  []aggregate.Event{aggregate.UserDeleted{}},
		},
		{
			name:  "older than a deactivation is stale",
			given: []fact{registered(alice, minute(1)), deactivated(minute(5))},
			when:  aggregate.Delete{UserID: userID, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.Delete{UserID: userID, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.Delete{UserID: userID},
			then:  []aggregate.Event{aggregate.UserDeleted{}},
		},
	})
}

func TestRestore(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name: "unknown user",
			when: aggregate.Restore{UserID: userID, At: minute(1)},
			err:  aggregate.ErrUnknownUser,
		},
		{
			name:  "deleted user",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.Restore{UserID: userID, At: minute(3)},
			then:  []aggregate.Event{aggregate.UserRestored{}},
		},
		{
			name:  "tombstone",
			given: []fact{deleted(minute(2))},
			when:  aggregate.Restore{UserID: userID, At: minute(3)},
			then:  []aggregate.Event{aggregate.UserRestored{}},
		},
		{
			name:  "active user raises nothing",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.Restore{UserID: userID, At: minute(2)},
		},
		{
			name:  "inactive user raises nothing: a restore is not a reactivation",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Restore{UserID: userID, At: minute(3)},
		},
		{
			name:  "deleted after a deactivation",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2)), deleted(minute(3))},
			when:  aggregate.Restore{UserID: userID, At: minute(4)},
			then:  []aggregate.Event{aggregate.UserRestored{}},
		},
		{
			name:  "stale",
			given: []fact{registered(alice, minute(1)), deleted(minute(5))},
			when:  aggregate.Restore{UserID: userID, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(1)), deleted(minute(5))},
			when:  aggregate.Restore{UserID: userID},
			then:  []aggregate.Event{aggregate.UserRestored{}},
		},
	})
}

func TestEnsure(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name: "first call registers",
			when: aggregate.Ensure{UserID: userID, Email: "alice@example.com"},
			then: []aggregate.Event{aggregate.UserRegistered{Email: "alice@example.com"}},
		},
		{
			name:  "identical repeat raises nothing",
			given: []fact{registered(aggregate.UserRegistered{Email: "alice@example.com"}, minute(1))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@example.com"},
		},
		{
			name:  "identical repeat leaves name and verification alone",
			given: []fact{registered(aliceFull, minute(1))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@example.com", At: minute(2)},
		},
		{
			name:  "new email raises UserEmailChanged",
			given: []fact{registered(aliceFull, minute(1))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@new.example", At: minute(2)},
			then:  []aggregate.Event{aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"}},
		},
		{
			name:  "deleted user with the same email is restored",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@example.com", At: minute(3)},
			then:  []aggregate.Event{aggregate.UserRestored{}},
		},
		{
			name:  "deleted user with another email is restored and changed",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@new.example"},
			then: []aggregate.Event{
				aggregate.UserRestored{},
				aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"},
			},
		},
		{
			name:  "inactive user with the same email raises nothing: it stays inactive",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@example.com", At: minute(3)},
		},
		{
			name:  "inactive user with another email changes it and stays inactive",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@new.example", At: minute(3)},
			then:  []aggregate.Event{aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"}},
		},
		{
			name:  "deleted after a deactivation is restored",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2)), deleted(minute(3))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@example.com", At: minute(4)},
			then:  []aggregate.Event{aggregate.UserRestored{}},
		},
		{
			name:  "tombstone is restored with the email",
			given: []fact{deleted(minute(2))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@example.com"},
			then: []aggregate.Event{
				aggregate.UserRestored{},
				aggregate.UserEmailChanged{Email: "alice@example.com"},
			},
		},
		{
			name:  "stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@new.example", At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(5)), deleted(minute(6))},
			when:  aggregate.Ensure{UserID: userID, Email: "alice@example.com"},
			then:  []aggregate.Event{aggregate.UserRestored{}},
		},
	})
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name: "unknown user is registered from the attributes",
			when: aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{
				Email: ptr("alice@example.com"), EmailVerified: ptr(true), Name: ptr("Alice"),
				Profile: map[string]any{"plan": "pro"},
			}, At: minute(1)},
			then: []aggregate.Event{aggregate.UserRegistered{
				Email: "alice@example.com", EmailVerified: true, Name: "Alice", Profile: map[string]any{"plan": "pro"},
			}},
		},
		{
			name:  "identical attributes raise nothing",
			given: []fact{registered(aliceFull, minute(1))},
			when: aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{
				Email: ptr("alice@example.com"), EmailVerified: ptr(true), Name: ptr("Alice"),
				Profile: map[string]any{"plan": "pro", "tags": []any{"a", "b"}},
			}, At: minute(2)},
		},
		{
			name:  "changes come in order: email, profile, verification",
			given: []fact{registered(alice, minute(1))},
			when: aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{
				Email: ptr("alice@new.example"), EmailVerified: ptr(true), Name: ptr("Alice"),
				Profile: map[string]any{"plan": "free"},
			}, At: minute(2)},
			then: []aggregate.Event{
				aggregate.UserEmailChanged{Email: "alice@new.example", Previous: "alice@example.com"},
				aggregate.UserProfileUpdated{Profile: map[string]any{"plan": "free"}},
				aggregate.UserEmailVerified{Email: "alice@new.example"},
			},
		},
		{
			name:  "attributes not given change nothing",
			given: []fact{registered(aliceFull, minute(1))},
			when:  aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Alice B")}, At: minute(2)},
			then:  []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("Alice B")}},
		},
		{
			name:  "deleted user is left alone",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Al")}, At: minute(3)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "tombstone is left alone",
			given: []fact{deleted(minute(2))},
			when:  aggregate.Update{UserID: userID, Attributes: aliceAttrs, At: minute(3)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "inactive user changes and stays inactive",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Al")}, At: minute(3)},
			then:  []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("Al")}},
		},
		{
			name:  "stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Al")}, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Al")}},
			then:  []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("Al")}},
		},
		{
			name:  "not active deactivates, after the attributes",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Al"), Active: ptr(false)}, At: minute(2)},
			then:  []aggregate.Event{aggregate.UserProfileUpdated{Name: ptr("Al")}, aggregate.UserDeactivated{}},
		},
		{
			name:  "not active again changes nothing",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Active: ptr(false)}, At: minute(3)},
		},
		{
			name:  "active reactivates an inactive user",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Active: ptr(true)}, At: minute(3)},
			then:  []aggregate.Event{aggregate.UserReactivated{}},
		},
		{
			name:  "active changes nothing for an active user",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Active: ptr(true)}, At: minute(2)},
		},
		{
			name: "an unknown user not active is registered inactive",
			when: aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Email: ptr("alice@example.com"), Active: ptr(false)}, At: minute(1)},
			then: []aggregate.Event{aggregate.UserRegistered{Email: "alice@example.com"}, aggregate.UserDeactivated{}},
		},
	})
}

func TestDeactivate(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name:  "active user",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(2)},
			then:  []aggregate.Event{aggregate.UserDeactivated{}},
		},
		{
			name:  "at the time of the last change",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(1)},
			then:  []aggregate.Event{aggregate.UserDeactivated{}},
		},
		{
			name:  "reactivated user",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2)), reactivated(minute(3))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(4)},
			then:  []aggregate.Event{aggregate.UserDeactivated{}},
		},
		{
			name:  "restored user",
			given: []fact{registered(alice, minute(1)), deleted(minute(2)), restored(minute(3))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(4)},
			then:  []aggregate.Event{aggregate.UserDeactivated{}},
		},
		{
			name: "unknown user",
			when: aggregate.Deactivate{UserID: userID, At: minute(1)},
			err:  aggregate.ErrUnknownUser,
		},
		{
			name:  "deleted user",
			given: []fact{registered(alice, minute(1)), deleted(minute(2))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(3)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "tombstone",
			given: []fact{deleted(minute(2))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(3)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "already inactive raises nothing",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(3)},
		},
		{
			name:  "stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "older than a reactivation is stale: it never rolls the user back",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2)), reactivated(minute(5))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "stale before deleted: an old deactivation of a since deleted user",
			given: []fact{registered(alice, minute(1)), deleted(minute(5))},
			when:  aggregate.Deactivate{UserID: userID, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(5))},
			when:  aggregate.Deactivate{UserID: userID},
			then:  []aggregate.Event{aggregate.UserDeactivated{}},
		},
	})
}

func TestReactivate(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{
			name:  "inactive user",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			when:  aggregate.Reactivate{UserID: userID, At: minute(3)},
			then:  []aggregate.Event{aggregate.UserReactivated{}},
		},
		{
			name:  "inactive user whose attributes changed since",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2)), emailVerified("alice@example.com", minute(3))},
			when:  aggregate.Reactivate{UserID: userID, At: minute(4)},
			then:  []aggregate.Event{aggregate.UserReactivated{}},
		},
		{
			name: "unknown user",
			when: aggregate.Reactivate{UserID: userID, At: minute(1)},
			err:  aggregate.ErrUnknownUser,
		},
		{
			name:  "deleted user",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2)), deleted(minute(3))},
			when:  aggregate.Reactivate{UserID: userID, At: minute(4)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "tombstone",
			given: []fact{deleted(minute(2))},
			when:  aggregate.Reactivate{UserID: userID, At: minute(3)},
			err:   aggregate.ErrUserDeleted,
		},
		{
			name:  "already active raises nothing",
			given: []fact{registered(alice, minute(1))},
			when:  aggregate.Reactivate{UserID: userID, At: minute(2)},
		},
		{
			name:  "reactivated again raises nothing",
			given: []fact{registered(alice, minute(1)), deactivated(minute(2)), reactivated(minute(3))},
			when:  aggregate.Reactivate{UserID: userID, At: minute(4)},
		},
		{
			name:  "stale",
			given: []fact{registered(alice, minute(1)), deactivated(minute(5))},
			when:  aggregate.Reactivate{UserID: userID, At: minute(4)},
			err:   aggregate.ErrStale,
		},
		{
			name:  "zero time is never stale",
			given: []fact{registered(alice, minute(1)), deactivated(minute(5))},
			when:  aggregate.Reactivate{UserID: userID},
			then:  []aggregate.Event{aggregate.UserReactivated{}},
		},
	})
}

// TestInactiveUserLifecycle: an inactive user keeps its attributes and status through changes, a deletion
// ends it, and a restore after the deletion makes the user active, not inactive again.
func TestInactiveUserLifecycle(t *testing.T) {
	t.Parallel()
	history := []fact{registered(aliceFull, minute(1))}
	step := func(cmd aggregate.Command, at time.Time) aggregate.User {
		t.Helper()
		raised, err := cmd.Decide(given(t, history...))
		require.NoError(t, err)
		require.NotEmpty(t, raised)
		for _, e := range raised {
			history = append(history, fact{e.EventType(), e, at})
		}
		return given(t, history...)
	}

	u := step(aggregate.Deactivate{UserID: userID, At: minute(2)}, minute(2))
	assert.Equal(t, aggregate.StatusInactive, u.Status)
	assert.True(t, u.Inactive())
	assert.False(t, u.Deleted())
	assert.Equal(t, "alice@example.com", u.Email, "a deactivated user keeps its attributes")
	assert.Equal(t, minute(2), u.UpdatedAt)
	assert.Equal(t, minute(1), u.CreatedAt)

	u = step(aggregate.Update{UserID: userID, Attributes: aggregate.Attributes{Name: ptr("Alice B")}, At: minute(3)}, minute(3))
	assert.Equal(t, aggregate.StatusInactive, u.Status, "a change leaves it inactive")
	assert.Equal(t, "Alice B", u.Name)

	u = step(aggregate.Reactivate{UserID: userID, At: minute(4)}, minute(4))
	assert.Equal(t, aggregate.StatusActive, u.Status)
	assert.Equal(t, minute(4), u.UpdatedAt)

	step(aggregate.Deactivate{UserID: userID, At: minute(5)}, minute(5))
	u = step(aggregate.Delete{UserID: userID, At: minute(6)}, minute(6))
	assert.Equal(t, aggregate.StatusDeleted, u.Status)
	u = step(aggregate.Ensure{UserID: userID, Email: "alice@example.com", At: minute(7)}, minute(7))
	assert.Equal(t, aggregate.StatusActive, u.Status, "a restored user is active")
}

func TestDeleteThenLateCreation(t *testing.T) {
	t.Parallel()
	// The delete webhook of a user never seen arrives before the (older) create webhook.
	u := given(t)
	raised, err := aggregate.Delete{UserID: userID, At: minute(10)}.Decide(u)
	require.NoError(t, err)
	require.Equal(t, []aggregate.Event{aggregate.UserDeleted{}}, raised)

	u = given(t, deleted(minute(10)))
	assert.True(t, u.Exists(), "a tombstone counts as existing")
	assert.True(t, u.Deleted())

	_, err = aggregate.Register{UserID: userID, Attributes: aliceAttrs, At: minute(9)}.Decide(u)
	assert.ErrorIs(t, err, aggregate.ErrStale, "an older creation must not bring the user back")

	raised, err = aggregate.Register{UserID: userID, Attributes: aliceAttrs, At: minute(11)}.Decide(u)
	require.NoError(t, err)
	assert.Equal(t, []aggregate.Event{
		aggregate.UserRestored{},
		aggregate.UserEmailChanged{Email: "alice@example.com"},
		aggregate.UserProfileUpdated{Name: ptr("Alice")},
	}, raised)
}

func TestEnsureNewEmailUnverifies(t *testing.T) {
	t.Parallel()
	u := given(t, registered(aliceFull, minute(1)))
	require.True(t, u.EmailVerified)
	raised, err := aggregate.Ensure{UserID: userID, Email: "alice@new.example", At: minute(2)}.Decide(u)
	require.NoError(t, err)
	for _, e := range raised {
		u.Apply(e, minute(2))
	}
	assert.Equal(t, "alice@new.example", u.Email)
	assert.False(t, u.EmailVerified, "a new address is not verified")
}

func TestDecideRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	const goodEmail = "alice@example.com"
	badIDs := map[string]string{
		"empty user id":          "",
		"256 character user id":  strings.Repeat("u", 256),
		"control char in id":     "user\x00id",
		"newline in id":          "user\nid",
		"leading space in id":    " user",
		"invalid UTF-8 in id":    "user\xff",
		"trailing tab in id":     "user\t",
		"256 rune multi-byte id": strings.Repeat("é", 256),
	}
	cmdsForID := func(id string) map[string]aggregate.Command {
		return map[string]aggregate.Command{
			"Register":      aggregate.Register{UserID: id, Attributes: aggregate.Attributes{Email: ptr(goodEmail)}},
			"ChangeEmail":   aggregate.ChangeEmail{UserID: id, Email: goodEmail},
			"UpdateProfile": aggregate.UpdateProfile{UserID: id, Name: ptr("A")},
			"VerifyEmail":   aggregate.VerifyEmail{UserID: id},
			"Delete":        aggregate.Delete{UserID: id},
			"Restore":       aggregate.Restore{UserID: id},
			"Deactivate":    aggregate.Deactivate{UserID: id},
			"Reactivate":    aggregate.Reactivate{UserID: id},
			"Ensure":        aggregate.Ensure{UserID: id, Email: goodEmail},
			"Update":        aggregate.Update{UserID: id, Attributes: aggregate.Attributes{Name: ptr("A")}},
		}
	}
	cmdsForEmail := func(id, email string) map[string]aggregate.Command {
		return map[string]aggregate.Command{
			"Register":    aggregate.Register{UserID: id, Attributes: aggregate.Attributes{Email: ptr(email)}},
			"ChangeEmail": aggregate.ChangeEmail{UserID: id, Email: email},
			"VerifyEmail": aggregate.VerifyEmail{UserID: id, Attributes: aggregate.Attributes{Email: ptr(email)}},
			"Ensure":      aggregate.Ensure{UserID: id, Email: email},
			"Update":      aggregate.Update{UserID: id, Attributes: aggregate.Attributes{Email: ptr(email)}},
		}
	}

	type invalidCase struct {
		name   string
		cmd    aggregate.Command
		fields []string
	}
	var cases []invalidCase
	for idName, id := range badIDs {
		for cmdName, cmd := range cmdsForID(id) {
			cases = append(cases, invalidCase{cmdName + "/" + idName, cmd, []string{"user_id"}})
		}
	}
	for cmdName, cmd := range cmdsForEmail(userID, "not an email") {
		cases = append(cases, invalidCase{cmdName + "/invalid email", cmd, []string{"email"}})
	}
	for cmdName, cmd := range cmdsForEmail(userID, "") {
		cases = append(cases, invalidCase{cmdName + "/empty email", cmd, []string{"email"}})
	}
	for cmdName, cmd := range cmdsForEmail("", "not an email") {
		cases = append(cases, invalidCase{cmdName + "/both bad", cmd, []string{"user_id", "email"}})
	}

	// Every state: validation comes before the state is looked at.
	states := map[string][]fact{
		"unknown":  nil,
		"active":   {registered(alice, minute(1))},
		"deleted":  {registered(alice, minute(1)), deleted(minute(2))},
		"inactive": {registered(alice, minute(1)), deactivated(minute(2))},
	}
	for _, tc := range cases {
		for stateName, history := range states {
			t.Run(tc.name+"/"+stateName, func(t *testing.T) {
				t.Parallel()
				raised, err := tc.cmd.Decide(given(t, history...))
				require.Error(t, err)
				assert.Empty(t, raised)
				assert.ErrorIs(t, err, userhook.ErrInvalid)
				var fe userhook.FieldErrors
				require.True(t, errors.As(err, &fe), "want userhook.FieldErrors, got %T", err)
				var fields []string
				for _, f := range fe {
					fields = append(fields, f.Field)
					assert.NotEmpty(t, f.Message, "field %s", f.Field)
				}
				assert.ElementsMatch(t, tc.fields, fields)
			})
		}
	}
}

func TestDecideAcceptsLongestUserID(t *testing.T) {
	t.Parallel()
	for name, id := range map[string]string{
		"255 ASCII":      strings.Repeat("u", aggregate.MaxUserIDLength),
		"255 multi-byte": strings.Repeat("é", aggregate.MaxUserIDLength),
		"inner space":    "auth0|user 1",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raised, err := aggregate.Ensure{UserID: id, Email: "alice@example.com"}.Decide(aggregate.User{ID: id})
			require.NoError(t, err)
			assert.Len(t, raised, 1)
		})
	}
}

func TestCheckUserID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id string
		ok bool
	}{
		{"u1", true},
		{"auth0|5f7c8ec7c33c6c004bbafe82", true},
		{strings.Repeat("x", 255), true},
		{strings.Repeat("界", 255), true},
		{"", false},
		{strings.Repeat("x", 256), false},
		{"a\x00b", false},
		{"a\x7fb", false},
		{"a\u0085b", false},
		{" a", false},
		{"a ", false},
		{"\xc3\x28", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%.40q", tc.id), func(t *testing.T) {
			t.Parallel()
			msg := aggregate.CheckUserID(tc.id)
			if tc.ok {
				assert.Empty(t, msg)
			} else {
				assert.NotEmpty(t, msg)
			}
		})
	}
}

func TestCheckEmail(t *testing.T) {
	t.Parallel()
	longest := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com" // 254 bytes
	require.Len(t, longest, aggregate.MaxEmailLength)
	good := []string{
		"a@b",
		"alice@example.com",
		"A.B+tag@example.co.uk",
		"first.last@sub.domain.example",
		"o'brien@example.ie",
		"josé@example.com",
		"用户@例子.广告",
		longest,
	}
	bad := []string{
		"ab.com",
		"@example.com",
		"alice@",
		"alice@@example.com",
		"Alice <alice@example.com>",
		"<alice@example.com>",
		" alice@example.com",
		"alice@example.com ",
		"al ice@example.com",
		`"alice smith"@example.com`,
		".alice@example.com",
		"al..ice@example.com",
		"alice@example..com",
		"alice@example.com\n",
		"ali\x00ce@example.com",
		"\xffalice@example.com",
		"alice@example.com,bob@example.com",
		"(comment)alice@example.com",
		longest + "x",
	}
	for _, email := range good {
		t.Run("good/"+fmt.Sprintf("%.40q", email), func(t *testing.T) {
			t.Parallel()
			assert.Empty(t, aggregate.CheckEmail(email))
		})
	}
	for _, email := range bad {
		t.Run("bad/"+fmt.Sprintf("%.40q", email), func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, "Invalid email format", aggregate.CheckEmail(email))
		})
	}
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		assert.Equal(t, "Email is required", aggregate.CheckEmail(""))
	})
}

func TestFoldThenApply(t *testing.T) {
	t.Parallel()
	history := []fact{
		registered(aggregate.UserRegistered{Email: "alice@example.com", Name: "Alice", Profile: map[string]any{"plan": "free"}}, minute(1)),
		emailVerified("alice@example.com", minute(2)),
		emailChanged("alice@new.example", "alice@example.com", minute(3)),
		profileUpdated(aggregate.UserProfileUpdated{Profile: map[string]any{"plan": "pro", "seats": float64(3)}}, minute(4)),
		profileUpdated(aggregate.UserProfileUpdated{Name: ptr("Alice B")}, minute(5)),
		emailVerified("alice@new.example", minute(6)),
		deleted(minute(7)),
		restored(minute(8)),
	}
	events := stored(t, history...)
	u, err := aggregate.Fold(userID, events)
	require.NoError(t, err)
	assert.Equal(t, aggregate.User{
		ID:            userID,
		Email:         "alice@new.example",
		EmailVerified: true,
		Name:          "Alice B",
		Profile:       map[string]any{"plan": "pro", "seats": float64(3)},
		Status:        aggregate.StatusActive,
		Version:       8,
		Position:      80,
		CreatedAt:     minute(1),
		UpdatedAt:     minute(8),
	}, u)
	assert.True(t, u.Exists())
	assert.False(t, u.Deleted())

	u.Apply(aggregate.UserEmailChanged{Email: "alice@third.example", Previous: u.Email}, minute(9))
	assert.Equal(t, "alice@third.example", u.Email)
	assert.False(t, u.EmailVerified, "a changed email is not verified")
	assert.Equal(t, minute(9), u.UpdatedAt)
	assert.Equal(t, minute(1), u.CreatedAt, "CreatedAt is the registration")

	u.Apply(aggregate.UserDeleted{}, minute(10))
	assert.Equal(t, aggregate.StatusDeleted, u.Status)
	assert.True(t, u.Deleted())
	assert.Equal(t, int64(8), u.Version, "Apply leaves Version to the caller")
}

func TestFoldStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		history []fact
		want    aggregate.User
	}{
		{
			name: "no events",
			want: aggregate.User{ID: userID},
		},
		{
			name:    "registered",
			history: []fact{registered(aliceFull, minute(1))},
			want: aggregate.User{ID: userID, Email: aliceFull.Email, EmailVerified: true, Name: "Alice",
				Profile: map[string]any{"plan": "pro", "tags": []any{"a", "b"}}, Status: aggregate.StatusActive,
				Version: 1, Position: 10, CreatedAt: minute(1), UpdatedAt: minute(1)},
		},
		{
			name:    "tombstone",
			history: []fact{deleted(minute(3))},
			want:    aggregate.User{ID: userID, Status: aggregate.StatusDeleted, Version: 1, Position: 10, UpdatedAt: minute(3)},
		},
		{
			name:    "tombstone restored gets CreatedAt from the restore",
			history: []fact{deleted(minute(3)), restored(minute(4)), emailChanged("alice@example.com", "", minute(4))},
			want: aggregate.User{ID: userID, Email: "alice@example.com", Status: aggregate.StatusActive,
				Version: 3, Position: 30, CreatedAt: minute(4), UpdatedAt: minute(4)},
		},
		{
			name:    "restore keeps the original CreatedAt",
			history: []fact{registered(alice, minute(1)), deleted(minute(2)), restored(minute(3))},
			want: aggregate.User{ID: userID, Email: alice.Email, Name: "Alice", Status: aggregate.StatusActive,
				Version: 3, Position: 30, CreatedAt: minute(1), UpdatedAt: minute(3)},
		},
		{
			name: "UpdatedAt never goes backwards",
			history: []fact{
				registered(alice, minute(5)),
				profileUpdated(aggregate.UserProfileUpdated{Name: ptr("Late")}, minute(2)),
				emailVerified("alice@example.com", minute(4)),
			},
			want: aggregate.User{ID: userID, Email: alice.Email, EmailVerified: true, Name: "Late",
				Status: aggregate.StatusActive, Version: 3, Position: 30, CreatedAt: minute(5), UpdatedAt: minute(5)},
		},
		{
			name:    "deactivated",
			history: []fact{registered(alice, minute(1)), deactivated(minute(2))},
			want: aggregate.User{ID: userID, Email: alice.Email, Name: "Alice", Status: aggregate.StatusInactive,
				Version: 2, Position: 20, CreatedAt: minute(1), UpdatedAt: minute(2)},
		},
		{
			name:    "reactivated",
			history: []fact{registered(alice, minute(1)), deactivated(minute(2)), reactivated(minute(3))},
			want: aggregate.User{ID: userID, Email: alice.Email, Name: "Alice", Status: aggregate.StatusActive,
				Version: 3, Position: 30, CreatedAt: minute(1), UpdatedAt: minute(3)},
		},
		{
			name:    "a late deactivation keeps UpdatedAt",
			history: []fact{registered(alice, minute(5)), deactivated(minute(4))},
			want: aggregate.User{ID: userID, Email: alice.Email, Name: "Alice", Status: aggregate.StatusInactive,
				Version: 2, Position: 20, CreatedAt: minute(5), UpdatedAt: minute(5)},
		},
		{
			name:    "deleted after a deactivation, then restored, is active",
			history: []fact{registered(alice, minute(1)), deactivated(minute(2)), deleted(minute(3)), restored(minute(4))},
			want: aggregate.User{ID: userID, Email: alice.Email, Name: "Alice", Status: aggregate.StatusActive,
				Version: 4, Position: 40, CreatedAt: minute(1), UpdatedAt: minute(4)},
		},
		{
			name: "a nil profile in an update leaves the profile",
			history: []fact{
				registered(aliceFull, minute(1)),
				profileUpdated(aggregate.UserProfileUpdated{Name: ptr("Al")}, minute(2)),
			},
			want: aggregate.User{ID: userID, Email: aliceFull.Email, EmailVerified: true, Name: "Al",
				Profile: map[string]any{"plan": "pro", "tags": []any{"a", "b"}}, Status: aggregate.StatusActive,
				Version: 2, Position: 20, CreatedAt: minute(1), UpdatedAt: minute(2)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, err := aggregate.Fold(userID, stored(t, tc.history...))
			require.NoError(t, err)
			assert.Equal(t, tc.want, u)
		})
	}
}

func TestApplyOlderEventKeepsUpdatedAt(t *testing.T) {
	t.Parallel()
	u := given(t, registered(alice, minute(10)))
	u.Apply(aggregate.UserProfileUpdated{Name: ptr("Older")}, minute(3))
	assert.Equal(t, "Older", u.Name, "apply never refuses")
	assert.Equal(t, minute(10), u.UpdatedAt)
	u.Apply(aggregate.UserEmailVerified{}, time.Time{})
	assert.Equal(t, minute(10), u.UpdatedAt, "a zero time does not move UpdatedAt")
	u.Apply(aggregate.UserDeleted{}, minute(11))
	assert.Equal(t, minute(11), u.UpdatedAt)
}

func TestApplySharesNoProfile(t *testing.T) {
	t.Parallel()
	profile := map[string]any{"plan": "pro"}
	var u aggregate.User
	u.Apply(aggregate.UserRegistered{Email: "alice@example.com", Profile: profile}, minute(1))
	profile["plan"] = "changed"
	assert.Equal(t, "pro", u.Profile["plan"], "the event's map must not alias the state")

	c := u.Clone()
	c.Profile["plan"] = "clone"
	assert.Equal(t, "pro", u.Profile["plan"], "a clone must not alias the state")
}

func TestFoldRejectsUnknownType(t *testing.T) {
	t.Parallel()
	events := stored(t, registered(alice, minute(1)))
	events = append(events, eventstore.Event{ID: "x", Version: 2, Type: "user.exploded.v1", Data: []byte(`{}`)})
	_, err := aggregate.Fold(userID, events)
	assert.ErrorContains(t, err, "user.exploded.v1")
}

func TestFoldRejectsBadPayload(t *testing.T) {
	t.Parallel()
	events := []eventstore.Event{{ID: "x", Version: 1, Type: aggregate.TypeUserRegistered, Data: []byte(`{"email":42}`)}}
	_, err := aggregate.Fold(userID, events)
	assert.Error(t, err)
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []aggregate.Event{
		aggregate.UserRegistered{},
		aliceFull,
		aggregate.UserEmailChanged{Email: "b@example.com", Previous: "a@example.com"},
		aggregate.UserEmailChanged{Email: "b@example.com"},
		aggregate.UserProfileUpdated{Name: ptr("")},
		aggregate.UserProfileUpdated{Name: ptr("Al"), Profile: map[string]any{"n": float64(1), "nested": map[string]any{"k": "v"}}},
		aggregate.UserEmailVerified{Email: "a@example.com"},
		aggregate.UserDeleted{},
		aggregate.UserRestored{},
		aggregate.UserDeactivated{},
		aggregate.UserReactivated{},
	} {
		t.Run(fmt.Sprintf("%s/%+v", e.EventType(), e), func(t *testing.T) {
			t.Parallel()
			data, err := aggregate.Encode(e)
			require.NoError(t, err)
			got, err := aggregate.Decode(eventstore.Event{Type: e.EventType(), Data: data})
			require.NoError(t, err)
			assert.Equal(t, e, got)
		})
	}
}

// A profile cleared to {} must survive the stored payload: a rebuild shows it cleared and a repeat of the
// command raises nothing (once a bug: omitempty dropped the empty map).
func TestClearingProfileSurvivesRebuild(t *testing.T) {
	t.Parallel()
	history := []fact{registered(aliceFull, minute(1))}
	u := given(t, history...)
	cmd := aggregate.UpdateProfile{UserID: userID, Profile: map[string]any{}, At: minute(2)}
	raised, err := cmd.Decide(u)
	require.NoError(t, err)
	for _, e := range raised {
		history = append(history, fact{e.EventType(), e, minute(2)})
	}
	rebuilt := given(t, history...)
	assert.Empty(t, rebuilt.Profile, "the profile was cleared")
	again, err := cmd.Decide(rebuilt)
	require.NoError(t, err)
	assert.Empty(t, again, "repeating the command changes nothing")
}
