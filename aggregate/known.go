package aggregate

import "sync"

// knownUsers remembers, up to a bound, the user ids this process has seen a stream of. It is a hint, safe
// with several writers: a user once stored always has a stream, so an id in the set is never wrongly taken
// for new; an id that fell out of it is only guessed new, and the store refuses that guess.
//
// Two generations keep it bounded without a list per entry: when the current one is full it becomes the
// previous one, and the oldest ids are forgotten.
type knownUsers struct {
	mu       sync.Mutex
	max      int
	current  map[string]struct{}
	previous map[string]struct{}
}

func newKnownUsers(max int) *knownUsers {
	return &knownUsers{max: max, current: make(map[string]struct{}), previous: map[string]struct{}{}}
}

func (k *knownUsers) has(id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.current[id]; ok {
		return true
	}
	_, ok := k.previous[id]
	return ok
}

func (k *knownUsers) add(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.current[id]; ok {
		return
	}
	if len(k.current) >= k.max/2 {
		k.previous, k.current = k.current, make(map[string]struct{}, len(k.current))
	}
	k.current[id] = struct{}{}
}

func (k *knownUsers) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.current) + len(k.previous)
}
