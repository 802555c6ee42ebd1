package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// End-to-end tests of the hardening of outbound deliveries (issue 12): one hanging or slow endpoint never slows
// the deliveries to the others, and webhook URLs naming a reserved address are refused at creation.

// stuckReceiver is an endpoint that answers only after delay, or never (delay 0) while the test runs. When
// the test ends its handlers are let go before the server closes, so that neither waits on the other.
type stuckReceiver struct {
	URL      string
	requests atomic.Int64
}

func newStuckReceiver(t *testing.T, delay time.Duration) *stuckReceiver {
	t.Helper()
	r := &stuckReceiver{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		// Reading the body lets the server notice the client hanging up, which ends req.Context().
		_, _ = io.Copy(io.Discard, req.Body)
		var after <-chan time.Time
		if delay > 0 {
			timer := time.NewTimer(delay)
			defer timer.Stop()
			after = timer.C
		}
		select {
		case <-after:
		case <-release:
		case <-req.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	// Cleanups run last registered first: the handlers are released, then the server closes.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	r.URL = srv.URL + "/hook"
	return r
}

// countingReceiver answers every delivery at once and keeps when it first got each one (by webhook-id); all
// is closed when it has got want of them.
type countingReceiver struct {
	URL  string
	all  chan struct{}
	mu   sync.Mutex
	seen map[string]time.Time
	last time.Time
}

func newCountingReceiver(t *testing.T, want int) *countingReceiver {
	t.Helper()
	r := &countingReceiver{seen: map[string]time.Time{}, all: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		now := time.Now()
		r.mu.Lock()
		if _, ok := r.seen[req.Header.Get("webhook-id")]; !ok {
			r.seen[req.Header.Get("webhook-id")] = now
			r.last = now
			if len(r.seen) == want {
				close(r.all)
			}
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hook"
	return r
}

func (r *countingReceiver) count() (int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen), r.last
}

// TestDeliveryIsolationHangingAndSlowEndpoints: with one endpoint that never answers and one that answers
// after 8 s, a healthy endpoint still gets all of 100 events within 2 s of the last POST /users.
func TestDeliveryIsolationHangingAndSlowEndpoints(t *testing.T) {
	t.Parallel()
	const users = 100
	const within = 2 * time.Second
	s := whStart(t, whConfig(t))
	hanging := newStuckReceiver(t, 0)
	slow := newStuckReceiver(t, 8*time.Second)
	healthy := newCountingReceiver(t, users)
	s.whHook("hanging", hanging.URL, "all")
	s.whHook("slow", slow.URL, "all")
	s.whHook("healthy", healthy.URL, "all")

	first := time.Now()
	for i := range users {
		require.Equal(t, http.StatusOK, s.postUser(fmt.Sprintf("auth0|isolation-%03d", i), fmt.Sprintf("iso%03d@example.com", i)).Status)
	}
	lastPost := time.Now()

	select {
	case <-healthy.all:
	case <-time.After(time.Until(lastPost.Add(within))):
	}
	n, last := healthy.count()
	t.Logf("%d POST /users in %v; the healthy endpoint got %d/%d deliveries, the last %v after the last POST "+
		"(%v after the first); the hanging endpoint got %d requests, the slow one %d",
		users, lastPost.Sub(first).Round(time.Millisecond), n, users, last.Sub(lastPost).Round(time.Millisecond),
		last.Sub(first).Round(time.Millisecond), hanging.requests.Load(), slow.requests.Load())
	require.Equal(t, users, n, "the healthy endpoint gets every event within %v of the last POST", within)
	assert.LessOrEqual(t, last.Sub(lastPost), within)
	assert.Positive(t, hanging.requests.Load(), "the hanging endpoint was tried")
}

// TestWebhookCreationRefusesReservedLiterals: a webhook URL whose host is a literal address deliveries may
// never reach is refused at creation, with the reason on url; a host name is judged at connect time.
func TestWebhookCreationRefusesReservedLiterals(t *testing.T) {
	t.Parallel()
	s := whStart(t, testConfig(t)) // private addresses not allowed
	for _, u := range []string{
		"https://192.0.2.10/hook",             // TEST-NET-1
		"https://198.51.100.7/hook",           // TEST-NET-2
		"https://203.0.113.200:8443/hook",     // TEST-NET-3
		"https://[2001:db8::1]/",              // IPv6 documentation
		"https://[2001:db8::1]:8443/hook",     // with a port
		"https://127.0.0.1/hook",              // loopback
		"https://169.254.169.254/latest/",     // cloud metadata
		"https://10.1.2.3/hook",               // private
		"https://[::ffff:127.0.0.1]/hook",     // IPv4-mapped loopback
		"https://[fd00:ec2::254]/",            // AWS IPv6 metadata
		"https://[64:ff9b::a9fe:a9fe]/hook",   // NAT64 of the metadata address
		"https://[fe80::1%25eth0]/hook",       // link-local with a zone
		"https://0.0.0.0/hook",                // unspecified
		"https://[fec0::1]/hook",              // site-local
		"https://[2001:2::1]/hook",            // benchmarking, in 2001::/23
		"https://[100::1]/hook",               // discard-only
		"https://[64:ff9b:1::a00:1]/hook",     // local-use translation
		"https://[::a00:1]/hook",              // IPv4-compatible
		"https://[2002:c000:0204::1]/hook",    // 6to4
		"https://255.255.255.255/hook",        // broadcast
		"https://100.64.0.1/hook",             // CGNAT
		"https://[ff02::1]/hook",              // multicast
		"https://[::1]:8080/hook",             // IPv6 loopback
		"https://[2606:4700:4700::1111]/hook", // public: accepted
		"https://8.8.8.8/hook",                // public: accepted
	} {
		t.Run(u, func(t *testing.T) {
			r := s.whAdmin(http.MethodPost, "/api/webhooks", whJSON(t, map[string]any{"name": "n", "url": u, "events": []string{"all"}}))
			switch u {
			case "https://[2606:4700:4700::1111]/hook", "https://8.8.8.8/hook":
				assert.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
				return
			}
			require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
			details := whDetails(t, r.JSON(t))
			require.Len(t, details["url"], 1, "details: %v", details)
			assert.Contains(t, details["url"][0], "is ", "the reason is given: %q", details["url"][0])
			assert.Len(t, details, 1, "only url is at fault: %v", details)
		})
	}
	// Refused whether enabled or not.
	r := s.whAdmin(http.MethodPost, "/api/webhooks", `{"name":"off","url":"https://192.0.2.10/hook","events":["all"],"enabled":false}`)
	assert.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
}

// TestWebhookAllowCIDRs: USERHOOK_WEBHOOK_ALLOW_CIDRS lets webhooks name, and deliveries reach, the ranges
// it lists, and nothing else; http:// stays for USERHOOK_WEBHOOK_ALLOW_PRIVATE.
func TestWebhookAllowCIDRs(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.WebhookAllowPrivate = false
	cfg.WebhookAllowCIDRs = "127.0.0.1/32, 192.0.2.0/24"
	cfg.DeliveryBackoff = "50ms"
	s := whStart(t, cfg)

	port, conns, _ := tlsReceiver(t, http.StatusNoContent)

	allowed := s.whHook("allowed loopback", "https://127.0.0.1:"+port+"/hook", "all")
	// Disabled: nothing listens on the documentation range, and a delivery would wait for its timeout.
	s.whCreate(map[string]any{"name": "allowed doc", "url": "https://192.0.2.10/hook", "events": []string{"all"}, "enabled": false})
	for u, want := range map[string]string{
		"https://10.0.0.1/hook":                  "10.0.0.1 is a private address",
		"https://127.0.0.2/hook":                 "127.0.0.2 is a loopback address",
		"https://[2001:db8::1]/hook":             "2001:db8::1 is reserved for documentation",
		"http://127.0.0.1:" + port + "/hook":     "should be a secure URL with HTTPS",
		"https://198.51.100.1:" + port + "/hook": "198.51.100.1 is reserved for documentation (TEST-NET-2",
	} {
		r := s.whAdmin(http.MethodPost, "/api/webhooks", whJSON(t, map[string]any{"name": "n", "url": u, "events": []string{"all"}}))
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", u, r.Body)
		details := whDetails(t, r.JSON(t))
		require.Len(t, details["url"], 1, "%s: %v", u, details)
		assert.Contains(t, details["url"][0], want, u)
	}

	// The delivery connects (the guard lets it through) and fails on the test server's self-signed
	// certificate: not refused.
	require.Equal(t, http.StatusOK, s.postUser("auth0|allow-cidrs", "allow@example.com").Status)
	d := s.whWaitDelivery(allowed.ID, func(d whDelivery) bool { return d.Attempts >= 1 }, "the delivery is attempted")
	assert.NotContains(t, d.Error, "refused", "an allowed address is connected to")
	assert.Contains(t, d.Error, "certificate")
	assert.Positive(t, conns.Load(), "the allowed receiver got a connection")
}

// TestConfigWebhookAllowCIDRs: the flag and its variable fill the setting, and Validate names every entry
// that is not a CIDR.
func TestConfigWebhookAllowCIDRs(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	assert.Empty(t, cfg.WebhookAllowCIDRs, "empty by default")
	env := map[string]string{"USERHOOK_WEBHOOK_ALLOW_CIDRS": "10.20.0.0/16,fd00:1234::/32"}
	cfg, err := parseServe(nil, env)
	require.NoError(t, err)
	assert.Equal(t, "10.20.0.0/16,fd00:1234::/32", cfg.WebhookAllowCIDRs)
	g, err := cfg.webhookGuard()
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("fd00:1234::/32")}, g.Allow)
	assert.False(t, g.AllowPrivate)

	cfg, err = parseServe([]string{"--webhook-allow-cidrs", " 10.1.2.3/8 , ", "--webhook-allow-private"}, env)
	require.NoError(t, err)
	g, err = cfg.webhookGuard()
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, g.Allow, "a flag wins; a prefix is masked; blanks are skipped")
	assert.True(t, g.AllowPrivate)

	cfg = testConfig(t)
	cfg.WebhookAllowCIDRs = "10.0.0.0/33,192.168.1.1,fd00::/8"
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `webhook-allow-cidrs: entry 1, "10.0.0.0/33", is not a CIDR`)
	assert.Contains(t, err.Error(), `webhook-allow-cidrs: entry 2, "192.168.1.1", is not a CIDR`)
	assert.NotContains(t, err.Error(), "fd00::/8")
	cfg.WebhookAllowCIDRs = "fd00::/8, 192.0.2.0/24"
	assert.NoError(t, cfg.Validate())
}
