// Package delivery fans applied user events out to subscribed webhooks: the subscriptions, a consumer of the
// event stream (a Watermill handler with its own checkpoint, like the users projection) that creates one
// durable delivery per matching enabled webhook, and a sender that posts each delivery as a signed structured
// CloudEvent, retries it on a backoff schedule, and keeps a log of every attempt.
package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/standardwebhooks"
)

// ConsumerName is the delivery consumer's Watermill handler name and checkpoint. Never rename it.
const ConsumerName = "webhook-deliveries"

// EventTypes are the names a webhook can subscribe to, besides All: the public event types, named once by the
// aggregate (the domain names its facts).
var EventTypes = aggregate.PublicTypes()

// All subscribes a webhook to every event type.
const All = "all"

// The content types a webhook can receive deliveries as.
var ContentTypes = []string{"application/json", "application/cloudevents+json"}

// MaxSecrets is how many signing secrets a webhook holds: the current one and the next, for rotation.
const MaxSecrets = 2

// Webhook is a subscription.
type Webhook struct {
	ID          string
	Name        string
	URL         string
	Events      []string
	Enabled     bool
	ContentType string
	Secrets     []string
	// DisabledReason says why userhook disabled the webhook by itself (410 Gone, failing too long).
	DisabledReason string
	// FailingSince is when the webhook's deliveries started failing without a success since; zero when not.
	FailingSince time.Time
	// FromPosition: events at or before it are not delivered to this webhook (it did not exist or match yet).
	FromPosition int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Matches says whether an event of the public type typ is delivered to w.
func (w Webhook) Matches(typ string) bool {
	return w.Enabled && (slices.Contains(w.Events, All) || slices.Contains(w.Events, typ))
}

// The delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Delivery is one event to send to one webhook, with what its attempts got.
type Delivery struct {
	ID        string
	WebhookID string
	EventID   string
	EventType string
	Position  int64
	// Payload is the structured CloudEvent sent, built when the delivery was created.
	Payload        []byte
	Status         string
	Attempts       int
	ResponseStatus int
	// ResponseBody is the start of the last response's body.
	ResponseBody  string
	Error         string
	CreatedAt     time.Time
	LastAttemptAt time.Time
	NextAttemptAt time.Time
}

// MaxResponseBody is how much of a response body a delivery keeps.
const MaxResponseBody = 1024

// Filter selects deliveries of one webhook for the log.
type Filter struct {
	WebhookID string
	Status    string
	// Before is the event position the previous page ended at (0: from the newest); deliveries come newest
	// first.
	Before int64
	Limit  int
}

// ClaimLimits bound what one Claim leases.
type ClaimLimits struct {
	// Total is the most deliveries claimed.
	Total int
	// PerWebhook, when positive, is the most deliveries of one webhook claimed.
	PerWebhook int
	// Skip lists webhooks none of whose deliveries are claimed: the sender has no room for them now.
	Skip []string
}

// Store keeps webhooks and deliveries.
type Store interface {
	CreateWebhook(ctx context.Context, w Webhook) error
	// Webhook returns one webhook; an error matching userhook.ErrNotFound when there is none.
	Webhook(ctx context.Context, id string) (Webhook, error)
	Webhooks(ctx context.Context) ([]Webhook, error)
	UpdateWebhook(ctx context.Context, w Webhook) error
	// DeleteWebhook removes a webhook and its deliveries.
	DeleteWebhook(ctx context.Context, id string) error

	// Enqueue stores deliveries (a delivery for a webhook and event already stored is kept as it is) and
	// advances the checkpoint of name to position, in one transaction.
	Enqueue(ctx context.Context, name string, position int64, deliveries []Delivery) error
	// Checkpoint is the saved position of name.
	Checkpoint(ctx context.Context, name string) (int64, error)
	// Claim leases pending deliveries due at now to one sender until now+lease, soonest first (by next attempt,
	// then position), within limits: at most limits.Total, at most limits.PerWebhook of one webhook, none of the
	// webhooks in limits.Skip. A delivery leased to another sender is never returned.
	Claim(ctx context.Context, now time.Time, lease time.Duration, limits ClaimLimits) ([]Delivery, error)
	// ClaimOne leases the delivery id to one sender until now+lease, whatever its status, unless another
	// sender holds it (then ok is false); an error matching userhook.ErrNotFound when there is no such delivery.
	ClaimOne(ctx context.Context, id string, now time.Time, lease time.Duration) (d Delivery, ok bool, err error)
	// Record saves an attempt's outcome, releases the lease, and, when w is not nil, the webhook state the
	// sender decides: FailingSince, and Enabled turned off with its DisabledReason. Other settings, which an
	// admin may have changed meanwhile, are left as they are.
	Record(ctx context.Context, d Delivery, w *Webhook) error
	// Delivery returns one delivery; an error matching userhook.ErrNotFound when there is none.
	Delivery(ctx context.Context, id string) (Delivery, error)
	// Deliveries returns a page of a webhook's deliveries, newest first.
	Deliveries(ctx context.Context, f Filter) ([]Delivery, error)
	// NextDue is when the earliest pending delivery of a webhook not in skip can be claimed: its next attempt,
	// or the end of its lease when it is leased; zero when none is pending.
	NextDue(ctx context.Context, skip []string) (time.Time, error)
	// OldestDue is the next attempt time of the oldest pending delivery due at now, leased or not: how long the
	// queue has kept a delivery waiting. Zero when none is due.
	OldestDue(ctx context.Context, now time.Time) (time.Time, error)
	// Pending counts the pending deliveries.
	Pending(ctx context.Context) (int64, error)
}

// NewID returns a new random id with a prefix.
func NewID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NewSecret returns a new whsec_ signing secret of 24 random bytes.
func NewSecret() string { return standardwebhooks.NewSecret() }

// DecodeSecret returns the HMAC key of a whsec_ secret; an outbound secret must hold at least 16 bytes.
func DecodeSecret(s string) ([]byte, error) {
	key, err := standardwebhooks.ParseSecret(s)
	if err != nil || len(key) < 16 {
		return nil, userhook.Errorf(userhook.ErrInvalid, "a secret is whsec_ followed by base64 of at least 16 bytes")
	}
	return key, nil
}

// Mask shows the end of a secret only.
func Mask(secret string) string {
	if len(secret) <= 10 {
		return "whsec_…"
	}
	return "whsec_…" + secret[len(secret)-4:]
}

// Validate reports every fault of a webhook's settings at once. The URL must be https://, or http:// when g
// allows private addresses (local receivers), and its host must not be a literal address g refuses; a host
// name is judged when a delivery connects.
func Validate(w Webhook, g Guard) error {
	var fe userhook.FieldErrors
	switch {
	case strings.TrimSpace(w.Name) == "":
		fe.Add("name", "name is required")
	case utf8.RuneCountInString(w.Name) > 200:
		fe.Add("name", "name must be at most 200 characters")
	case !utf8.ValidString(w.Name) || strings.IndexFunc(w.Name, unicode.IsControl) >= 0:
		fe.Add("name", "name must be valid UTF-8 without control characters")
	}
	if msg := checkURL(w.URL, g); msg != "" {
		fe.Add("url", msg)
	}
	if len(w.Events) == 0 {
		fe.Add("events", "events must contain at least 1 element")
	}
	for _, e := range w.Events {
		if e != All && !slices.Contains(EventTypes, e) {
			fe.Add("events", fmt.Sprintf("each value in events must be one of: all, %s (got %q)", strings.Join(EventTypes, ", "), truncate(e, 64)))
		}
	}
	if !slices.Contains(ContentTypes, w.ContentType) {
		fe.Add("contentType", "contentType must be one of: "+strings.Join(ContentTypes, ", "))
	}
	if len(w.Secrets) > MaxSecrets {
		fe.Add("secrets", "secrets must contain no more than 2 elements")
	}
	for i, s := range w.Secrets {
		if _, err := DecodeSecret(s); err != nil {
			fe.Add(fmt.Sprintf("secrets[%d]", i), "a secret is whsec_ followed by base64 of at least 16 bytes")
		}
	}
	return fe.Err()
}

func checkURL(raw string, g Guard) string {
	if raw == "" {
		return "url is required"
	}
	if len(raw) > 2048 {
		return "url must be at most 2048 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return "url must be an absolute URL"
	}
	if u.User != nil {
		return "url must not carry credentials"
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && g.AllowPrivate:
	default:
		return "should be a secure URL with HTTPS"
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		if err := g.Check(ip); err != nil {
			return "url must not point to an address deliveries never reach: " + err.Error()
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
