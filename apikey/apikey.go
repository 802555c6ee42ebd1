// Package apikey holds the API keys that callers send in X-API-Key: their roles, how they are generated and
// hashed, and the Keyring that checks a presented key against the bootstrap keys and the stored ones.
//
// A key is 32 random bytes, shown once when created; only its SHA-256 is kept. A high-entropy secret needs
// no slow hash: SHA-256 cannot be reversed, and a lookup by hash reveals nothing about other keys.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/userhook/userhook"
)

// Role is what a key may do.
type Role string

// The roles: ingest may post events, read may query, admin may do everything.
const (
	RoleIngest Role = "ingest"
	RoleRead   Role = "read"
	RoleAdmin  Role = "admin"
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.TrimSpace(s)); r {
	case RoleIngest, RoleRead, RoleAdmin:
		return r, nil
	}
	return "", userhook.Errorf(userhook.ErrInvalid, "role %q is not one of ingest, read, admin", s)
}

// Allows says whether a key of role r may act as need.
func (r Role) Allows(need Role) bool { return r == RoleAdmin || r == need }

// Key is a stored API key; the key itself is never kept, only its hash.
type Key struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	Hash      string     `json:"-"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// Prefix starts every generated key, so a leaked key is recognisable by secret scanners.
const Prefix = "uhk_"

// Generate returns a new random key and its hash.
func Generate() (plain, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	plain = Prefix + base64.RawURLEncoding.EncodeToString(b)
	return plain, Hash(plain), nil
}

// NewID returns a new key id.
func NewID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "key_" + hex.EncodeToString(b)
}

// Hash is the stored form of a key: hex SHA-256.
func Hash(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// Store keeps API keys.
type Store interface {
	// Create stores a key record (its Hash set by the caller).
	Create(ctx context.Context, k Key) error
	// List returns every key, revoked ones included, oldest first.
	List(ctx context.Context) ([]Key, error)
	// Revoke marks a key revoked; ErrNotFound when there is no such key.
	Revoke(ctx context.Context, id string, at time.Time) error
	// ByHash returns the key with this hash; ErrNotFound when there is none.
	ByHash(ctx context.Context, hash string) (Key, error)
}

// ErrNotFound is returned for an unknown key id or hash; it matches userhook.ErrNotFound.
var ErrNotFound = userhook.Errorf(userhook.ErrNotFound, "api key")

// Bootstrap is a key configured in USERHOOK_API_KEYS.
type Bootstrap struct {
	Key  string
	Role Role
}

// ParseBootstrap reads "KEY:ROLE,KEY:ROLE". Faults name the entry by position, never by its key.
func ParseBootstrap(s string) ([]Bootstrap, error) {
	var out []Bootstrap
	var errs []error
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		at := strings.LastIndexByte(part, ':')
		if at <= 0 {
			errs = append(errs, fmt.Errorf("USERHOOK_API_KEYS entry %d: want KEY:ROLE", i+1))
			continue
		}
		key, role := part[:at], part[at+1:]
		r, err := ParseRole(role)
		if err != nil {
			// The role text is not quoted: in a "ROLE:KEY" slip it is the key.
			errs = append(errs, fmt.Errorf("USERHOOK_API_KEYS entry %d: the role after the last ':' is not one of ingest, read, admin", i+1))
			continue
		}
		if len(key) < 16 {
			errs = append(errs, fmt.Errorf("USERHOOK_API_KEYS entry %d: a key must be at least 16 characters", i+1))
			continue
		}
		out = append(out, Bootstrap{Key: key, Role: r})
	}
	return out, errors.Join(errs...)
}

// Keyring checks presented keys against the bootstrap keys (held only as hashes) and the store. Stored keys
// found are cached for CacheFor, so a revocation by another process takes effect within that time.
type Keyring struct {
	bootstrap []Key
	store     Store
	now       func() time.Time

	mu     sync.Mutex
	cache  map[string]cached // keys found in the store, by hash
	misses map[string]cached // hashes not found (or revoked), at most maxMisses
}

// maxMisses bounds the cache of failed lookups.
const maxMisses = 4096

type cached struct {
	key     Key
	ok      bool
	expires time.Time
}

// CacheFor is how long a stored key's lookup result is reused.
const CacheFor = 5 * time.Second

// NewKeyring returns a keyring over the bootstrap keys and store (which may be nil).
func NewKeyring(bootstrap []Bootstrap, store Store) *Keyring {
	kr := &Keyring{store: store, now: time.Now, cache: map[string]cached{}, misses: map[string]cached{}}
	for i, b := range bootstrap {
		kr.bootstrap = append(kr.bootstrap, Key{ID: fmt.Sprintf("bootstrap-%d", i+1), Name: "USERHOOK_API_KEYS", Role: b.Role, Hash: Hash(b.Key)})
	}
	return kr
}

// Authenticate returns the key matching plain, or an error matching userhook.ErrUnauthorized.
func (kr *Keyring) Authenticate(ctx context.Context, plain string) (Key, error) {
	if plain == "" {
		return Key{}, userhook.Errorf(userhook.ErrUnauthorized, "missing X-API-Key")
	}
	h := Hash(plain)
	// Every bootstrap hash is compared, in constant time, whatever matches.
	var found *Key
	for i := range kr.bootstrap {
		if subtle.ConstantTimeCompare([]byte(kr.bootstrap[i].Hash), []byte(h)) == 1 {
			found = &kr.bootstrap[i]
		}
	}
	if found != nil {
		return *found, nil
	}
	if kr.store == nil {
		return Key{}, userhook.Errorf(userhook.ErrUnauthorized, "invalid API key")
	}
	now := kr.now()
	kr.mu.Lock()
	c, hit := kr.cache[h]
	if !hit {
		c, hit = kr.misses[h]
	}
	kr.mu.Unlock()
	if !hit || now.After(c.expires) {
		k, err := kr.store.ByHash(ctx, h)
		switch {
		case errors.Is(err, ErrNotFound):
			c = cached{ok: false, expires: now.Add(CacheFor)}
		case err != nil:
			return Key{}, err
		default:
			c = cached{key: k, ok: subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) == 1 && k.RevokedAt == nil,
				expires: now.Add(CacheFor)}
		}
		kr.mu.Lock()
		if c.ok {
			// Keys that exist are few and made by admins: they never push each other out.
			kr.cache[h] = c
		} else {
			// Misses are whatever a caller makes up: a bounded set of their own, so they can neither grow
			// memory nor flush the keys that work.
			if len(kr.misses) >= maxMisses {
				clear(kr.misses)
			}
			kr.misses[h] = c
			delete(kr.cache, h)
		}
		kr.mu.Unlock()
	}
	if !c.ok {
		return Key{}, userhook.Errorf(userhook.ErrUnauthorized, "invalid API key")
	}
	return c.key, nil
}

// Forget drops cached lookups, so a key revoked in this process stops working at once.
func (kr *Keyring) Forget() {
	kr.mu.Lock()
	kr.cache = map[string]cached{}
	kr.misses = map[string]cached{}
	kr.mu.Unlock()
}
