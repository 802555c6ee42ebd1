package delivery

import (
	"github.com/userhook/userhook/standardwebhooks"

	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Timeout is how long a receiver has to answer a delivery with a 2xx.
const Timeout = 10 * time.Second

// DefaultBackoff is the delay schedule between attempts; after the last delay's attempt fails, the delivery
// is failed.
var DefaultBackoff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour, 6 * time.Hour}

// MaxRetryAfter caps how long a receiver's Retry-After can postpone the next attempt.
const MaxRetryAfter = 24 * time.Hour

// Outcome names how an attempt ended, for metrics.
type Outcome string

// The attempt outcomes.
const (
	OutcomeSucceeded Outcome = "succeeded"
	OutcomeRetrying  Outcome = "retrying"
	OutcomeFailed    Outcome = "failed"
	OutcomeRefused   Outcome = "refused"
)

// Sender posts due deliveries. Several senders (goroutines or instances) can run on one store: each delivery is
// leased to one of them at a time.
type Sender struct {
	Store   Store
	Client  *http.Client
	Backoff []time.Duration
	// DisableAfter disables a webhook whose deliveries have all failed for this long (0: never).
	DisableAfter time.Duration
	Workers      int
	Now          func() time.Time
	Logger       *slog.Logger
	// Observe, when set, is told the outcome of every attempt.
	Observe func(Outcome)

	wakeOnce sync.Once
	wake     chan struct{}
}

func (s *Sender) init() {
	s.wakeOnce.Do(func() { s.wake = make(chan struct{}, 1) })
}

// Wake makes the sender look for due deliveries now.
func (s *Sender) Wake() {
	s.init()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Sender) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// lease is how long a claimed delivery is reserved for its sender: longer than an attempt can take.
const lease = 2 * Timeout

// Run sends due deliveries until ctx ends; deliveries in flight finish first.
func (s *Sender) Run(ctx context.Context) error {
	s.init()
	workers := max(s.Workers, 1)
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		claimed, err := s.Store.Claim(ctx, s.now(), lease, workers)
		if err != nil && ctx.Err() == nil {
			s.log().Error("claiming deliveries failed", "error", err.Error())
		}
		for _, d := range claimed {
			sem <- struct{}{}
			wg.Add(1)
			go func(d Delivery) {
				defer func() { <-sem; wg.Done() }()
				if _, err := s.Attempt(context.WithoutCancel(ctx), d, false); err != nil {
					s.log().Error("recording a delivery attempt failed", "delivery", d.ID, "error", err.Error())
				}
				// The next attempt's time is known now: look again rather than sleep through it.
				s.Wake()
			}(d)
		}
		if len(claimed) == workers {
			continue
		}
		wait := time.Second
		if next, err := s.Store.NextDue(ctx); err == nil && !next.IsZero() {
			wait = min(wait, max(time.Until(next), 10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-time.After(wait):
		}
	}
}

// Attempt sends one delivery now and records the outcome. A manual attempt (POST .../retry) is made even for
// a failed delivery; when it fails, a delivery that had used up its schedule stays failed.
func (s *Sender) Attempt(ctx context.Context, d Delivery, manual bool) (Delivery, error) {
	w, err := s.Store.Webhook(ctx, d.WebhookID)
	if err != nil {
		return d, err
	}
	now := s.now()
	if !w.Enabled && !manual {
		d.Status, d.Error, d.NextAttemptAt = StatusFailed, "not sent: the webhook is disabled", time.Time{}
		return d, s.Store.Record(ctx, d, nil)
	}
	d.Attempts++
	d.LastAttemptAt = now
	status, body, sendErr := s.send(ctx, w, d, now)
	d.ResponseStatus, d.ResponseBody = status, body
	webhookChanged := false
	var outcome Outcome
	switch {
	case sendErr == nil && status >= 200 && status < 300:
		d.Status, d.Error, d.NextAttemptAt = StatusSucceeded, "", time.Time{}
		if !w.FailingSince.IsZero() {
			w.FailingSince, webhookChanged = time.Time{}, true
		}
		outcome = OutcomeSucceeded
	default:
		d.Error = describe(status, sendErr)
		outcome = OutcomeFailed
		if errors.Is(sendErr, ErrRefusedAddress) {
			outcome = OutcomeRefused
		}
		if w.FailingSince.IsZero() {
			w.FailingSince, webhookChanged = now, true
		}
		next, retry := s.nextAttempt(d, status, body, now)
		switch {
		case status == http.StatusGone:
			w.Enabled, w.DisabledReason, webhookChanged = false, "disabled: the endpoint answered 410 Gone", true
			d.Status, d.NextAttemptAt = StatusFailed, time.Time{}
		case retry && !(manual && d.Status == StatusFailed):
			d.Status, d.NextAttemptAt = StatusPending, next
			if outcome == OutcomeFailed {
				outcome = OutcomeRetrying
			}
		default:
			d.Status, d.NextAttemptAt = StatusFailed, time.Time{}
		}
		if s.DisableAfter > 0 && w.Enabled && now.Sub(w.FailingSince) >= s.DisableAfter {
			w.Enabled, webhookChanged = false, true
			w.DisabledReason = fmt.Sprintf("disabled: every delivery failed for %s", s.DisableAfter)
		}
	}
	if webhookChanged {
		w.UpdatedAt = now
	}
	var changed *Webhook
	if webhookChanged {
		changed = &w
	}
	if s.Observe != nil {
		s.Observe(outcome)
	}
	s.log().Info("delivery attempt", "delivery", d.ID, "webhook", w.ID, "event", d.EventID, "attempt", d.Attempts,
		"status", d.Status, "response_status", status, "error", d.Error)
	return d, s.Store.Record(ctx, d, changed)
}

// nextAttempt is when a failed attempt is tried again, and whether it is.
func (s *Sender) nextAttempt(d Delivery, status int, _ string, now time.Time) (time.Time, bool) {
	backoff := s.Backoff
	if backoff == nil {
		backoff = DefaultBackoff
	}
	if d.Attempts > len(backoff) {
		return time.Time{}, false
	}
	delay := jitter(backoff[d.Attempts-1])
	if ra, ok := d.retryAfter(status, now); ok {
		delay = ra
	}
	return now.Add(delay), true
}

// retryAfter reads the Retry-After the receiver sent with a 429 or 503 (kept by send in the response body's
// place is not possible, so send stores it on the delivery error); see send.
func (d Delivery) retryAfter(status int, now time.Time) (time.Duration, bool) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return 0, false
	}
	raw, ok := strings.CutPrefix(d.retryAfterHeader(), "")
	if !ok || raw == "" {
		return 0, false
	}
	return parseRetryAfter(raw, now)
}

func (d Delivery) retryAfterHeader() string {
	const marker = " (Retry-After: "
	i := strings.LastIndex(d.Error, marker)
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(d.Error[i+len(marker):], ")")
}

func parseRetryAfter(raw string, now time.Time) (time.Duration, bool) {
	if secs, err := strconv.Atoi(strings.TrimSpace(raw)); err == nil && secs >= 0 {
		return min(time.Duration(secs)*time.Second, MaxRetryAfter), true
	}
	if t, err := http.ParseTime(raw); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter), true
	}
	return 0, false
}

// jitter spreads a delay by ±20% so that receivers that failed together are not retried together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func describe(status int, err error) string {
	if err != nil {
		var ra *retryAfterError
		if errors.As(err, &ra) {
			return fmt.Sprintf("the endpoint answered %d (Retry-After: %s)", ra.status, ra.value)
		}
		if errors.Is(err, ErrRefusedAddress) {
			var re *RefusedAddressError
			if errors.As(err, &re) {
				return "refused: " + re.Address.String() + " " + re.Reason
			}
			return "refused: " + err.Error()
		}
		// A *url.Error quotes the whole URL, whose query may hold the receiver's token: say only what failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			if u, perr := url.Parse(ue.URL); perr == nil {
				return fmt.Sprintf("%s %s://%s: %v", ue.Op, u.Scheme, u.Host, ue.Err)
			}
			return ue.Err.Error()
		}
		return err.Error()
	}
	return fmt.Sprintf("the endpoint answered %d, not a 2xx", status)
}

type retryAfterError struct {
	status int
	value  string
}

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("%d with Retry-After %s", e.status, e.value)
}

// Sign returns the Standard Webhooks signature header value for a message, one v1 signature per secret.
func Sign(id string, timestamp time.Time, body []byte, secrets []string) string {
	keys := make([][]byte, 0, len(secrets))
	for _, secret := range secrets {
		if key, err := DecodeSecret(secret); err == nil {
			keys = append(keys, key)
		}
	}
	return standardwebhooks.Sign(id, timestamp, body, keys...)
}

// send posts the delivery and returns the response status and the start of its body.
func (s *Sender) send(ctx context.Context, w Webhook, d Delivery, now time.Time) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", w.ContentType)
	req.Header.Set("User-Agent", "userhook-webhooks/1")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(d.ID, now, d.Payload, w.Secrets))
	client := s.Client
	if client == nil {
		client = NewClient(Timeout, false)
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, "", fmt.Errorf("no answer within %s", Timeout)
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	body := strings.ToValidUTF8(string(raw), "\uFFFD")
	if !utf8.ValidString(body) {
		body = ""
	}
	if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && resp.Header.Get("Retry-After") != "" {
		return resp.StatusCode, body, &retryAfterError{status: resp.StatusCode, value: resp.Header.Get("Retry-After")}
	}
	return resp.StatusCode, body, nil
}
