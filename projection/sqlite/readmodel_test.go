package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/projection"
	projsqlite "github.com/userhook/userhook/projection/sqlite"
)

const name = "test-projection"

var epoch = time.Date(2024, 6, 1, 9, 0, 0, 123456789, time.UTC)

func newModel(t *testing.T) (*projsqlite.ReadModel, *sqlitedb.DB) {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "readmodel.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	m, err := projsqlite.New(context.Background(), db)
	require.NoError(t, err)
	return m, db
}

// user is a row as the projection would write it, at version and position.
func user(id, email string, status aggregate.Status, version, position int64) aggregate.User {
	return aggregate.User{
		ID: id, Email: email, EmailVerified: version%2 == 0, Name: "Name of " + id, Status: status,
		Profile: map[string]any{"plan": "pro", "seats": float64(version)},
		Version: version, Position: position,
		CreatedAt: epoch, UpdatedAt: epoch.Add(time.Duration(position) * time.Second),
	}
}

// put writes u through Update, the projection's only way in.
func put(t *testing.T, m *projsqlite.ReadModel, u aggregate.User) {
	t.Helper()
	require.NoError(t, m.Update(context.Background(), name, u.Position, u.ID, func(cur *aggregate.User) (bool, error) {
		*cur = u.Clone()
		return true, nil
	}))
}

func get(t *testing.T, m *projsqlite.ReadModel, id string) aggregate.User {
	t.Helper()
	u, err := m.Get(context.Background(), id)
	require.NoError(t, err)
	return u
}

func rows(t *testing.T, m *projsqlite.ReadModel) []string {
	t.Helper()
	out, err := m.Rows(context.Background())
	require.NoError(t, err)
	return out
}

func checkpoint(t *testing.T, m *projsqlite.ReadModel, n string) int64 {
	t.Helper()
	pos, err := m.Checkpoint(context.Background(), n)
	require.NoError(t, err)
	return pos
}

func ids(users []aggregate.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

func TestUpdateCreatesAndUpdatesRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newModel(t)

	var seen aggregate.User
	require.NoError(t, m.Update(ctx, name, 1, "u1", func(u *aggregate.User) (bool, error) {
		seen = u.Clone()
		*u = user("u1", "a@example.com", aggregate.StatusActive, 1, 1)
		return true, nil
	}))
	assert.Equal(t, aggregate.User{ID: "u1"}, seen, "an unknown user starts as a zero user with its id")
	assert.Equal(t, user("u1", "a@example.com", aggregate.StatusActive, 1, 1), get(t, m, "u1"), "every field round-trips")
	assert.Equal(t, int64(1), checkpoint(t, m, name))

	require.NoError(t, m.Update(ctx, name, 4, "u1", func(u *aggregate.User) (bool, error) {
		seen = u.Clone()
		u.Email, u.Status, u.Profile, u.Version, u.Position = "b@example.com", aggregate.StatusDeleted, nil, 2, 4
		return true, nil
	}))
	assert.Equal(t, user("u1", "a@example.com", aggregate.StatusActive, 1, 1), seen, "fn is given the stored row")
	got := get(t, m, "u1")
	assert.Equal(t, "b@example.com", got.Email)
	assert.Equal(t, aggregate.StatusDeleted, got.Status)
	assert.Nil(t, got.Profile)
	assert.Equal(t, int64(2), got.Version)
	assert.Equal(t, int64(4), got.Position)
	assert.Equal(t, int64(4), checkpoint(t, m, name))
	assert.Len(t, rows(t, m), 1, "an update replaces the row")
}

func TestUpdateWithoutChangeAdvancesOnlyTheCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newModel(t)
	put(t, m, user("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	want := rows(t, m)

	require.NoError(t, m.Update(ctx, name, 9, "u1", func(u *aggregate.User) (bool, error) {
		u.Email = "ignored@example.com" // not reported as a change, so not written
		return false, nil
	}))
	require.NoError(t, m.Update(ctx, name, 10, "u2", func(u *aggregate.User) (bool, error) { return false, nil }))

	assert.Equal(t, want, rows(t, m))
	assert.Equal(t, int64(10), checkpoint(t, m, name))
}

func TestUpdateErrorChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newModel(t)
	put(t, m, user("u1", "a@example.com", aggregate.StatusActive, 1, 3))
	want := rows(t, m)
	boom := errors.New("boom")

	for _, id := range []string{"u1", "u2"} {
		err := m.Update(ctx, name, 8, id, func(u *aggregate.User) (bool, error) {
			*u = user(id, "x@example.com", aggregate.StatusDeleted, 2, 8)
			return true, boom
		})
		require.ErrorIs(t, err, boom, "fn's error is returned")
	}

	assert.Equal(t, want, rows(t, m), "neither row written")
	assert.Equal(t, int64(3), checkpoint(t, m, name), "nor the checkpoint advanced")
	_, err := m.Get(ctx, "u2")
	assert.ErrorIs(t, err, userhook.ErrNotFound)
}

func TestUpdateNeverMovesTheCheckpointBack(t *testing.T) {
	t.Parallel()
	m, _ := newModel(t)
	put(t, m, user("u1", "a@example.com", aggregate.StatusActive, 2, 7))
	put(t, m, user("u2", "b@example.com", aggregate.StatusActive, 1, 5))
	assert.Equal(t, int64(7), checkpoint(t, m, name))
}

func TestSaveCheckpointNeverMovesBackwards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newModel(t)
	assert.Zero(t, checkpoint(t, m, "relay"), "an unknown checkpoint is 0")

	for _, step := range []struct{ save, want int64 }{{5, 5}, {3, 5}, {5, 5}, {0, 5}, {8, 8}} {
		require.NoError(t, m.SaveCheckpoint(ctx, "relay", step.save))
		assert.Equal(t, step.want, checkpoint(t, m, "relay"), "after saving %d", step.save)
	}
	assert.Zero(t, checkpoint(t, m, "other"), "checkpoints are kept by name")
}

func TestGetUnknownUser(t *testing.T) {
	t.Parallel()
	m, _ := newModel(t)
	put(t, m, user("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	_, err := m.Get(context.Background(), "nobody")
	assert.ErrorIs(t, err, userhook.ErrNotFound)
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newModel(t)
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
		put(t, m, user(u.id, u.email, u.status, 1, int64(i+1)))
	}
	list := func(f projection.ListFilter) []string {
		t.Helper()
		users, err := m.List(ctx, f)
		require.NoError(t, err)
		return ids(users)
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
		{"email and status", projection.ListFilter{Email: "ALICE@example.com", Status: "active", Limit: 100}, []string{"u01", "u05"}},
		{"unknown email", projection.ListFilter{Email: "mallory@example.com", Limit: 100}, []string{}},
		{"limit", projection.ListFilter{Limit: 3}, []string{"u01", "u02", "u03"}},
		{"after", projection.ListFilter{After: "u08", Limit: 100}, []string{"u09", "u10"}},
		{"after a missing id", projection.ListFilter{After: "u055", Limit: 2}, []string{"u06", "u07"}},
		{"after the last", projection.ListFilter{After: "u10", Limit: 100}, []string{}},
		{"filtered page", projection.ListFilter{Email: "alice@example.com", After: "u01", Limit: 1}, []string{"u02"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, list(tc.filter))
		})
	}

	t.Run("paging", func(t *testing.T) {
		var all []string
		pages := 0
		for f := (projection.ListFilter{Limit: 3}); ; pages++ {
			page := list(f)
			if len(page) == 0 {
				break
			}
			require.LessOrEqual(t, len(page), 3)
			all = append(all, page...)
			f.After = page[len(page)-1]
		}
		assert.Equal(t, 4, pages)
		assert.Equal(t, list(projection.ListFilter{Limit: 100}), all, "pages add up to the whole list, in order, without repeats")
	})
}

func indexNames(t *testing.T, db *sqlitedb.DB) []string {
	t.Helper()
	q, err := db.Read.QueryContext(context.Background(), `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users' ORDER BY name`)
	require.NoError(t, err)
	defer q.Close()
	var out []string
	for q.Next() {
		var n string
		require.NoError(t, q.Scan(&n))
		out = append(out, n)
	}
	require.NoError(t, q.Err())
	return out
}

func TestRebuildReplacesEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, db := newModel(t)
	put(t, m, user("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	put(t, m, user("u2", "b@example.com", aggregate.StatusActive, 1, 2))
	put(t, m, user("u3", "c@example.com", aggregate.StatusActive, 3, 4))
	require.NoError(t, m.SaveCheckpoint(ctx, "relay", 10))
	require.NoError(t, m.SaveCheckpoint(ctx, name, 9))
	indexes := indexNames(t, db)
	require.NotEmpty(t, indexes)

	u2 := user("u2", "new@example.com", aggregate.StatusDeleted, 2, 3)
	u4 := user("u4", "d@example.com", aggregate.StatusActive, 1, 4)
	require.NoError(t, m.Rebuild(ctx, name, 4, []aggregate.User{u2, u4}))

	assert.Len(t, rows(t, m), 2)
	for _, id := range []string{"u1", "u3"} {
		_, err := m.Get(ctx, id)
		assert.ErrorIs(t, err, userhook.ErrNotFound, "%s is not in the new set", id)
	}
	assert.Equal(t, u2, get(t, m, "u2"))
	assert.Equal(t, u4, get(t, m, "u4"))
	assert.Equal(t, int64(4), checkpoint(t, m, name), "the checkpoint is set exactly, even backwards")
	assert.Equal(t, int64(10), checkpoint(t, m, "relay"), "other checkpoints are left alone")
	assert.Equal(t, indexes, indexNames(t, db), "the indexes come back with the table")

	// The rebuilt table is a full users table: upserts, lookups by email, a second rebuild.
	put(t, m, user("u4", "d2@example.com", aggregate.StatusActive, 2, 5))
	assert.Len(t, rows(t, m), 2, "an update of a rebuilt row replaces it")
	found, err := m.List(ctx, projection.ListFilter{Email: "D2@example.com", Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{"u4"}, ids(found))
	require.NoError(t, m.Rebuild(ctx, name, 5, []aggregate.User{user("u9", "z@example.com", aggregate.StatusActive, 1, 1)}))
	assert.Len(t, rows(t, m), 1)
	assert.Equal(t, int64(5), checkpoint(t, m, name))
	assert.Equal(t, indexes, indexNames(t, db))

	require.NoError(t, m.Rebuild(ctx, name, 5, nil))
	assert.Empty(t, rows(t, m))
	assert.Equal(t, int64(5), checkpoint(t, m, name))
}

func TestRebuildIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newModel(t)
	put(t, m, user("u1", "a@example.com", aggregate.StatusActive, 1, 6))
	want := rows(t, m)

	dup := user("u2", "b@example.com", aggregate.StatusActive, 1, 2)
	err := m.Rebuild(ctx, name, 2, []aggregate.User{dup, dup})
	require.Error(t, err, "two rows with one id")

	assert.Equal(t, want, rows(t, m), "a failed rebuild leaves the old rows")
	assert.Equal(t, int64(6), checkpoint(t, m, name), "and the old checkpoint")
}

func TestRowsIdenticalForIdenticalContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	users := []aggregate.User{
		user("u1", "a@example.com", aggregate.StatusActive, 1, 1),
		user("u2", "o'brien@example.com", aggregate.StatusDeleted, 2, 3),
		{ID: "u3", Status: aggregate.StatusDeleted, Version: 1, Position: 4, UpdatedAt: epoch}, // a tombstone
	}

	// One model written row by row in reverse, one rebuilt in one go.
	a, _ := newModel(t)
	for i := len(users) - 1; i >= 0; i-- {
		put(t, a, users[i])
	}
	b, _ := newModel(t)
	require.NoError(t, b.Rebuild(ctx, name, 4, users))

	ra := rows(t, a)
	require.Len(t, ra, 3)
	assert.Equal(t, ra, rows(t, b))
	assert.Equal(t, ra, rows(t, a), "Rows is stable")

	changed := users[1]
	changed.EmailVerified = !changed.EmailVerified
	put(t, b, changed)
	rb := rows(t, b)
	assert.NotEqual(t, ra[1], rb[1], "a changed field shows in the row")
	assert.Equal(t, ra[0], rb[0])
	assert.Equal(t, ra[2], rb[2])
}

// Command validation accepts internationalised addresses (RFC 6532), and GET /users?email= is documented as
// case-insensitive.
func TestListEmailIgnoresCaseBeyondASCII(t *testing.T) {
	t.Parallel()
	m, _ := newModel(t)
	put(t, m, user("u1", "élodie@example.com", aggregate.StatusActive, 1, 1))
	users, err := m.List(context.Background(), projection.ListFilter{Email: "ÉLODIE@EXAMPLE.COM", Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{"u1"}, ids(users))
}
