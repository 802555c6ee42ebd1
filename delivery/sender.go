package delivery

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/userhook/userhook/standardwebhooks"
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
	// OutcomeDeferred is an attempt not made because the webhook's circuit is open: the delivery waits, pending.
	OutcomeDeferred Outcome = "deferred"
)

// Outcomes lists every outcome, so that metrics can show each from the start.
var Outcomes = []Outcome{OutcomeSucceeded, OutcomeRetrying, OutcomeFailed, OutcomeRefused, OutcomeDeferred}

// The defaults of a Sender's per-endpoint settings.
const (
	DefaultPerEndpoint = 2
	DefaultBreakAfter  = 5
	DefaultBreakFor    = 30 * time.Second
)

// Sender posts due deliveries. Several senders (goroutines or instances) can run on one store: each delivery is
// leased to one of them at a time.
//
// Each webhook has a lane of its own in a sender: at most PerEndpoint of its deliveries are sent at once, and
// the claim loop passes over a webhook whose lane is full, so a slow or hanging endpoint holds PerEndpoint of
// the Workers at most and delays only its own deliveries. A circuit breaker per lane stops sending to an
// endpoint that keeps timing out: its deliveries wait, pending, and one of them probes the endpoint now and
// then until it answers again.
type Sender struct {
	Store   Store
	Client  *http.Client
	Backoff []time.Duration
	// DisableAfter disables a webhook whose deliveries have all failed for this long (0: never).
	DisableAfter time.Duration
	// Workers bounds the deliveries the sender holds at once over all webhooks: being sent, or claimed and
	// waiting for their webhook's turn.
	Workers int
	// PerEndpoint bounds the deliveries sent at once to one webhook (0: DefaultPerEndpoint).
	PerEndpoint int
	// BreakAfter consecutive timeouts of one webhook's endpoint open its circuit (0: DefaultBreakAfter); for
	// BreakFor (0: DefaultBreakFor) nothing is sent to it, then one delivery probes it.
	BreakAfter int
	BreakFor   time.Duration
	// AttemptTimeout bounds each attempt (0: Timeout).
	AttemptTimeout time.Duration
	Now            func() time.Time
	Logger         *slog.Logger
	// Observe, when set, is told the outcome of every attempt and how long its request took (zero when
	// nothing was sent).
	Observe func(Outcome, time.Duration)

	wakeOnce sync.Once
	wake     chan struct{}
	lanes    lanes
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

func (s *Sender) workers() int { return max(s.Workers, 1) }

func (s *Sender) perEndpoint() int { return cmp.Or(max(s.PerEndpoint, 0), DefaultPerEndpoint) }

func (s *Sender) breakAfter() int { return cmp.Or(max(s.BreakAfter, 0), DefaultBreakAfter) }

func (s *Sender) breakFor() time.Duration { return cmp.Or(max(s.BreakFor, 0), DefaultBreakFor) }

func (s *Sender) attemptTimeout() time.Duration { return cmp.Or(max(s.AttemptTimeout, 0), Timeout) }

// lease is how long a claimed delivery is reserved for its sender: longer than it can wait in its lane for
// the attempts ahead of it (one attempt's time) plus its own attempt.
func (s *Sender) lease() time.Duration { return 3 * s.attemptTimeout() }

// Run sends due deliveries until ctx ends; deliveries being sent finish first, and those still waiting for
// their lane are released for the next claim.
func (s *Sender) Run(ctx context.Context) error {
	s.init()
	s.open(context.WithoutCancel(ctx))
	defer s.close()
	for {
		now := s.now()
		skip, room, reopen := s.plan(now)
		var claimed []Delivery
		var err error
		if room > 0 {
			claimed, err = s.Store.Claim(ctx, now, s.lease(), ClaimLimits{Total: room, PerWebhook: s.perEndpoint(), Skip: skip})
			if err != nil && ctx.Err() == nil {
				s.log().Error("claiming deliveries failed", "error", err.Error())
			}
			s.hand(claimed, now)
			if len(claimed) == room {
				continue
			}
		}
		wait := time.Second
		if room > len(claimed) && err == nil {
			// Room is left: sleep until the next delivery of a webhook that has room is due.
			skip, _, _ = s.plan(now)
			if next, err := s.Store.NextDue(ctx, skip); err == nil && !next.IsZero() {
				wait = min(wait, max(next.Sub(s.now()), 10*time.Millisecond))
			}
		}
		if !reopen.IsZero() {
			wait = min(wait, max(time.Until(reopen), 10*time.Millisecond))
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
// a failed delivery, and whatever the webhook's circuit; when it fails, a delivery that had used up its
// schedule stays failed.
func (s *Sender) Attempt(ctx context.Context, d Delivery, manual bool) (Delivery, error) {
	return s.attempt(ctx, d, manual, nil)
}

// attempt is Attempt through the circuit breaker of lane l, when not nil.
func (s *Sender) attempt(ctx context.Context, d Delivery, manual bool, l *lane) (Delivery, error) {
	w, err := s.Store.Webhook(ctx, d.WebhookID)
	if err != nil {
		return d, err
	}
	now := s.now()
	if !w.Enabled && !manual {
		d.Status, d.Error, d.NextAttemptAt = StatusFailed, "not sent: the webhook is disabled", time.Time{}
		return d, s.Store.Record(ctx, d, nil)
	}
	var done func(error)
	if l != nil {
		if done, err = l.breaker.Allow(); err != nil {
			return s.postpone(ctx, d, l, now)
		}
	}
	d.Attempts++
	d.LastAttemptAt = now
	start := time.Now()
	resp, sendErr := s.send(ctx, w, d, now)
	took := time.Since(start)
	if done != nil {
		// Only timeouts trip the breaker: they are what holds a lane up, where an error answer is quick.
		var na *noAnswerError
		if errors.As(sendErr, &na) {
			done(sendErr)
		} else {
			done(nil)
		}
	}
	d.ResponseStatus, d.ResponseBody = resp.status, resp.body
	webhookChanged := false
	var outcome Outcome
	switch {
	case sendErr == nil && resp.status >= 200 && resp.status < 300:
		d.Status, d.Error, d.NextAttemptAt = StatusSucceeded, "", time.Time{}
		if !w.FailingSince.IsZero() {
			w.FailingSince, webhookChanged = time.Time{}, true
		}
		outcome = OutcomeSucceeded
	default:
		d.Error = describe(resp, sendErr)
		outcome = OutcomeFailed
		if errors.Is(sendErr, ErrRefusedAddress) {
			outcome = OutcomeRefused
		}
		if w.FailingSince.IsZero() {
			w.FailingSince, webhookChanged = now, true
		}
		backoff := s.Backoff
		if backoff == nil {
			backoff = DefaultBackoff
		}
		next, retry := nextAttempt(backoff, d.Attempts, resp, now, jitter)
		switch {
		case resp.status == http.StatusGone:
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
		s.Observe(outcome, took)
	}
	s.log().Info("delivery attempt", "delivery", d.ID, "webhook", w.ID, "event", d.EventID, "attempt", d.Attempts,
		"status", d.Status, "response_status", resp.status, "error", d.Error, "duration_ms", took.Milliseconds())
	return d, s.Store.Record(ctx, d, changed)
}

// postpone records that d was not sent because its webhook's circuit is open: it stays pending, due when the
// circuit lets a probe through. It is not counted in Attempts, which counts what was sent and sets the backoff
// schedule: an outage of the endpoint must not use up the schedule of deliveries that were never sent.
func (s *Sender) postpone(ctx context.Context, d Delivery, l *lane, now time.Time) (Delivery, error) {
	// While a probe is out (half-open), the others wait a little.
	wait := max(time.Until(l.reopensAt(s.breakFor())), time.Second)
	d.Status, d.NextAttemptAt = StatusPending, now.Add(wait)
	timeouts := "timeouts"
	if s.breakAfter() == 1 {
		timeouts = "timeout"
	}
	d.Error = fmt.Sprintf("not sent: circuit open after %d %s in a row; next try after %s", s.breakAfter(), timeouts,
		d.NextAttemptAt.Format(time.RFC3339))
	if s.Observe != nil {
		s.Observe(OutcomeDeferred, 0)
	}
	s.log().Info("delivery postponed", "delivery", d.ID, "webhook", d.WebhookID, "event", d.EventID, "error", d.Error)
	return d, s.Store.Record(ctx, d, nil)
}

// nextAttempt decides when a delivery whose attempt number attempts failed with resp is tried again, and
// whether it is: after the Retry-After of a 429 or 503 (capped at MaxRetryAfter), else after the attempt's
// delay on the backoff schedule, spread by spread; not at all after the schedule's last delay.
func nextAttempt(backoff []time.Duration, attempts int, resp response, now time.Time, spread func(time.Duration) time.Duration) (time.Time, bool) {
	if attempts < 1 || attempts > len(backoff) {
		return time.Time{}, false
	}
	if resp.status == http.StatusTooManyRequests || resp.status == http.StatusServiceUnavailable {
		if ra, ok := parseRetryAfter(resp.retryAfter, now); ok {
			return now.Add(ra), true
		}
	}
	return now.Add(spread(backoff[attempts-1])), true
}

func parseRetryAfter(raw string, now time.Time) (time.Duration, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(raw); err == nil && secs >= 0 {
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

func describe(resp response, err error) string {
	if err != nil {
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
	if resp.retryAfter != "" {
		return fmt.Sprintf("the endpoint answered %d (Retry-After: %s)", resp.status, resp.retryAfter)
	}
	return fmt.Sprintf("the endpoint answered %d, not a 2xx", resp.status)
}

// noAnswerError is an attempt that got no answer in time.
type noAnswerError struct{ after time.Duration }

func (e *noAnswerError) Error() string { return fmt.Sprintf("no answer within %s", e.after) }

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

// response is what an endpoint answered: its status, the start of its body, and the Retry-After it sent with a
// 429 or 503.
type response struct {
	status     int
	body       string
	retryAfter string
}

// send posts the delivery; an error when no answer came (a *noAnswerError when none came in time).
func (s *Sender) send(ctx context.Context, w Webhook, d Delivery, now time.Time) (response, error) {
	timeout := s.attemptTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", w.ContentType)
	req.Header.Set("User-Agent", "userhook-webhooks/1")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(d.ID, now, d.Payload, w.Secrets))
	client := s.Client
	if client == nil {
		client = NewClient(timeout, Guard{})
	}
	resp, err := client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return response{}, &noAnswerError{after: timeout}
		}
		return response{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	body := strings.ToValidUTF8(string(raw), "\uFFFD")
	if !utf8.ValidString(body) {
		body = ""
	}
	out := response{status: resp.StatusCode, body: body}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		out.retryAfter = resp.Header.Get("Retry-After")
	}
	return out, nil
}
