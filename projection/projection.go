// Package projection is userhook's read side: the users projection (which a stream.Pipeline runs), the users
// read model and its queries, the position tracker behind read-your-writes, and replay, which rebuilds the
// read model from the store.
//
// Each projection writes its row change and its own checkpoint in one transaction and skips an event whose
// version the row already has, so a crash anywhere repeats work and never loses it.
package projection

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/stream"
)

// UsersProjection is the name of the users projection: its Watermill handler name and its checkpoint.
// Never rename it: a new name starts from position 0.
const UsersProjection = "users-projection"

// ErrGap is returned when an event's version is more than one past the row's: an earlier event has not been
// applied yet, so the message fails and is redelivered.
var ErrGap = errors.New("projection: gap in the user's stream")

// ListFilter selects users for GET /users.
type ListFilter struct {
	Email  string
	Status string
	// After is the user id the previous page ended at; users come in user id order.
	After string
	Limit int
}

// ReadModel is the users table and the checkpoints of the projections that write it.
type ReadModel interface {
	stream.Checkpoints
	// Update runs fn on the current row of userID (a zero User with that ID when there is none) in one
	// transaction; when fn reports a change the row is written if that raises its version (see Batch), and in
	// any case the checkpoint of name advances to position.
	Update(ctx context.Context, name string, position int64, userID string, fn func(u *aggregate.User) (bool, error)) error
	// Batch is Update for many users in one transaction: fn gets a row for each of users.Read (the stored
	// one, or a zero User with that ID) and users.Fresh (always a zero User with that ID: the stored row is
	// not read) and returns the ids of the rows it changed. A changed row is written only when its version
	// is higher than the stored row's, so a write never moves a row back (only Rebuild does); a fresh row
	// that meets a stored row at or beyond its version leaves that row as it was.
	//
	// Batch returns the fresh users that turned out to have a row already, each with the version that row
	// had before the batch, so the caller can tell which of its changes were repeats.
	Batch(ctx context.Context, name string, position int64, users BatchUsers, fn func(rows map[string]*aggregate.User) ([]string, error)) (map[string]int64, error)
	// Get returns one user; an error matching userhook.ErrNotFound when there is none.
	Get(ctx context.Context, userID string) (aggregate.User, error)
	// List returns a page of users in user id order.
	List(ctx context.Context, f ListFilter) ([]aggregate.User, error)
	// Rebuild replaces every row with users and sets the checkpoint of name to position, in one
	// transaction.
	Rebuild(ctx context.Context, name string, position int64, users []aggregate.User) error
	// Rows returns every row in a canonical text form, in user id order, to compare read models.
	Rows(ctx context.Context) ([]string, error)
}

// BatchUsers are the users of a Batch. An id may appear more than once; an id in both lists is read.
type BatchUsers struct {
	// Read are the users whose stored rows fn builds on.
	Read []string
	// Fresh are the users fn builds from nothing, because the batch holds the first event of each: their
	// rows after the batch owe nothing to what is stored, so Batch does not read them. It still serialises
	// them with other batches, as it does Read.
	Fresh []string
}

// EmailKey is the form a user's email is filtered by in every read model: lower case, Unicode-aware, computed
// in Go so that neither SQLite's ASCII-only NOCASE nor a database's locale plays a part.
func EmailKey(email string) string { return strings.ToLower(email) }

// Summary is what a replay did.
type Summary struct {
	Events   int64
	Users    int
	Position int64
	Elapsed  time.Duration
}

// Rate is events per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Events) / s.Elapsed.Seconds()
}
