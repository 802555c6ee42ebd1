package transport

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/userhook/userhook"
)

// RateLimit is a token bucket per caller: PerSecond requests a second on average, up to Burst at once.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// ParseRateLimit reads "RATE" or "RATE:BURST" (requests per second; the burst defaults to the rate, at least
// 1); an empty string is no limit (nil).
func ParseRateLimit(s string) (*RateLimit, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return nil, nil
	}
	rateText, burstText, hasBurst := strings.Cut(s, ":")
	r, err := strconv.ParseFloat(rateText, 64)
	if err != nil || r <= 0 || math.IsInf(r, 0) {
		return nil, fmt.Errorf("%q is not RATE[:BURST] with a positive rate per second", s)
	}
	burst := int(math.Max(1, math.Ceil(r)))
	if hasBurst {
		if burst, err = strconv.Atoi(burstText); err != nil || burst < 1 {
			return nil, fmt.Errorf("%q: the burst must be a positive whole number", s)
		}
	}
	return &RateLimit{PerSecond: r, Burst: burst}, nil
}

// limiter holds one bucket per caller; the buckets fill by its clock, now.
type limiter struct {
	limit RateLimit
	now   func() time.Time
	mu    sync.Mutex
	m     map[string]*rate.Limiter
}

func newLimiter(l *RateLimit, now func() time.Time) *limiter {
	if l == nil {
		return nil
	}
	return &limiter{limit: *l, now: now, m: map[string]*rate.Limiter{}}
}

// maxCallers bounds the buckets kept. A bucket is made only for a caller that authenticated (an API key, or a
// configured signing secret), never for what an unauthenticated request names, so there are few; the bound is
// for a store of keys that grows for years.
const maxCallers = 10000

// allow takes a token for caller, or says how long until one is there.
func (l *limiter) allow(caller string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	b, ok := l.m[caller]
	if !ok {
		if len(l.m) >= maxCallers {
			l.evict(now)
		}
		b = rate.NewLimiter(rate.Limit(l.limit.PerSecond), l.limit.Burst)
		l.m[caller] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// take is allow at the limiter's clock's time. A nil limiter (no limit) lets every caller through without
// reading the clock.
func (l *limiter) take(caller string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	return l.allow(caller, l.now())
}

// evict drops the buckets that have filled up again: a full bucket answers exactly as a new one would, so
// forgetting it changes nothing. Should every bucket be in use, they all start afresh (full), which only ever
// lets more through. It runs with l.mu held.
func (l *limiter) evict(now time.Time) {
	for caller, b := range l.m {
		if b.TokensAt(now) >= float64(l.limit.Burst) {
			delete(l.m, caller)
		}
	}
	if len(l.m) >= maxCallers {
		l.m = map[string]*rate.Limiter{}
	}
}

// refuse answers 429 with Retry-After in whole seconds (at least 1).
func refuse(c echo.Context, wait time.Duration) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(wait.Seconds())))))
	return userhook.Errorf(userhook.ErrRateLimited, "this caller's rate limit is reached; retry after the Retry-After delay")
}

// limited is middleware, after authentication, that applies l to the request's API key.
func (s *Server) limited(l *limiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if l == nil {
			return next
		}
		return func(c echo.Context) error {
			p, _ := PrincipalOf(c)
			if ok, wait := l.take("key:" + p.Key.ID); !ok {
				s.deps.Metrics.Limited(c.Path())
				return refuse(c, wait)
			}
			return next(c)
		}
	}
}
