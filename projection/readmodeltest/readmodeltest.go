// Package readmodeltest is the contract suite every projection.ReadModel implementation runs:
//
//	func TestContract(t *testing.T) { readmodeltest.Run(t, func(t *testing.T) projection.ReadModel { ... }) }
//
// Each subtest gets fresh, empty read models from newModel (some ask for two); newModel registers whatever
// cleanup the model needs with t.Cleanup. Rows is only ever compared between models of one implementation:
// the canonical text of SQLite and of PostgreSQL need not agree.
package readmodeltest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/projection"
)

// Name is the checkpoint name the suite writes through.
const Name = "test-projection"

// Epoch is the creation time of the users User builds; it has nanoseconds, which every model keeps.
var Epoch = time.Date(2024, 6, 1, 9, 0, 0, 123456789, time.UTC)

// User is a row as the projection would write it, at version and position.
func User(id, email string, status aggregate.Status, version, position int64) aggregate.User {
	return aggregate.User{
		ID: id, Email: email, EmailVerified: version%2 == 0, Name: "Name of " + id, Status: status,
		Profile: map[string]any{"plan": "pro", "seats": float64(version)},
		Version: version, Position: position,
		CreatedAt: Epoch, UpdatedAt: Epoch.Add(time.Duration(position) * time.Second),
	}
}

// Put writes u through Update, the projection's only way in, with the checkpoint of Name at u.Position.
func Put(t *testing.T, m projection.ReadModel, u aggregate.User) {
	t.Helper()
	require.NoError(t, m.Update(context.Background(), Name, u.Position, u.ID, func(cur *aggregate.User) (bool, error) {
		*cur = u.Clone()
		return true, nil
	}))
}

// Run runs the whole contract against read models from newModel.
func Run(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newModel func(t *testing.T) projection.ReadModel)
	}{
		{"UpdateCreatesAndUpdatesRows", testUpdateCreatesAndUpdates},
		{"UpdateWithoutChangeAdvancesOnlyTheCheckpoint", testUpdateWithoutChange},
		{"UpdateErrorChangesNothing", testUpdateError},
		{"UpdateNeverMovesTheCheckpointBack", testUpdateCheckpointForward},
		{"BatchReadsAndWritesManyRows", testBatch},
		{"BatchErrorChangesNothing", testBatchError},
		{"BatchDoesNotReadFreshUsers", testBatchFresh},
		{"BatchNeverMovesARowBack", testBatchNeverMovesARowBack},
		{"ConcurrentFreshBatchesOfOneUserKeepTheHighestVersion", testConcurrentFresh},
		{"ProjectBatchEqualsOneEventAtATime", testProjectBatch},
		{"SaveCheckpointNeverMovesBackwards", testSaveCheckpoint},
		{"FieldsRoundTrip", testRoundTrip},
		{"GetUnknownUser", testGetUnknown},
		{"List", testList},
		{"ListByStatusFollowsDeactivation", testListInactive},
		{"ListEmailIgnoresCaseBeyondASCII", testListEmailUnicode},
		{"ListOrdersByUserIDBytes", testListOrder},
		{"RebuildReplacesEveryRow", testRebuild},
		{"RebuildIsAtomic", testRebuildAtomic},
		{"RebuildIsInvisibleUntilCommitted", testRebuildInvisible},
		{"RowsIdenticalForIdenticalContent", testRowsIdentical},
		{"ConcurrentBatchesOnDistinctUsers", testConcurrentBatches},
		{"ConcurrentUpdatesOfOneUserAreSerialised", testConcurrentOneUser},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newModel)
		})
	}
}

func get(t *testing.T, m projection.ReadModel, id string) aggregate.User {
	t.Helper()
	u, err := m.Get(context.Background(), id)
	require.NoError(t, err)
	return u
}

func rows(t *testing.T, m projection.ReadModel) []string {
	t.Helper()
	out, err := m.Rows(context.Background())
	require.NoError(t, err)
	return out
}

func checkpoint(t *testing.T, m projection.ReadModel, n string) int64 {
	t.Helper()
	pos, err := m.Checkpoint(context.Background(), n)
	require.NoError(t, err)
	return pos
}

func list(t *testing.T, m projection.ReadModel, f projection.ListFilter) []string {
	t.Helper()
	users, err := m.List(context.Background(), f)
	require.NoError(t, err)
	return ids(users)
}

func ids(users []aggregate.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

func testUpdateCreatesAndUpdates(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)

	var seen aggregate.User
	require.NoError(t, m.Update(ctx, Name, 1, "u1", func(u *aggregate.User) (bool, error) {
		seen = u.Clone()
		*u = User("u1", "a@example.com", aggregate.StatusActive, 1, 1)
		return true, nil
	}))
	assert.Equal(t, aggregate.User{ID: "u1"}, seen, "an unknown user starts as a zero user with its id")
	assert.Equal(t, User("u1", "a@example.com", aggregate.StatusActive, 1, 1), get(t, m, "u1"), "every field round-trips")
	assert.Equal(t, int64(1), checkpoint(t, m, Name))

	require.NoError(t, m.Update(ctx, Name, 4, "u1", func(u *aggregate.User) (bool, error) {
		seen = u.Clone()
		u.Email, u.Status, u.Profile, u.Version, u.Position = "b@example.com", aggregate.StatusDeleted, nil, 2, 4
		return true, nil
	}))
	assert.Equal(t, User("u1", "a@example.com", aggregate.StatusActive, 1, 1), seen, "fn is given the stored row")
	got := get(t, m, "u1")
	assert.Equal(t, "b@example.com", got.Email)
	assert.Equal(t, aggregate.StatusDeleted, got.Status)
	assert.Nil(t, got.Profile)
	assert.Equal(t, int64(2), got.Version)
	assert.Equal(t, int64(4), got.Position)
	assert.Equal(t, int64(4), checkpoint(t, m, Name))
	assert.Len(t, rows(t, m), 1, "an update replaces the row")
}

func testUpdateWithoutChange(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	want := rows(t, m)

	require.NoError(t, m.Update(ctx, Name, 9, "u1", func(u *aggregate.User) (bool, error) {
		u.Email = "ignored@example.com" // not reported as a change, so not written
		return false, nil
	}))
	require.NoError(t, m.Update(ctx, Name, 10, "u2", func(u *aggregate.User) (bool, error) { return false, nil }))

	assert.Equal(t, want, rows(t, m))
	assert.Equal(t, int64(10), checkpoint(t, m, Name))
}

func testUpdateError(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 1, 3))
	want := rows(t, m)
	boom := errors.New("boom")

	for _, id := range []string{"u1", "u2"} {
		err := m.Update(ctx, Name, 8, id, func(u *aggregate.User) (bool, error) {
			*u = User(id, "x@example.com", aggregate.StatusDeleted, 2, 8)
			return true, boom
		})
		require.ErrorIs(t, err, boom, "fn's error is returned")
	}

	assert.Equal(t, want, rows(t, m), "neither row written")
	assert.Equal(t, int64(3), checkpoint(t, m, Name), "nor the checkpoint advanced")
	_, err := m.Get(ctx, "u2")
	assert.ErrorIs(t, err, userhook.ErrNotFound)
}

func testUpdateCheckpointForward(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	m := newModel(t)
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 2, 7))
	Put(t, m, User("u2", "b@example.com", aggregate.StatusActive, 1, 5))
	assert.Equal(t, int64(7), checkpoint(t, m, Name))
	assert.Equal(t, int64(5), get(t, m, "u2").Position, "the row is written even though the checkpoint stays")
}

func testBatch(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	Put(t, m, User("u2", "b@example.com", aggregate.StatusActive, 1, 2))
	u2 := rows(t, m)[1]

	var seen map[string]aggregate.User
	// u1 twice, as a batch of two events of one stream asks for it.
	existing, err := m.Batch(ctx, Name, 6, projection.BatchUsers{Read: []string{"u1", "u3", "u2", "u1"}}, func(rows map[string]*aggregate.User) ([]string, error) {
		seen = map[string]aggregate.User{}
		for id, u := range rows {
			seen[id] = u.Clone()
		}
		*rows["u1"] = User("u1", "a2@example.com", aggregate.StatusActive, 3, 6)
		*rows["u3"] = User("u3", "c@example.com", aggregate.StatusActive, 1, 5)
		rows["u2"].Name = "not reported, not written"
		return []string{"u1", "u3"}, nil
	})
	require.NoError(t, err)
	assert.Empty(t, existing, "a batch without fresh users reports none")
	assert.Equal(t, map[string]aggregate.User{
		"u1": User("u1", "a@example.com", aggregate.StatusActive, 1, 1),
		"u2": User("u2", "b@example.com", aggregate.StatusActive, 1, 2),
		"u3": {ID: "u3"},
	}, seen, "fn gets every requested row once, a zero user for an unknown one")

	assert.Equal(t, User("u1", "a2@example.com", aggregate.StatusActive, 3, 6), get(t, m, "u1"))
	assert.Equal(t, User("u3", "c@example.com", aggregate.StatusActive, 1, 5), get(t, m, "u3"))
	got := rows(t, m)
	require.Len(t, got, 3)
	assert.Equal(t, u2, got[1], "a row fn did not report is left as it was")
	assert.Equal(t, int64(6), checkpoint(t, m, Name))

	_, err = m.Batch(ctx, Name, 7, projection.BatchUsers{}, func(rows map[string]*aggregate.User) ([]string, error) {
		assert.Empty(t, rows)
		return nil, nil
	})
	require.NoError(t, err)
	assert.Equal(t, int64(7), checkpoint(t, m, Name), "a batch of no users still advances the checkpoint")
}

func testBatchError(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	Put(t, m, User("u2", "b@example.com", aggregate.StatusActive, 1, 2))
	want := rows(t, m)
	boom := errors.New("boom")

	// u2 is fresh and has a row: its write, which would replace that row, is rolled back too.
	_, err := m.Batch(ctx, Name, 9, projection.BatchUsers{Read: []string{"u1"}, Fresh: []string{"u2", "u3"}}, func(rows map[string]*aggregate.User) ([]string, error) {
		for id, u := range rows {
			*u = User(id, "x@example.com", aggregate.StatusDeleted, 5, 9)
		}
		return []string{"u1", "u2", "u3"}, boom
	})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, want, rows(t, m), "no row written")
	assert.Equal(t, int64(2), checkpoint(t, m, Name), "nor the checkpoint advanced")
}

// A fresh user's row is built from nothing: fn gets a zero user even where a row is stored, and the write
// replaces a stored row only of a lower version.
func testBatchFresh(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	Put(t, m, User("ahead", "ahead@example.com", aggregate.StatusActive, 3, 3))
	Put(t, m, User("level", "level@example.com", aggregate.StatusActive, 2, 4))
	Put(t, m, User("behind", "behind@example.com", aggregate.StatusActive, 1, 5))
	Put(t, m, User("read", "read@example.com", aggregate.StatusActive, 1, 6))
	Put(t, m, User("both", "both@example.com", aggregate.StatusActive, 1, 7))
	before := map[string]aggregate.User{}
	for _, id := range []string{"ahead", "level", "behind", "read", "both"} {
		before[id] = get(t, m, id)
	}

	var seen map[string]aggregate.User
	existing, err := m.Batch(ctx, Name, 20, projection.BatchUsers{
		Read:  []string{"read", "both"},
		Fresh: []string{"ahead", "level", "behind", "new", "both", "new"},
	}, func(rows map[string]*aggregate.User) ([]string, error) {
		seen = map[string]aggregate.User{}
		for id, u := range rows {
			seen[id] = u.Clone()
		}
		*rows["ahead"] = User("ahead", "stale@example.com", aggregate.StatusDeleted, 2, 11)
		*rows["level"] = User("level", "other@example.com", aggregate.StatusDeleted, 2, 12)
		*rows["behind"] = User("behind", "behind2@example.com", aggregate.StatusDeleted, 2, 13)
		*rows["new"] = User("new", "new@example.com", aggregate.StatusActive, 2, 14)
		rows["read"].Version, rows["read"].Position, rows["read"].Name = 2, 15, "read, then changed"
		rows["both"].Version, rows["both"].Position, rows["both"].Name = 2, 16, "read, as it was listed to read too"
		return []string{"ahead", "level", "behind", "new", "read", "both"}, nil
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]aggregate.User{
		"ahead": {ID: "ahead"}, "level": {ID: "level"}, "behind": {ID: "behind"}, "new": {ID: "new"},
		"read": before["read"], "both": before["both"],
	}, seen, "fn gets a zero user for every fresh id, stored row or not, and the stored row of every id to read")
	assert.Equal(t, map[string]int64{"ahead": 3, "level": 2, "behind": 1}, existing,
		"the fresh users that had a row, with the version it had")

	assert.Equal(t, before["ahead"], get(t, m, "ahead"), "a row ahead of the fresh one is left as it was")
	assert.Equal(t, before["level"], get(t, m, "level"), "and so is a row at its version")
	assert.Equal(t, User("behind", "behind2@example.com", aggregate.StatusDeleted, 2, 13), get(t, m, "behind"),
		"a row behind the fresh one is replaced")
	assert.Equal(t, User("new", "new@example.com", aggregate.StatusActive, 2, 14), get(t, m, "new"), "a new user is created")
	assert.Equal(t, "read, then changed", get(t, m, "read").Name, "a row read is written on top of the stored one")
	assert.Equal(t, "read, as it was listed to read too", get(t, m, "both").Name)
	assert.Len(t, rows(t, m), 6)
	assert.Equal(t, int64(20), checkpoint(t, m, Name))
	assert.Equal(t, []string{"behind"}, list(t, m, projection.ListFilter{Status: "deleted", Limit: 10}),
		"the filters see the rows as they are")
	assert.Empty(t, list(t, m, projection.ListFilter{Email: "stale@example.com", Limit: 10}))

	existing, err = m.Batch(ctx, Name, 21, projection.BatchUsers{Fresh: []string{"brand-new"}}, func(rows map[string]*aggregate.User) ([]string, error) {
		*rows["brand-new"] = User("brand-new", "bn@example.com", aggregate.StatusActive, 1, 21)
		return []string{"brand-new"}, nil
	})
	require.NoError(t, err)
	assert.Empty(t, existing, "a fresh user without a row is not reported")
	assert.Equal(t, User("brand-new", "bn@example.com", aggregate.StatusActive, 1, 21), get(t, m, "brand-new"))
}

// Only Rebuild sets a row back: Update and Batch write a row only at a higher version than the stored one.
func testBatchNeverMovesARowBack(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 3, 3))
	want := get(t, m, "u1")

	for _, version := range []int64{2, 3} {
		require.NoError(t, m.Update(ctx, Name, 10+version, "u1", func(u *aggregate.User) (bool, error) {
			*u = User("u1", "back@example.com", aggregate.StatusDeleted, version, 10+version)
			return true, nil
		}))
		assert.Equal(t, want, get(t, m, "u1"), "a write at version %d leaves the row at 3", version)
		assert.Equal(t, 10+version, checkpoint(t, m, Name), "the checkpoint still advances")
	}
	Put(t, m, User("u1", "fwd@example.com", aggregate.StatusActive, 4, 14))
	assert.Equal(t, User("u1", "fwd@example.com", aggregate.StatusActive, 4, 14), get(t, m, "u1"))
}

// Two instances may both start one new user from nothing (each holds events of it from version 1). The
// batches run one after the other, and whichever order they commit in, the row ends at the highest version.
func testConcurrentFresh(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	const workers = 8
	var wg sync.WaitGroup
	// The highest version starts first, so that without the version check a lower one would commit last.
	for version := int64(workers); version > 0; version-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Batch(ctx, Name, version, projection.BatchUsers{Fresh: []string{"contended"}}, func(rows map[string]*aggregate.User) ([]string, error) {
				*rows["contended"] = User("contended", fmt.Sprintf("v%d@example.com", version), aggregate.StatusActive, version, version)
				return []string{"contended"}, nil
			})
			assert.NoError(t, err)
		}()
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	assert.Equal(t, User("contended", fmt.Sprintf("v%d@example.com", workers), aggregate.StatusActive, workers, workers), get(t, m, "contended"))
	assert.Equal(t, int64(workers), checkpoint(t, m, Name))
}

// history is a store's events, made by hand.
type history struct {
	events   []eventstore.Event
	versions map[string]int64
}

func (h *history) add(t *testing.T, id string, e aggregate.Event) {
	t.Helper()
	data, err := aggregate.Encode(e)
	require.NoError(t, err)
	if h.versions == nil {
		h.versions = map[string]int64{}
	}
	h.versions[id]++
	pos := int64(len(h.events) + 1)
	h.events = append(h.events, eventstore.Event{
		ID: fmt.Sprintf("ev-%d", pos), StreamID: id, StreamType: aggregate.StreamType, Type: e.EventType(),
		Version: h.versions[id], Position: pos, Data: data, OccurredAt: Epoch.Add(time.Duration(pos) * time.Second),
	})
}

// The users projection applies a run of events in one Batch, with the users whose first event in it has
// version 1 fresh (not read). A run that repeats events already applied, mixed with new users' first events
// and existing users' later ones, must leave the rows and the count of applied events exactly as applying the
// events one at a time does.
func testProjectBatch(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	name := func(s string) *string { return &s }
	var h history
	// Applied before the runs below.
	h.add(t, "old-0", aggregate.UserRegistered{Email: "old0@example.com", Name: "Old Zero"})
	h.add(t, "old-0", aggregate.UserEmailChanged{Email: "old0b@example.com", Previous: "old0@example.com"})
	h.add(t, "old-1", aggregate.UserRegistered{Email: "old1@example.com", Profile: map[string]any{"plan": "free"}})
	h.add(t, "old-2", aggregate.UserRegistered{Email: "old2@example.com"})
	h.add(t, "old-1", aggregate.UserProfileUpdated{Name: name("Old One")})
	h.add(t, "old-3", aggregate.UserRegistered{Email: "old3@example.com", EmailVerified: true})
	applied := len(h.events)
	// New since.
	h.add(t, "new-0", aggregate.UserRegistered{Email: "new0@example.com"})
	h.add(t, "old-0", aggregate.UserProfileUpdated{Profile: map[string]any{"plan": "pro"}})
	h.add(t, "new-1", aggregate.UserRegistered{Email: "new1@example.com", Name: "New One"})
	h.add(t, "old-3", aggregate.UserDeleted{})
	h.add(t, "new-0", aggregate.UserEmailVerified{Email: "new0@example.com"})
	h.add(t, "old-1", aggregate.UserEmailChanged{Email: "old1b@example.com", Previous: "old1@example.com"})
	h.add(t, "new-2", aggregate.UserDeleted{}) // a tombstone
	h.add(t, "new-1", aggregate.UserProfileUpdated{Name: name("New One, renamed")})
	h.add(t, "old-2", aggregate.UserEmailChanged{Email: "old2b@example.com"})
	h.add(t, "new-2", aggregate.UserRestored{})

	batched, single := newModel(t), newModel(t)
	inBatches, oneByOne := &projection.Users{Model: batched}, &projection.Users{Model: single}
	for _, e := range h.events[:applied] {
		require.NoError(t, inBatches.Project(ctx, e))
		require.NoError(t, oneByOne.Project(ctx, e))
	}
	before := rows(t, batched)
	require.Equal(t, before, rows(t, single))

	for _, run := range []struct {
		name      string
		events    []eventstore.Event
		newCount  int64
		unchanged bool
	}{
		// old-1 and old-2 start fresh in it, and both rows are ahead of what their events make.
		{"a redelivery of applied events only", h.events[2:4], 0, true},
		// old-1, old-2 and old-3 start fresh at events applied already; new-0..2 are new users; old-0 is read.
		{"a redelivered tail and new events", h.events[2:], int64(len(h.events) - applied), false},
		{"the same run again", h.events[2:], 0, false},
	} {
		appliedBefore := inBatches.Applied()
		require.NoError(t, inBatches.ProjectBatch(ctx, run.events), run.name)
		for _, e := range run.events {
			require.NoError(t, oneByOne.Project(ctx, e), run.name)
		}
		assert.Equal(t, rows(t, single), rows(t, batched), "%s: the rows of the batch and of one event at a time", run.name)
		assert.Equal(t, run.newCount, inBatches.Applied()-appliedBefore, "%s: the events applied, repeats left out", run.name)
		assert.Equal(t, oneByOne.Applied(), inBatches.Applied(), run.name)
		assert.Equal(t, checkpoint(t, single, projection.UsersProjection), checkpoint(t, batched, projection.UsersProjection), run.name)
		if run.unchanged {
			assert.Equal(t, before, rows(t, batched), "%s: no row moves back", run.name)
		}
	}
	for id, version := range h.versions {
		assert.Equal(t, version, get(t, batched, id).Version, id)
	}
	assert.Equal(t, "old1b@example.com", get(t, batched, "old-1").Email)
	assert.Equal(t, "Old One", get(t, batched, "old-1").Name)

	// All of it as one batch into an empty model: every user fresh, none read.
	whole := newModel(t)
	all := &projection.Users{Model: whole}
	require.NoError(t, all.ProjectBatch(ctx, h.events))
	assert.Equal(t, rows(t, single), rows(t, whole))
	assert.Equal(t, int64(len(h.events)), all.Applied())
}

func testSaveCheckpoint(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	assert.Zero(t, checkpoint(t, m, "relay"), "an unknown checkpoint is 0")

	for _, step := range []struct{ save, want int64 }{{5, 5}, {3, 5}, {5, 5}, {0, 5}, {8, 8}} {
		require.NoError(t, m.SaveCheckpoint(ctx, "relay", step.save))
		assert.Equal(t, step.want, checkpoint(t, m, "relay"), "after saving %d", step.save)
	}
	assert.Zero(t, checkpoint(t, m, "other"), "checkpoints are kept by name")
	require.NoError(t, m.SaveCheckpoint(ctx, Name, 2))
	assert.Equal(t, int64(8), checkpoint(t, m, "relay"))
	assert.Equal(t, int64(2), checkpoint(t, m, Name))
}

func testRoundTrip(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	users := []aggregate.User{
		{
			ID: "auth0|5f7c8ec7c33c6c004bbafe82", Email: "O'Brien+tag@Exämple.com", EmailVerified: true,
			Name: "Siobhán \"Shiv\" O'Brien 🚀\nline two\\", Status: aggregate.StatusActive,
			Profile: map[string]any{
				"nested": map[string]any{"list": []any{1.5, "two", true, nil}, "empty": map[string]any{}},
				"quote":  `"'`, "big": 1e21, "tiny": 1e-9, "neg": -42.0, "unicode": "日本語",
			},
			Version: 1 << 40, Position: 1<<62 + 1,
			CreatedAt: time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
			UpdatedAt: time.Date(2262, 4, 11, 23, 47, 16, 1, time.UTC),
		},
		{ID: "tombstone", Status: aggregate.StatusDeleted, Version: 1, Position: 2}, // zero times, no profile
		{ID: "nanos", Email: "n@example.com", Status: aggregate.StatusActive, Version: 1, Position: 3,
			CreatedAt: time.Unix(0, 1).UTC(), UpdatedAt: time.Unix(1, 1).UTC()},
	}
	for _, u := range users {
		Put(t, m, u)
	}
	for _, u := range users {
		assert.Equal(t, u, get(t, m, u.ID), "%s round-trips through Update", u.ID)
	}
	require.NoError(t, m.Rebuild(ctx, Name, 3, users))
	for _, u := range users {
		assert.Equal(t, u, get(t, m, u.ID), "%s round-trips through Rebuild", u.ID)
	}
	listed, err := m.List(ctx, projection.ListFilter{Limit: 10})
	require.NoError(t, err)
	want := append([]aggregate.User(nil), users...)
	sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })
	assert.Equal(t, want, listed, "and through List")

	// A row written without a status reads back active.
	Put(t, m, aggregate.User{ID: "no-status", Version: 1, Position: 4})
	assert.Equal(t, aggregate.StatusActive, get(t, m, "no-status").Status)
}

func testGetUnknown(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	m := newModel(t)
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	_, err := m.Get(context.Background(), "nobody")
	assert.ErrorIs(t, err, userhook.ErrNotFound)
}

func testList(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	m := newModel(t)
	// Written out of id order: List orders by user id whatever the order of writes.
	for i, u := range []struct {
		id, email string
		status    aggregate.Status
	}{
		{"u07", "grace@example.com", aggregate.StatusActive},
		{"u02", "Alice@Example.COM", aggregate.StatusDeleted},
		{"u10", "judy@example.com", aggregate.StatusActive},
		{"u01", "alice@example.com", aggregate.StatusActive},
		{"u05", "ALICE@EXAMPLE.COM", aggregate.StatusActive},
		{"u04", "carol@example.com", aggregate.StatusDeleted},
		{"u03", "bob@example.com", aggregate.StatusActive},
		{"u09", "ivan@example.com", aggregate.StatusActive},
		{"u06", "alice@example.org", aggregate.StatusActive},
		{"u08", "heidi@example.com", aggregate.StatusActive},
	} {
		Put(t, m, User(u.id, u.email, u.status, 1, int64(i+1)))
	}

	for _, tc := range []struct {
		name   string
		filter projection.ListFilter
		want   []string
	}{
		{"all", projection.ListFilter{Limit: 100}, []string{"u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08", "u09", "u10"}},
		{"email in any case", projection.ListFilter{Email: "aLiCe@example.com", Limit: 100}, []string{"u01", "u02", "u05"}},
		{"status deleted", projection.ListFilter{Status: "deleted", Limit: 100}, []string{"u02", "u04"}},
		{"status active", projection.ListFilter{Status: "active", Limit: 100}, []string{"u01", "u03", "u05", "u06", "u07", "u08", "u09", "u10"}},
		{"unknown status", projection.ListFilter{Status: "Active", Limit: 100}, []string{}},
		{"email and status", projection.ListFilter{Email: "ALICE@example.com", Status: "active", Limit: 100}, []string{"u01", "u05"}},
		{"unknown email", projection.ListFilter{Email: "mallory@example.com", Limit: 100}, []string{}},
		{"email is matched whole", projection.ListFilter{Email: "alice@example", Limit: 100}, []string{}},
		{"limit", projection.ListFilter{Limit: 3}, []string{"u01", "u02", "u03"}},
		{"after", projection.ListFilter{After: "u08", Limit: 100}, []string{"u09", "u10"}},
		{"after a missing id", projection.ListFilter{After: "u055", Limit: 2}, []string{"u06", "u07"}},
		{"after the last", projection.ListFilter{After: "u10", Limit: 100}, []string{}},
		{"filtered page", projection.ListFilter{Email: "alice@example.com", After: "u01", Limit: 1}, []string{"u02"}},
		{"status page", projection.ListFilter{Status: "active", After: "u05", Limit: 2}, []string{"u06", "u07"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, list(t, m, tc.filter))
		})
	}

	t.Run("paging", func(t *testing.T) {
		var all []string
		pages := 0
		for f := (projection.ListFilter{Limit: 3}); ; pages++ {
			page := list(t, m, f)
			if len(page) == 0 {
				break
			}
			require.LessOrEqual(t, len(page), 3)
			all = append(all, page...)
			f.After = page[len(page)-1]
		}
		assert.Equal(t, 4, pages)
		assert.Equal(t, list(t, m, projection.ListFilter{Limit: 100}), all, "pages add up to the whole list, in order, without repeats")
	})
}

// A user deactivated at its provider lists under status inactive and no longer under active, through the
// projection's own way in (events applied by projection.Users); reactivated, it lists under active again.
func testListInactive(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	users := &projection.Users{Model: m}
	var h history
	project := func() {
		t.Helper()
		for _, e := range h.events {
			require.NoError(t, users.Project(ctx, e))
		}
	}
	byStatus := func(status aggregate.Status) []string {
		t.Helper()
		return list(t, m, projection.ListFilter{Status: string(status), Limit: 10})
	}
	h.add(t, "u1", aggregate.UserRegistered{Email: "one@example.com"})
	h.add(t, "u2", aggregate.UserRegistered{Email: "two@example.com"})
	h.add(t, "u3", aggregate.UserRegistered{Email: "three@example.com"})
	h.add(t, "u3", aggregate.UserDeleted{})
	h.add(t, "u1", aggregate.UserDeactivated{})
	project()
	assert.Equal(t, []string{"u1"}, byStatus(aggregate.StatusInactive))
	assert.Equal(t, []string{"u2"}, byStatus(aggregate.StatusActive), "an inactive user is not listed as active")
	assert.Equal(t, []string{"u3"}, byStatus(aggregate.StatusDeleted))
	assert.Equal(t, []string{"u1", "u2", "u3"}, list(t, m, projection.ListFilter{Limit: 10}), "nor left out of the whole list")
	u1 := get(t, m, "u1")
	assert.Equal(t, aggregate.StatusInactive, u1.Status)
	assert.Equal(t, "one@example.com", u1.Email, "an inactive user keeps its attributes")
	assert.Equal(t, []string{"u1"}, list(t, m, projection.ListFilter{Email: "ONE@example.com", Status: "inactive", Limit: 10}))

	one := "One"
	h.add(t, "u1", aggregate.UserProfileUpdated{Name: &one})
	project()
	assert.Equal(t, aggregate.StatusInactive, get(t, m, "u1").Status, "a change leaves the user inactive")

	h.add(t, "u1", aggregate.UserReactivated{})
	project()
	assert.Empty(t, byStatus(aggregate.StatusInactive))
	assert.Equal(t, []string{"u1", "u2"}, byStatus(aggregate.StatusActive), "reactivated, listed as active again")
	assert.Equal(t, "One", get(t, m, "u1").Name)

	// Through Rebuild, as a replay writes rows.
	inactive := User("u4", "four@example.com", aggregate.StatusInactive, 2, 20)
	require.NoError(t, m.Rebuild(ctx, Name, 20, []aggregate.User{inactive, User("u5", "five@example.com", aggregate.StatusActive, 1, 19)}))
	assert.Equal(t, inactive, get(t, m, "u4"), "the inactive status round-trips")
	assert.Equal(t, []string{"u4"}, byStatus(aggregate.StatusInactive))
	assert.Equal(t, []string{"u5"}, byStatus(aggregate.StatusActive))
}

// Command validation accepts internationalised addresses (RFC 6532), and GET /users?email= is documented as
// case-insensitive.
func testListEmailUnicode(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	m := newModel(t)
	Put(t, m, User("u1", "élodie@example.com", aggregate.StatusActive, 1, 1))
	Put(t, m, User("u2", "ÉLODIE@EXAMPLE.COM", aggregate.StatusActive, 1, 2))
	Put(t, m, User("u3", "elodie@example.com", aggregate.StatusActive, 1, 3))
	assert.Equal(t, []string{"u1", "u2"}, list(t, m, projection.ListFilter{Email: "ÉLODIE@EXAMPLE.COM", Limit: 10}))
	assert.Equal(t, []string{"u1", "u2"}, list(t, m, projection.ListFilter{Email: "élodie@example.com", Limit: 10}))
	assert.Equal(t, []string{"u3"}, list(t, m, projection.ListFilter{Email: "ELODIE@example.com", Limit: 10}),
		"an accent is not folded away")
}

// User ids come in byte order (Go's string order), whatever the database's collation: a page's After is a
// user id, and the next page must start exactly after it.
func testListOrder(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	m := newModel(t)
	all := []string{"b", "Z", "a", "_x", "-y", "A", "é", "日本", "10", "9", "a b", "ab", "aB", "z"}
	for i, id := range all {
		Put(t, m, User(id, id+"@example.com", aggregate.StatusActive, 1, int64(i+1)))
	}
	want := append([]string(nil), all...)
	sort.Strings(want)
	assert.Equal(t, want, list(t, m, projection.ListFilter{Limit: 100}))

	var paged []string
	for f := (projection.ListFilter{Limit: 4}); ; {
		page := list(t, m, f)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		f.After = page[len(page)-1]
	}
	assert.Equal(t, want, paged)

	got := rows(t, m)
	require.Len(t, got, len(want))
	for i, id := range want {
		assert.Contains(t, got[i], id, "Rows is in user id order too")
	}
}

func testRebuild(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	Put(t, m, User("u2", "b@example.com", aggregate.StatusActive, 1, 2))
	Put(t, m, User("u3", "c@example.com", aggregate.StatusActive, 3, 4))
	require.NoError(t, m.SaveCheckpoint(ctx, "relay", 10))
	require.NoError(t, m.SaveCheckpoint(ctx, Name, 9))

	u2 := User("u2", "new@example.com", aggregate.StatusDeleted, 2, 3)
	u4 := User("u4", "d@example.com", aggregate.StatusActive, 1, 4)
	require.NoError(t, m.Rebuild(ctx, Name, 4, []aggregate.User{u4, u2}))

	assert.Len(t, rows(t, m), 2)
	for _, id := range []string{"u1", "u3"} {
		_, err := m.Get(ctx, id)
		assert.ErrorIs(t, err, userhook.ErrNotFound, "%s is not in the new set", id)
	}
	assert.Equal(t, u2, get(t, m, "u2"))
	assert.Equal(t, u4, get(t, m, "u4"))
	assert.Equal(t, []string{"u2", "u4"}, list(t, m, projection.ListFilter{Limit: 10}))
	assert.Equal(t, []string{"u2"}, list(t, m, projection.ListFilter{Status: "deleted", Limit: 10}))
	assert.Equal(t, int64(4), checkpoint(t, m, Name), "the checkpoint is set exactly, even backwards")
	assert.Equal(t, int64(10), checkpoint(t, m, "relay"), "other checkpoints are left alone")

	// The rebuilt table is a full users table: upserts, lookups by email, a second rebuild.
	Put(t, m, User("u4", "D2@example.com", aggregate.StatusActive, 2, 5))
	assert.Len(t, rows(t, m), 2, "an update of a rebuilt row replaces it")
	assert.Equal(t, []string{"u4"}, list(t, m, projection.ListFilter{Email: "d2@EXAMPLE.com", Limit: 10}))
	assert.Empty(t, list(t, m, projection.ListFilter{Email: "d@example.com", Limit: 10}), "the old email no longer matches")
	require.NoError(t, m.Rebuild(ctx, Name, 5, []aggregate.User{User("u9", "z@example.com", aggregate.StatusActive, 1, 1)}))
	assert.Len(t, rows(t, m), 1)
	assert.Equal(t, int64(5), checkpoint(t, m, Name))

	require.NoError(t, m.Rebuild(ctx, "new-projection", 3, nil))
	assert.Empty(t, rows(t, m), "a rebuild from nothing empties the table")
	assert.Equal(t, int64(3), checkpoint(t, m, "new-projection"), "and creates the checkpoint")
	assert.Equal(t, int64(5), checkpoint(t, m, Name))
}

func testRebuildAtomic(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 1, 6))
	want := rows(t, m)

	dup := User("u2", "b@example.com", aggregate.StatusActive, 1, 2)
	err := m.Rebuild(ctx, Name, 2, []aggregate.User{User("u3", "c@example.com", aggregate.StatusActive, 1, 1), dup, dup})
	require.Error(t, err, "two rows with one id")

	assert.Equal(t, want, rows(t, m), "a failed rebuild leaves the old rows")
	assert.Equal(t, int64(6), checkpoint(t, m, Name), "and the old checkpoint")

	bad := User("u4", "d@example.com", aggregate.StatusActive, 1, 3)
	bad.Profile = map[string]any{"score": math.Inf(1)} // JSON has no infinity
	err = m.Rebuild(ctx, Name, 3, []aggregate.User{User("u3", "c@example.com", aggregate.StatusActive, 1, 1), bad})
	require.Error(t, err, "a profile that cannot be encoded")
	assert.Equal(t, want, rows(t, m))
	assert.Equal(t, int64(6), checkpoint(t, m, Name))
	Put(t, m, User("u1", "a@example.com", aggregate.StatusActive, 2, 7))
	assert.Equal(t, int64(2), get(t, m, "u1").Version, "and a working table")
}

// Readers never see a half-built table: each read shows one whole generation of rows.
func testRebuildInvisible(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	const size = 60
	generation := func(prefix string) []aggregate.User {
		out := make([]aggregate.User, size)
		for i := range out {
			out[i] = User(fmt.Sprintf("%s%03d", prefix, i), prefix+"@example.com", aggregate.StatusActive, 1, int64(i+1))
		}
		return out
	}
	a, b := generation("a"), generation("b")
	require.NoError(t, m.Rebuild(ctx, Name, size, a))

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 0; i < 10; i++ {
			gen := b
			if i%2 == 1 {
				gen = a
			}
			if !assert.NoError(t, m.Rebuild(ctx, Name, size, gen)) {
				return
			}
		}
	}()
	reads := 0
	for stop := false; !stop; reads++ {
		select {
		case <-done:
			stop = true // one more read after the last rebuild
		default:
		}
		got, err := m.Rows(ctx)
		require.NoError(t, err)
		require.Len(t, got, size, "read %d sees a whole generation", reads)
		users, err := m.List(ctx, projection.ListFilter{Limit: 2 * size})
		require.NoError(t, err)
		require.Len(t, users, size, "read %d sees a whole generation", reads)
		for _, u := range users {
			require.Equal(t, users[0].ID[:1], u.ID[:1], "read %d mixes generations", reads)
		}
	}
	wg.Wait()
	assert.Equal(t, generation("a"), func() []aggregate.User {
		users, err := m.List(ctx, projection.ListFilter{Limit: 2 * size})
		require.NoError(t, err)
		return users
	}(), "the last rebuild wins")
}

func testRowsIdentical(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	users := []aggregate.User{
		User("u1", "a@example.com", aggregate.StatusActive, 1, 1),
		User("u2", "o'brien@example.com", aggregate.StatusDeleted, 2, 3),
		{ID: "u3", Status: aggregate.StatusDeleted, Version: 1, Position: 4, UpdatedAt: Epoch}, // a tombstone
	}
	// The same profile built in another key order, and an empty one, which is stored like none.
	users[0].Profile = map[string]any{"z": 1.0, "a": map[string]any{"y": "2", "b": []any{"x"}}}
	reordered := users[0].Clone()
	reordered.Profile = map[string]any{"a": map[string]any{"b": []any{"x"}, "y": "2"}, "z": 1.0}
	emptied := users[2]
	emptied.Profile = map[string]any{}

	// One model written row by row in reverse, with a detour through other values, one rebuilt in one go.
	a := newModel(t)
	Put(t, a, User("u2", "first@example.com", aggregate.StatusActive, 1, 2))
	Put(t, a, emptied)
	Put(t, a, users[1])
	Put(t, a, reordered)
	b := newModel(t)
	require.NoError(t, b.Rebuild(ctx, Name, 4, users))

	ra := rows(t, a)
	require.Len(t, ra, 3)
	assert.Equal(t, ra, rows(t, b))
	assert.Equal(t, ra, rows(t, a), "Rows is stable")

	for _, change := range []struct {
		name string
		fn   func(u *aggregate.User)
	}{
		{"email_verified", func(u *aggregate.User) { u.EmailVerified = !u.EmailVerified }},
		{"email", func(u *aggregate.User) { u.Email = "O'Brien@example.com" }},
		{"name", func(u *aggregate.User) { u.Name += " " }},
		{"status", func(u *aggregate.User) { u.Status = aggregate.StatusActive }},
		{"profile", func(u *aggregate.User) { u.Profile = map[string]any{"plan": "free"} }},
		{"created_at", func(u *aggregate.User) { u.CreatedAt = u.CreatedAt.Add(time.Nanosecond) }},
		{"updated_at", func(u *aggregate.User) { u.UpdatedAt = u.UpdatedAt.Add(-time.Nanosecond) }},
		{"version", func(u *aggregate.User) { u.Version++ }},
		{"position", func(u *aggregate.User) { u.Position++ }},
	} {
		// Through Rebuild: Update writes a row only at a higher version than the stored one.
		changed := slices.Clone(users)
		changed[1] = users[1].Clone()
		change.fn(&changed[1])
		require.NoError(t, b.Rebuild(ctx, Name, 4, changed))
		rb := rows(t, b)
		assert.NotEqual(t, ra[1], rb[1], "a changed %s shows in the row", change.name)
		assert.Equal(t, ra[0], rb[0])
		assert.Equal(t, ra[2], rb[2])
		require.NoError(t, b.Rebuild(ctx, Name, 4, users))
		assert.Equal(t, ra, rows(t, b), "and changing it back restores the row")
	}
}

func testConcurrentBatches(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	const workers, batches, perBatch = 8, 10, 5
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				position := int64(1 + (w*batches+b)*perBatch)
				batch := make([]string, perBatch)
				for i := range batch {
					batch[i] = fmt.Sprintf("w%d-u%03d", w, b*perBatch+i)
				}
				_, err := m.Batch(ctx, Name, position, projection.BatchUsers{Fresh: batch}, func(rows map[string]*aggregate.User) ([]string, error) {
					for i, id := range batch {
						*rows[id] = User(id, id+"@example.com", aggregate.StatusActive, 1, position+int64(i))
					}
					return batch, nil
				})
				if !assert.NoError(t, err, "worker %d batch %d", w, b) {
					return
				}
			}
		}(w)
	}
	wg.Wait()

	got := rows(t, m)
	assert.Len(t, got, workers*batches*perBatch, "every row of every batch landed")
	for w := 0; w < workers; w++ {
		for i := 0; i < batches*perBatch; i++ {
			id := fmt.Sprintf("w%d-u%03d", w, i)
			u, err := m.Get(ctx, id)
			if assert.NoError(t, err, id) {
				assert.Equal(t, id+"@example.com", u.Email)
			}
		}
	}
	assert.Equal(t, int64(1+(workers*batches-1)*perBatch), checkpoint(t, m, Name), "the checkpoint is the highest position")
}

// Two instances may handle events of one user at once (the second is redelivered after ErrGap, or fills
// the gap from the store). Update reads and writes the row as one step even while the user has no row yet,
// so no write is lost.
func testConcurrentOneUser(t *testing.T, newModel func(t *testing.T) projection.ReadModel) {
	ctx := context.Background()
	m := newModel(t)
	const workers, rounds = 8, 10
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				_, err := m.Batch(ctx, Name, 1, projection.BatchUsers{Read: []string{"other", "contended"}}, func(rows map[string]*aggregate.User) ([]string, error) {
					u := rows["contended"]
					u.Status = aggregate.StatusActive
					u.Version++
					u.Position = u.Version
					return []string{"contended"}, nil
				})
				if !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(workers*rounds), get(t, m, "contended").Version, "every increment is kept")
}
