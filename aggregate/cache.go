package aggregate

import "sync"

// recentIDs is how many of a user's latest event ids a cached state remembers, to recognise a copy of a
// provider event that another request stored a moment ago.
const recentIDs = 16

// stateCache keeps the state of recently used users in memory so that deciding needs no read of the store.
// It is correct only while this process is the store's one writer (the embedded default): a state another
// process changed would be decided on stale. A stale state can never store a wrong event, since the append's
// expected version then conflicts and the state is read again, but it can make a no-op look like one.
type stateCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*cachedState
}

type cachedState struct {
	user User
	ids  []string
}

func newStateCache(max int) *stateCache {
	return &stateCache{max: max, m: make(map[string]*cachedState, min(max, 1<<16))}
}

func (c *stateCache) get(id string) (User, []string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return User{}, nil, false
	}
	return e.user.Clone(), e.ids, true
}

// put keeps u unless a newer state of the user is cached already.
func (c *stateCache) put(u User, ids []string) {
	if len(ids) > recentIDs {
		ids = ids[len(ids)-recentIDs:]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[u.ID]; ok {
		if e.user.Version > u.Version {
			return
		}
	} else if len(c.m) >= c.max {
		for k := range c.m { // an arbitrary entry: map order is random
			delete(c.m, k)
			break
		}
	}
	c.m[u.ID] = &cachedState{user: u.Clone(), ids: append([]string(nil), ids...)}
}

func (c *stateCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}
