package aggregate

import (
	"maps"
	"sync"
	"time"
)

// recentIDs is how many of a user's latest event ids a cached state remembers, to recognise a copy of a
// provider event that another request stored a moment ago.
const recentIDs = 16

// stateCache keeps the state of recently used users in memory so that deciding needs no read of the store.
// It is correct only while this process is the store's one writer (the embedded default): a state another
// process changed would be decided on stale. A stale state can never store a wrong event, since the append's
// expected version then conflicts and the state is read again, but it can make a no-op look like one.
//
// Entries are kept compact, in the map itself (no allocation of their own), since the cache holds up to max
// of them for the life of the process: about 200 bytes for a user with an email and one event id.
type stateCache struct {
	mu  sync.Mutex
	max int
	m   map[string]cachedState
}

// cachedState is a User without its id (the map's key), times as Unix nanoseconds, and its latest event ids:
// the newest in last, the ones before it in older. status is one of the Status constants, whose bytes it
// shares.
type cachedState struct {
	email, name       string
	profile           map[string]any
	status            Status
	created, updated  int64
	version, position int64
	verified          bool
	last              string
	older             []string
}

func newStateCache(max int) *stateCache {
	return &stateCache{max: max, m: make(map[string]cachedState, min(max, 1<<16))}
}

func (c *stateCache) get(id string) (User, []string, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok {
		return User{}, nil, false
	}
	u := User{ID: id, Email: e.email, EmailVerified: e.verified, Name: e.name, Profile: maps.Clone(e.profile),
		Status: e.status, Version: e.version, Position: e.position,
		CreatedAt: nanosTime(e.created), UpdatedAt: nanosTime(e.updated)}
	var ids []string
	if e.last != "" {
		ids = append(append(make([]string, 0, len(e.older)+1), e.older...), e.last)
	}
	return u, ids, true
}

// put keeps u unless a newer state of the user is cached already.
func (c *stateCache) put(u User, ids []string) {
	if len(ids) > recentIDs {
		ids = ids[len(ids)-recentIDs:]
	}
	e := cachedState{email: u.Email, name: u.Name, profile: maps.Clone(u.Profile),
		created: nanos(u.CreatedAt), updated: nanos(u.UpdatedAt), version: u.Version, position: u.Position,
		status: u.Status, verified: u.EmailVerified}
	if len(ids) > 0 {
		e.last = ids[len(ids)-1]
		if len(ids) > 1 {
			e.older = append([]string(nil), ids[:len(ids)-1]...)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[u.ID]; ok {
		if old.version > u.Version {
			return
		}
	} else if len(c.m) >= c.max {
		for k := range c.m { // an arbitrary entry: map order is random
			delete(c.m, k)
			break
		}
	}
	c.m[u.ID] = e
}

func (c *stateCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// nanos is t in Unix nanoseconds, 0 for the zero time; nanosTime is its inverse, in UTC. (The stores'
// internal/unixnano does the same; aggregate depends on the eventstore root alone.)
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nanosTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
