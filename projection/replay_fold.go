package projection

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
)

// folding is the users a replay has folded so far, each held once.
//
// It folds what aggregate.User.ApplyStored folds, for less: a payload is read by decodeFast (the JSON
// json.Marshal writes, without reflection, allocating only the strings the user keeps), and a profile is
// kept as the JSON it came in until the replay ends, when only each user's last one is decoded, as
// aggregate.Decode decodes it. A payload decodeFast does not take is decoded by aggregate.Decode itself.
// foldedUser.apply must change a user as aggregate.User.Apply does: TestReplayMatchesApplyingEachEvent and
// TestDecodeFastAgreesWithDecode hold them together.
type folding struct {
	index  map[string]int
	chunks [][]foldedUser // users in the order first seen, foldChunk at a time so that growing copies nothing
	n      int
	last   *foldedUser // the previous event's user: a user's events usually come together
}

const foldChunk = 1024

// foldedUser is a user being folded. Its Profile is nil while raw holds the profile last set.
type foldedUser struct {
	aggregate.User
	raw []byte // the stored JSON object of the profile last set by a payload decodeFast read
}

func newFolding() *folding { return &folding{index: map[string]int{}} }

// user returns the user of stream id, a zero one the first time.
func (f *folding) user(id string) *foldedUser {
	if f.last != nil && f.last.ID == id {
		return f.last
	}
	i, ok := f.index[id]
	if !ok {
		i = f.n
		if i%foldChunk == 0 {
			f.chunks = append(f.chunks, make([]foldedUser, 0, foldChunk))
		}
		c := &f.chunks[i/foldChunk]
		*c = append(*c, foldedUser{User: aggregate.User{ID: id}})
		f.index[id] = i
		f.n++
	}
	f.last = &f.chunks[i/foldChunk][i%foldChunk]
	return f.last
}

// fold applies one stored event to its user; other streams' events are passed over.
func (f *folding) fold(e *eventstore.Event) error {
	if e.StreamType != aggregate.StreamType {
		return nil
	}
	u := f.user(e.StreamID)
	if e.Version != u.Version+1 {
		return fmt.Errorf("%w: %s at version %d, event %s has %d", ErrGap, e.StreamID, u.Version, e.ID, e.Version)
	}
	if !fastFolded[e.Type] {
		// A type the fast fold does not know is folded by the aggregate itself, on the decoded profile.
		if u.raw != nil {
			var dec profileDecoder
			profile, err := dec.profile(u.raw)
			if err != nil {
				return fmt.Errorf("projection: replay: profile of %s at version %d: %w", u.ID, u.Version, err)
			}
			u.raw, u.Profile = nil, profile
		}
		return u.ApplyStored(*e)
	}
	var p payload
	if !decodeFast(e.Type, e.Data, &p) {
		if err := p.decode(*e); err != nil {
			return err
		}
	}
	u.apply(e.Type, &p, e.OccurredAt)
	u.Version = e.Version
	u.Position = e.Position
	return nil
}

// fastFolded are the types apply folds; any other is folded by aggregate.User.ApplyStored.
var fastFolded = map[string]bool{
	aggregate.TypeUserRegistered: true, aggregate.TypeUserEmailChanged: true, aggregate.TypeUserProfileUpdated: true,
	aggregate.TypeUserEmailVerified: true, aggregate.TypeUserDeleted: true, aggregate.TypeUserRestored: true,
	aggregate.TypeUserDeactivated: true, aggregate.TypeUserReactivated: true,
}

// apply is aggregate.User.Apply for a payload of one of the fastFolded types.
func (u *foldedUser) apply(typ string, p *payload, occurredAt time.Time) {
	switch typ {
	case aggregate.TypeUserRegistered:
		u.Email = p.email
		u.EmailVerified = p.verified
		u.Name = p.name
		u.setProfile(p)
		u.Status = aggregate.StatusActive
		u.CreatedAt = occurredAt
	case aggregate.TypeUserEmailChanged:
		u.Email = p.email
		u.EmailVerified = false
	case aggregate.TypeUserProfileUpdated:
		if p.hasName {
			u.Name = p.name
		}
		if p.raw != nil || p.profile != nil {
			u.setProfile(p)
		}
	case aggregate.TypeUserEmailVerified:
		u.EmailVerified = true
	case aggregate.TypeUserDeleted:
		u.Status = aggregate.StatusDeleted
	case aggregate.TypeUserRestored:
		u.Status = aggregate.StatusActive
		if u.CreatedAt.IsZero() {
			u.CreatedAt = occurredAt
		}
	case aggregate.TypeUserDeactivated:
		u.Status = aggregate.StatusInactive
	case aggregate.TypeUserReactivated:
		u.Status = aggregate.StatusActive
	}
	if occurredAt.After(u.UpdatedAt) {
		u.UpdatedAt = occurredAt
	}
}

func (u *foldedUser) setProfile(p *payload) {
	u.raw, u.Profile = p.raw, p.profile
}

// rows returns every user in user id order, each with its profile decoded, and empties f: each chunk of
// folded users is let go as soon as it is copied out.
func (f *folding) rows() ([]aggregate.User, error) {
	at := func(i int) *foldedUser { return &f.chunks[i/foldChunk][i%foldChunk] }
	order := make([]int, f.n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(at(a).ID, at(b).ID) })
	rank := make([]int, f.n) // where each user goes
	for k, i := range order {
		rank[i] = k
	}
	f.index, f.last = nil, nil
	rows := make([]aggregate.User, f.n)
	// Decoding the profiles is most of this; it runs on every CPU, a range of chunks each.
	workers := min(runtime.GOMAXPROCS(0), len(f.chunks))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var dec profileDecoder
			for c := len(f.chunks) * w / workers; c < len(f.chunks)*(w+1)/workers; c++ {
				for j := range f.chunks[c] {
					u := &f.chunks[c][j]
					row := &rows[rank[c*foldChunk+j]]
					*row = u.User
					if u.raw != nil {
						var err error
						if row.Profile, err = dec.profile(u.raw); err != nil {
							errs[w] = fmt.Errorf("projection: replay: profile of %s at version %d: %w", u.ID, u.Version, err)
							return
						}
					}
				}
				f.chunks[c] = nil
			}
		})
	}
	wg.Wait()
	f.chunks, f.n = nil, 0
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// payload is what a fold reads of an event's data: the fields of the domain event of the event's type.
type payload struct {
	email, name string
	hasName     bool // UserProfileUpdated's name is set (it is a *string there)
	verified    bool
	raw         []byte         // the profile's stored JSON object (decodeFast); nil when absent or null
	profile     map[string]any // the profile aggregate.Decode decoded (decode)
}

// decode reads e's payload with aggregate.Decode: every payload decodeFast does not take.
func (p *payload) decode(e eventstore.Event) error {
	de, err := aggregate.Decode(e)
	if err != nil {
		return err
	}
	*p = payload{}
	switch v := de.(type) {
	case aggregate.UserRegistered:
		p.email, p.verified, p.name, p.profile = v.Email, v.EmailVerified, v.Name, v.Profile
	case aggregate.UserEmailChanged:
		p.email = v.Email
	case aggregate.UserProfileUpdated:
		if v.Name != nil {
			p.hasName, p.name = true, *v.Name
		}
		p.profile = v.Profile
	}
	return nil
}
