package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/transport"
)

// End-to-end tests of the outbound webhooks (API.md, "Outbound webhooks"): the real server delivers to real
// HTTP receivers on 127.0.0.1.

// whWait bounds every asynchronous wait of these tests.
const whWait = 10 * time.Second

// whPoll is the tick of require.Eventually.
const whPoll = 10 * time.Millisecond

// whConfig is a test configuration whose deliveries may reach the loopback receivers of these tests and
// retry quickly.
func whConfig(t *testing.T) Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.WebhookAllowPrivate = true
	cfg.DeliveryBackoff = "100ms,200ms"
	return cfg
}

// whStart starts a server; when the test fails, its delivery log lines are printed.
func whStart(t *testing.T, cfg Config) *testServer {
	t.Helper()
	s := startServer(t, cfg)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(line, "deliver") || strings.Contains(line, "ERROR") || strings.Contains(line, "WARN") {
				t.Log(line)
			}
		}
	})
	return s
}

// whHit is one request a receiver got.
type whHit struct {
	At     time.Time
	Method string
	Header http.Header
	Body   []byte
}

// whAnswer is what a receiver replies.
type whAnswer struct {
	Status     int
	RetryAfter string
	Body       string
}

// whReply decides the answer to the n-th request (1-based).
type whReply func(n int, h whHit) whAnswer

// whAlways answers every request with status.
func whAlways(status int) whReply {
	return func(int, whHit) whAnswer { return whAnswer{Status: status} }
}

// whReceiver is a webhook endpoint on 127.0.0.1 that records what it gets.
type whReceiver struct {
	srv   *httptest.Server
	URL   string
	mu    sync.Mutex
	hits  []whHit
	reply whReply
}

func newWhReceiver(t *testing.T, reply whReply) *whReceiver {
	t.Helper()
	r := &whReceiver{reply: reply}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL + "/hook"
	t.Cleanup(r.srv.Close)
	return r
}

func (r *whReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	h := whHit{At: time.Now(), Method: req.Method, Header: req.Header.Clone(), Body: body}
	r.mu.Lock()
	r.hits = append(r.hits, h)
	n, reply := len(r.hits), r.reply
	r.mu.Unlock()
	a := reply(n, h)
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	w.WriteHeader(a.Status)
	_, _ = io.WriteString(w, a.Body)
}

// setReply changes how the receiver answers from now on.
func (r *whReceiver) setReply(reply whReply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reply = reply
}

// got is a copy of the requests so far.
func (r *whReceiver) got() []whHit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]whHit(nil), r.hits...)
}

// wait waits until the receiver got at least n requests and returns them.
func (r *whReceiver) wait(t *testing.T, n int) []whHit {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.got()) >= n }, whWait, whPoll, "the receiver gets %d requests", n)
	return r.got()
}

// whWebhook is a webhook as the API shows it.
type whWebhook struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	URL            string    `json:"url"`
	Events         []string  `json:"events"`
	Enabled        bool      `json:"enabled"`
	ContentType    string    `json:"contentType"`
	Secrets        []string  `json:"secrets"`
	DisabledReason string    `json:"disabledReason"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// whDelivery is a delivery as the API shows it.
type whDelivery struct {
	ID             string     `json:"id"`
	WebhookID      string     `json:"webhookId"`
	EventID        string     `json:"eventId"`
	EventType      string     `json:"eventType"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	ResponseStatus *int       `json:"responseStatus"`
	ResponseBody   string     `json:"responseBody"`
	Error          string     `json:"error"`
	CreatedAt      time.Time  `json:"createdAt"`
	LastAttemptAt  *time.Time `json:"lastAttemptAt"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt"`
}

type whDeliveryPage struct {
	Data       []whDelivery `json:"data"`
	NextCursor *string      `json:"nextCursor"`
}

// whAdmin sends an authenticated request with the admin key.
func (s *testServer) whAdmin(method, path, body string) response {
	s.t.Helper()
	return s.authed(method, path, body, adminKey)
}

// whFetch GETs path with the admin key and decodes the JSON body into out; it never fails the test, so
// it can run inside require.Eventually's condition (another goroutine).
func whFetch(base, path string, out any) (int, error) {
	tok, err := transport.SignToken(transport.TokenRequest{Secret: []byte(testSecret), Subject: "test", TTL: time.Hour})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-API-Key", adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, json.Unmarshal(b, out)
}

// whCreate POSTs a webhook and requires a 201.
func (s *testServer) whCreate(fields map[string]any) whWebhook {
	s.t.Helper()
	b, err := json.Marshal(fields)
	require.NoError(s.t, err)
	r := s.whAdmin(http.MethodPost, "/api/webhooks", string(b))
	require.Equal(s.t, http.StatusCreated, r.Status, "body: %s", r.Body)
	var out struct{ Data whWebhook }
	require.NoError(s.t, json.Unmarshal(r.Body, &out), "body: %s", r.Body)
	require.NotEmpty(s.t, out.Data.ID)
	return out.Data
}

// whHook creates an enabled webhook named name for url and events.
func (s *testServer) whHook(name, url string, events ...string) whWebhook {
	s.t.Helper()
	return s.whCreate(map[string]any{"name": name, "url": url, "events": events})
}

// whGet GETs one webhook and requires a 200.
func (s *testServer) whGet(id string) whWebhook {
	s.t.Helper()
	var out struct{ Data whWebhook }
	_, err := whFetch(s.URL, "/api/webhooks/"+url.PathEscape(id), &out)
	require.NoError(s.t, err)
	return out.Data
}

// whDeliveries is the first page (up to 100) of a webhook's deliveries with an optional query.
func (s *testServer) whDeliveries(id, query string) []whDelivery {
	s.t.Helper()
	page, err := s.whTryDeliveries(id, query)
	require.NoError(s.t, err)
	return page.Data
}

func (s *testServer) whTryDeliveries(id, query string) (whDeliveryPage, error) {
	var page whDeliveryPage
	path := "/api/webhooks/" + url.PathEscape(id) + "/deliveries?limit=100"
	if query != "" {
		path = "/api/webhooks/" + url.PathEscape(id) + "/deliveries?" + query
	}
	_, err := whFetch(s.URL, path, &page)
	return page, err
}

// whWaitDelivery waits until the webhook has exactly one delivery and cond holds for it, and returns it.
func (s *testServer) whWaitDelivery(id string, cond func(whDelivery) bool, msg string) whDelivery {
	s.t.Helper()
	var mu sync.Mutex
	var last whDelivery
	seen := func() whDelivery { mu.Lock(); defer mu.Unlock(); return last }
	ok := assert.Eventually(s.t, func() bool {
		page, err := s.whTryDeliveries(id, "")
		if err != nil || len(page.Data) != 1 {
			return false
		}
		mu.Lock()
		last = page.Data[0]
		mu.Unlock()
		return cond(page.Data[0])
	}, whWait, whPoll, msg)
	require.True(s.t, ok, "%s; last seen: %+v", msg, seen())
	return seen()
}

// whSettled waits until the server has done all it will do with the events stored so far: the delivery
// consumer's checkpoint has reached the store's last position, so every delivery of those events exists (a
// delivery is made in the transaction that moves the checkpoint past its event), and no delivery is pending,
// so each was sent for the last time and its outcome recorded. What a receiver has not got by then, it never
// gets: tests assert that something did not happen after this, not after a sleep.
func (s *testServer) whSettled() {
	s.t.Helper()
	ctx := context.Background()
	last, err := s.Main.storage.events.LastPosition(ctx)
	require.NoError(s.t, err)
	require.Eventually(s.t, func() bool {
		done, err := s.Main.storage.hooks.Checkpoint(ctx, delivery.ConsumerName)
		if err != nil || done < last {
			return false
		}
		pending, err := s.Main.storage.hooks.Pending(ctx)
		return err == nil && pending == 0
	}, whWait, whPoll, "every delivery of the events up to position %d is made and sent for the last time", last)
}

func whFinal(d whDelivery) bool {
	return d.Status == "succeeded" || d.Status == "failed"
}

// whDetails groups the details of a 400 by field.
func whDetails(t *testing.T, body map[string]any) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	details, ok := body["details"].([]any)
	require.True(t, ok, "details: %v", body["details"])
	for _, d := range details {
		m, ok := d.(map[string]any)
		require.True(t, ok)
		field, _ := m["field"].(string)
		msg, _ := m["message"].(string)
		out[field] = append(out[field], msg)
	}
	return out
}

// whKeys is the sorted keys of a JSON object.
func whKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// whsecKey is the HMAC key of a whsec_ secret: the base64 after the prefix.
func whsecKey(t *testing.T, secret string) []byte {
	t.Helper()
	raw, ok := strings.CutPrefix(secret, "whsec_")
	require.True(t, ok, "secret %q has the whsec_ prefix", secret)
	key, err := base64.StdEncoding.DecodeString(raw)
	require.NoError(t, err, "the secret after whsec_ is base64")
	return key
}

// whSignature is the Standard Webhooks v1 signature of a message, computed here with crypto/hmac.
func whSignature(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// assertWhSigned checks the Standard Webhooks headers of a request: one valid v1 signature per secret, in order.
func assertWhSigned(t *testing.T, h whHit, secrets ...string) {
	t.Helper()
	id := h.Header.Get("webhook-id")
	ts := h.Header.Get("webhook-timestamp")
	assert.NotEmpty(t, id, "webhook-id")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if assert.NoError(t, err, "webhook-timestamp %q is Unix seconds", ts) {
		assert.WithinDuration(t, time.Now(), time.Unix(sec, 0), 5*time.Second, "webhook-timestamp is about now")
		assert.WithinDuration(t, h.At, time.Unix(sec, 0), 2*time.Second, "webhook-timestamp is when it was sent")
	}
	sigs := strings.Fields(h.Header.Get("webhook-signature"))
	require.Len(t, sigs, len(secrets), "one signature per secret: %q", h.Header.Get("webhook-signature"))
	for i, secret := range secrets {
		assert.True(t, strings.HasPrefix(sigs[i], "v1,"), "signature %q is v1", sigs[i])
		want := whSignature(whsecKey(t, secret), id, ts, h.Body)
		assert.True(t, hmac.Equal([]byte(want), []byte(sigs[i])), "signature %d is valid for secret %d", i, i)
	}
}

// whCloudEvent decodes a delivered body.
func whCloudEvent(t *testing.T, h whHit) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(h.Body, &m), "body: %s", h.Body)
	return m
}

// whPosition is data.event.position of a delivered CloudEvent.
func whPosition(ce map[string]any) float64 {
	data, _ := ce["data"].(map[string]any)
	event, _ := data["event"].(map[string]any)
	pos, _ := event["position"].(float64)
	return pos
}

// whCEUser is data.user of a delivered CloudEvent.
func whCEUser(t *testing.T, ce map[string]any) map[string]any {
	t.Helper()
	data, _ := ce["data"].(map[string]any)
	user, _ := data["user"].(map[string]any)
	require.NotNil(t, user, "data.user in %v", ce)
	return user
}

// --- 1. CRUD, validation, roles ---

func TestWebhookCRUD(t *testing.T) {
	t.Parallel()
	s := whStart(t, testConfig(t)) // private addresses not allowed: URLs must be https

	before := time.Now().Add(-time.Second)
	r := s.whAdmin(http.MethodPost, "/api/webhooks",
		`{"name":"users","url":"https://example.com/hook","events":["user.created","user.updated"]}`)
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	data, ok := r.JSON(t)["data"].(map[string]any)
	require.True(t, ok, "body: %s", r.Body)
	assert.Equal(t, []string{"contentType", "createdAt", "enabled", "events", "id", "name", "secrets", "updatedAt", "url"}, whKeys(data))
	var created whWebhook
	require.NoError(t, json.Unmarshal(whMarshal(t, data), &created))
	assert.NotEmpty(t, created.ID)
	assert.Equal(t, "users", created.Name)
	assert.Equal(t, "https://example.com/hook", created.URL)
	assert.Equal(t, []string{"user.created", "user.updated"}, created.Events)
	assert.True(t, created.Enabled, "enabled by default")
	assert.Equal(t, "application/json", created.ContentType)
	require.Len(t, created.Secrets, 1, "one secret is generated")
	generated := created.Secrets[0]
	assert.True(t, strings.HasPrefix(generated, "whsec_"), "generated secret %q", generated)
	assert.GreaterOrEqual(t, len(whsecKey(t, generated)), 16, "the generated key has at least 16 bytes")
	assert.NotContains(t, generated, "…", "the create response shows the secret in full")
	assert.WithinDuration(t, time.Now(), created.CreatedAt, 5*time.Second)
	assert.True(t, created.CreatedAt.After(before), "createdAt %v is now", created.CreatedAt)
	assert.False(t, created.UpdatedAt.IsZero())

	s1, _ := newWhsec(t)
	s2, _ := newWhsec(t)
	second := s.whCreate(map[string]any{"name": "two secrets", "url": "https://example.org/h", "events": []string{"all"},
		"enabled": false, "contentType": "application/cloudevents+json", "secrets": []string{s1, s2}})
	assert.Equal(t, []string{s1, s2}, second.Secrets, "given secrets are kept and shown in full at creation")
	assert.False(t, second.Enabled)
	assert.Equal(t, "application/cloudevents+json", second.ContentType)
	assert.Equal(t, []string{"all"}, second.Events)
	allSecrets := []string{generated, s1, s2}

	assertMasked := func(t *testing.T, w whWebhook, n int) {
		t.Helper()
		require.Len(t, w.Secrets, n)
		for _, m := range w.Secrets {
			assert.True(t, strings.HasPrefix(m, "whsec_"), "masked secret %q", m)
			for _, full := range allSecrets {
				assert.NotEqual(t, full, m)
			}
		}
	}

	t.Run("list and get mask the secrets", func(t *testing.T) {
		r := s.whAdmin(http.MethodGet, "/api/webhooks", "")
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		for _, full := range allSecrets {
			assert.NotContains(t, string(r.Body), full, "the list never shows a full secret")
			assert.NotContains(t, string(r.Body), strings.TrimPrefix(full, "whsec_"))
		}
		var list struct{ Data []whWebhook }
		require.NoError(t, json.Unmarshal(r.Body, &list))
		require.Len(t, list.Data, 2)
		byID := map[string]whWebhook{}
		for _, w := range list.Data {
			byID[w.ID] = w
		}
		require.Contains(t, byID, created.ID)
		require.Contains(t, byID, second.ID)
		assertMasked(t, byID[created.ID], 1)
		assertMasked(t, byID[second.ID], 2)
		assert.Equal(t, "users", byID[created.ID].Name)

		g := s.whAdmin(http.MethodGet, "/api/webhooks/"+created.ID, "")
		require.Equal(t, http.StatusOK, g.Status, "body: %s", g.Body)
		assert.NotContains(t, string(g.Body), strings.TrimPrefix(generated, "whsec_"))
		got := s.whGet(created.ID)
		assertMasked(t, got, 1)
		assert.Equal(t, created.Name, got.Name)
		assert.Equal(t, created.URL, got.URL)
		assert.Equal(t, created.Events, got.Events)
		assert.Equal(t, created.Enabled, got.Enabled)
		assert.Equal(t, created.ContentType, got.ContentType)
		assert.True(t, created.CreatedAt.Equal(got.CreatedAt), "createdAt %v vs %v", created.CreatedAt, got.CreatedAt)
	})

	t.Run("patch", func(t *testing.T) {
		r := s.whAdmin(http.MethodPatch, "/api/webhooks/"+created.ID,
			`{"name":"renamed","url":"https://example.net/new","events":["all"],"enabled":false}`)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		assert.NotContains(t, string(r.Body), strings.TrimPrefix(generated, "whsec_"), "a patch without secrets shows them masked")
		var patched struct{ Data whWebhook }
		require.NoError(t, json.Unmarshal(r.Body, &patched))
		assert.Equal(t, created.ID, patched.Data.ID)
		assert.Equal(t, "renamed", patched.Data.Name)
		assert.Equal(t, "https://example.net/new", patched.Data.URL)
		assert.Equal(t, []string{"all"}, patched.Data.Events)
		assert.False(t, patched.Data.Enabled)
		assertMasked(t, patched.Data, 1)
		assert.True(t, created.CreatedAt.Equal(patched.Data.CreatedAt), "createdAt is kept")
		assert.False(t, patched.Data.UpdatedAt.Before(created.UpdatedAt), "updatedAt moves forward")

		got := s.whGet(created.ID)
		assert.Equal(t, "renamed", got.Name)
		assert.Equal(t, []string{"all"}, got.Events)
		assert.False(t, got.Enabled)

		rotated, _ := newWhsec(t)
		allSecrets = append(allSecrets, rotated)
		r = s.whAdmin(http.MethodPatch, "/api/webhooks/"+created.ID, `{"secrets":["`+generated+`","`+rotated+`"]}`)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.NoError(t, json.Unmarshal(r.Body, &patched))
		assert.Equal(t, []string{generated, rotated}, patched.Data.Secrets, "a patch that sets secrets shows them in full")
		assert.Equal(t, "renamed", patched.Data.Name, "fields not sent are kept")
		got = s.whGet(created.ID)
		assertMasked(t, got, 2)

		bad := s.whAdmin(http.MethodPatch, "/api/webhooks/"+created.ID, `{"url":"http://example.com/plain","events":[]}`)
		fields := whDetails(t, assertErrorBody(t, bad, http.StatusBadRequest))
		assert.Equal(t, []string{"should be a secure URL with HTTPS"}, fields["url"])
		assert.Contains(t, fields, "events")
		assert.Equal(t, "https://example.net/new", s.whGet(created.ID).URL, "a refused patch changes nothing")

		assertErrorBody(t, s.whAdmin(http.MethodPatch, "/api/webhooks/wh_nope", `{"name":"x"}`), http.StatusNotFound)
	})

	t.Run("delete", func(t *testing.T) {
		r := s.whAdmin(http.MethodDelete, "/api/webhooks/"+second.ID, "")
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		assertErrorBody(t, s.whAdmin(http.MethodGet, "/api/webhooks/"+second.ID, ""), http.StatusNotFound)
		assertErrorBody(t, s.whAdmin(http.MethodDelete, "/api/webhooks/"+second.ID, ""), http.StatusNotFound)
		assertErrorBody(t, s.whAdmin(http.MethodGet, "/api/webhooks/"+second.ID+"/deliveries", ""), http.StatusNotFound)
		var list struct{ Data []whWebhook }
		require.NoError(t, json.Unmarshal(s.whAdmin(http.MethodGet, "/api/webhooks", "").Body, &list))
		require.Len(t, list.Data, 1)
		assert.Equal(t, created.ID, list.Data[0].ID)
	})

	t.Run("validation reports every fault at once", func(t *testing.T) {
		good, _ := newWhsec(t)
		r := s.whAdmin(http.MethodPost, "/api/webhooks", whJSON(t, map[string]any{
			"name": "  ", "url": "http://example.com/hook", "events": []string{},
			"secrets": []string{good, good, "not-a-secret"},
		}))
		body := assertErrorBody(t, r, http.StatusBadRequest)
		fields := whDetails(t, body)
		assert.Contains(t, fields, "name", "empty name: %v", fields)
		assert.Equal(t, []string{"should be a secure URL with HTTPS"}, fields["url"])
		if assert.Contains(t, fields, "events") {
			assert.Contains(t, fields["events"][0], "at least 1")
		}
		if assert.Contains(t, fields, "secrets") {
			assert.Contains(t, fields["secrets"][0], "no more than 2")
		}
		assert.Contains(t, fields, "secrets[2]", "the bad secret: %v", fields)
		assert.NotContains(t, fields, "secrets[0]")
		assert.NotContains(t, string(r.Body), good, "a secret is never quoted back")

		r = s.whAdmin(http.MethodPost, "/api/webhooks", `{"name":"x","url":"https://example.com","events":["user.created","user.nope"],"contentType":"text/xml"}`)
		fields = whDetails(t, assertErrorBody(t, r, http.StatusBadRequest))
		if assert.Len(t, fields["events"], 1, "%v", fields) {
			assert.Contains(t, fields["events"][0], "user.nope")
		}
		assert.Contains(t, fields, "contentType")
		assert.Len(t, fields, 2, "%v", fields)

		r = s.whAdmin(http.MethodPost, "/api/webhooks", `{"name":5,"url":"https://example.com","events":"user.created","enabled":"yes","secret":"whsec_x"}`)
		fields = whDetails(t, assertErrorBody(t, r, http.StatusBadRequest))
		assert.Equal(t, []string{"must be a string"}, fields["name"])
		assert.Contains(t, fields, "events", "wrong type: %v", fields)
		assert.Contains(t, fields, "enabled", "wrong type: %v", fields)
		assert.Equal(t, []string{"unknown field"}, fields["secret"])

		assertErrorBody(t, s.whAdmin(http.MethodPost, "/api/webhooks", `[]`), http.StatusBadRequest)
		assertErrorBody(t, s.whAdmin(http.MethodPost, "/api/webhooks", `{`), http.StatusBadRequest)

		var list struct{ Data []whWebhook }
		require.NoError(t, json.Unmarshal(s.whAdmin(http.MethodGet, "/api/webhooks", "").Body, &list))
		assert.Len(t, list.Data, 1, "no refused webhook was stored")
	})

	t.Run("validation reports decoding and setting faults together", func(t *testing.T) {
		r := s.whAdmin(http.MethodPost, "/api/webhooks", `{"name":"","url":"http://example.com","events":["user.nope"],"enabled":"yes","extra":1}`)
		fields := whDetails(t, assertErrorBody(t, r, http.StatusBadRequest))
		for _, f := range []string{"name", "url", "events", "enabled", "extra"} {
			assert.Contains(t, fields, f, "%v", fields)
		}
	})

	t.Run("roles", func(t *testing.T) {
		routes := []struct{ method, path, body string }{
			{http.MethodGet, "/api/webhooks", ""},
			{http.MethodPost, "/api/webhooks", `{"name":"x","url":"https://example.com","events":["all"]}`},
			{http.MethodGet, "/api/webhooks/" + created.ID, ""},
			{http.MethodPatch, "/api/webhooks/" + created.ID, `{"name":"hijacked"}`},
			{http.MethodDelete, "/api/webhooks/" + created.ID, ""},
			{http.MethodGet, "/api/webhooks/" + created.ID + "/deliveries", ""},
			{http.MethodPost, "/api/webhooks/deliveries/dlv_nope/retry", ""},
		}
		for _, rt := range routes {
			for _, key := range []string{ingestKey, readKey} {
				r := s.authed(rt.method, rt.path, rt.body, key)
				assertErrorBody(t, r, http.StatusForbidden)
			}
			r := s.do(rt.method, rt.path, rt.body, "Content-Type", "application/json")
			assertErrorBody(t, r, http.StatusUnauthorized)
			r = s.do(rt.method, rt.path, rt.body, "Content-Type", "application/json", "X-API-Key", adminKey)
			assertErrorBody(t, r, http.StatusUnauthorized)
		}
		got := s.whGet(created.ID)
		assert.Equal(t, "renamed", got.Name, "nothing was changed by a refused request")
		var list struct{ Data []whWebhook }
		require.NoError(t, json.Unmarshal(s.whAdmin(http.MethodGet, "/api/webhooks", "").Body, &list))
		assert.Len(t, list.Data, 1)
	})
}

// newWhsec returns a new whsec_ secret and its key bytes.
func newWhsec(t *testing.T) (string, []byte) {
	t.Helper()
	key := make([]byte, 24)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return "whsec_" + base64.StdEncoding.EncodeToString(key), key
}

// whJSON marshals v to a string.
func whJSON(t *testing.T, v any) string {
	t.Helper()
	return string(whMarshal(t, v))
}

// whStream is a user's stored events, straight from the store.
func (s *testServer) whStream(userID string) []eventstore.Event {
	s.t.Helper()
	evs, err := s.Main.storage.events.Load(context.Background(), userID)
	require.NoError(s.t, err)
	return evs
}

func whMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// --- 2. Signed CloudEvents ---

func TestWebhookDeliverySignedCloudEvent(t *testing.T) {
	t.Parallel()
	s := whStart(t, whConfig(t))
	one := newWhReceiver(t, whAlways(http.StatusOK))
	two := newWhReceiver(t, whAlways(http.StatusNoContent))
	wh1 := s.whHook("one secret", one.URL, "user.created")
	require.Len(t, wh1.Secrets, 1)
	sa, _ := newWhsec(t)
	sb, _ := newWhsec(t)
	wh2 := s.whCreate(map[string]any{"name": "two secrets", "url": two.URL, "events": []string{"user.created"}, "secrets": []string{sa, sb}})

	userID := "auth0|ce-1"
	require.Equal(t, http.StatusOK, s.postUser(userID, "ce1@example.com").Status)
	stored := s.whStream(userID)
	require.Len(t, stored, 1)
	ev := stored[0]

	h := one.wait(t, 1)[0]
	assert.Equal(t, http.MethodPost, h.Method)
	assert.Equal(t, "application/json", h.Header.Get("Content-Type"))
	assertWhSigned(t, h, wh1.Secrets[0])

	t.Run("a wrong secret does not verify", func(t *testing.T) {
		other, _ := newWhsec(t)
		sig := whSignature(whsecKey(t, other), h.Header.Get("webhook-id"), h.Header.Get("webhook-timestamp"), h.Body)
		assert.NotContains(t, strings.Fields(h.Header.Get("webhook-signature")), sig)
		tampered := append(bytes.Clone(h.Body), ' ')
		sig = whSignature(whsecKey(t, wh1.Secrets[0]), h.Header.Get("webhook-id"), h.Header.Get("webhook-timestamp"), tampered)
		assert.NotContains(t, strings.Fields(h.Header.Get("webhook-signature")), sig)
	})

	ce := whCloudEvent(t, h)
	assert.Equal(t, "1.0", ce["specversion"])
	assert.Equal(t, ev.ID, ce["id"], "the CloudEvent id is the stored event id")
	assert.Equal(t, "userhook", ce["source"])
	assert.Equal(t, "user.created", ce["type"])
	assert.Equal(t, userID, ce["subject"])
	assert.Equal(t, "application/json", ce["datacontenttype"])
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ce["time"]))
	if assert.NoError(t, err, "time %v is RFC 3339", ce["time"]) {
		assert.WithinDuration(t, ev.OccurredAt, at, time.Millisecond)
	}
	user := whCEUser(t, ce)
	assert.Equal(t, userID, user["userId"])
	assert.Equal(t, "ce1@example.com", user["email"])
	assert.Equal(t, "active", user["status"])
	assert.EqualValues(t, 1, user["version"])
	event, _ := ce["data"].(map[string]any)["event"].(map[string]any)
	require.NotNil(t, event, "data.event in %s", h.Body)
	assert.Equal(t, ev.Type, event["type"])
	assert.EqualValues(t, ev.Position, event["position"])
	assert.EqualValues(t, ev.Version, event["version"])
	assert.JSONEq(t, string(ev.Data), string(whMarshal(t, event["data"])))

	d := s.whWaitDelivery(wh1.ID, func(d whDelivery) bool { return d.Status == "succeeded" }, "the delivery succeeds")
	assert.Equal(t, h.Header.Get("webhook-id"), d.ID, "webhook-id is the delivery id")
	assert.Equal(t, wh1.ID, d.WebhookID)
	assert.Equal(t, ev.ID, d.EventID)
	assert.Equal(t, "user.created", d.EventType)
	assert.Equal(t, 1, d.Attempts)
	if assert.NotNil(t, d.ResponseStatus) {
		assert.Equal(t, http.StatusOK, *d.ResponseStatus)
	}
	assert.Empty(t, d.Error)
	assert.NotNil(t, d.LastAttemptAt)
	assert.Nil(t, d.NextAttemptAt)

	t.Run("two secrets give two valid signatures", func(t *testing.T) {
		h2 := two.wait(t, 1)[0]
		assertWhSigned(t, h2, sa, sb)
		assert.Equal(t, ev.ID, whCloudEvent(t, h2)["id"])
		d2 := s.whWaitDelivery(wh2.ID, func(d whDelivery) bool { return d.Status == "succeeded" }, "a 204 is a success")
		assert.Equal(t, h2.Header.Get("webhook-id"), d2.ID)
		assert.NotEqual(t, d.ID, d2.ID, "each webhook has its own delivery")
	})
}

// --- 3. Filters ---

func TestWebhookFilters(t *testing.T) {
	t.Parallel()
	s := whStart(t, whConfig(t))
	all := newWhReceiver(t, whAlways(http.StatusOK))
	deleted := newWhReceiver(t, whAlways(http.StatusOK))
	disabled := newWhReceiver(t, whAlways(http.StatusOK))
	updated := newWhReceiver(t, whAlways(http.StatusOK))
	whAll := s.whHook("all", all.URL, "all")
	whDeleted := s.whHook("deleted only", deleted.URL, "user.deleted")
	whDisabled := s.whCreate(map[string]any{"name": "disabled", "url": disabled.URL, "events": []string{"all"}, "enabled": false})
	whUpdated := s.whHook("updated only", updated.URL, "user.updated")

	userID := "auth0|filter-1"
	require.Equal(t, http.StatusOK, s.postUser(userID, "before@example.com").Status)
	require.Equal(t, http.StatusOK, s.postUser(userID, "after@example.com").Status)

	hits := all.wait(t, 2)
	require.Len(t, hits, 2)
	// Deliveries are sent concurrently, so they may arrive in any order: take them in event order.
	first, second := whCloudEvent(t, hits[0]), whCloudEvent(t, hits[1])
	if whPosition(first) > whPosition(second) {
		first, second = second, first
	}
	assert.Equal(t, "user.created", first["type"])
	assert.Equal(t, "before@example.com", whCEUser(t, first)["email"])
	assert.Equal(t, "user.updated", second["type"], "a new email through POST /users is user.updated")
	assert.Equal(t, "after@example.com", whCEUser(t, second)["email"], "the user's state after the event")
	assert.EqualValues(t, 2, whCEUser(t, second)["version"])

	uh := updated.wait(t, 1)
	assert.Equal(t, "user.updated", whCloudEvent(t, uh[0])["type"])

	// Every matching webhook's delivery of an event is created at once, so the others had their chance.
	require.Eventually(t, func() bool {
		page, err := s.whTryDeliveries(whAll.ID, "")
		return err == nil && len(page.Data) == 2
	}, whWait, whPoll)
	assert.Empty(t, s.whDeliveries(whDeleted.ID, ""), "user.deleted gets neither user.created nor user.updated")
	assert.Empty(t, s.whDeliveries(whDisabled.ID, ""), "a disabled webhook gets nothing")
	assert.Len(t, s.whDeliveries(whUpdated.ID, ""), 1, "user.updated gets only the update")

	late := newWhReceiver(t, whAlways(http.StatusOK))
	whLate := s.whHook("late", late.URL, "all")
	other := "auth0|filter-2"
	require.Equal(t, http.StatusOK, s.postUser(other, "other@example.com").Status)
	all.wait(t, 3)
	lh := late.wait(t, 1)
	assert.Equal(t, other, whCloudEvent(t, lh[0])["subject"], "a new webhook applies from the next event on")
	require.Eventually(t, func() bool {
		page, err := s.whTryDeliveries(whAll.ID, "")
		return err == nil && len(page.Data) == 3
	}, whWait, whPoll)

	s.whSettled()
	assert.Len(t, late.got(), 1, "the late webhook never gets the earlier events")
	assert.Len(t, s.whDeliveries(whLate.ID, ""), 1)
	assert.Empty(t, deleted.got())
	assert.Empty(t, disabled.got())
	assert.Len(t, updated.got(), 1)
	assert.Len(t, all.got(), 3)
	assert.Empty(t, s.whDeliveries(whDisabled.ID, ""))
}

// --- 4. Retries, the delivery log, Retry-After, 410, manual retry ---

func TestWebhookDeliveryRetriesThenFails(t *testing.T) {
	t.Parallel()
	cfg := whConfig(t)
	cfg.WebhookDisableAfter = 0
	s := whStart(t, cfg)
	longBody := "boom:" + strings.Repeat("x", 2000)
	rcv := newWhReceiver(t, func(int, whHit) whAnswer { return whAnswer{Status: http.StatusInternalServerError, Body: longBody} })
	wh := s.whHook("failing", rcv.URL, "all")

	require.Equal(t, http.StatusOK, s.postUser("auth0|retry-1", "retry@example.com").Status)
	d := s.whWaitDelivery(wh.ID, whFinal, "the delivery ends")
	hits := rcv.got()

	assert.Equal(t, "failed", d.Status)
	assert.Equal(t, 3, d.Attempts, "1 + len(backoff) attempts")
	require.Len(t, hits, 3, "the receiver got 1 + len(backoff) attempts")
	if assert.NotNil(t, d.ResponseStatus) {
		assert.Equal(t, http.StatusInternalServerError, *d.ResponseStatus)
	}
	assert.Equal(t, longBody[:1024], d.ResponseBody, "the response body is kept truncated")
	assert.NotEmpty(t, d.Error)
	assert.Contains(t, d.Error, "500")
	assert.NotNil(t, d.LastAttemptAt)
	assert.Nil(t, d.NextAttemptAt, "a failed delivery has no next attempt")
	for _, h := range hits {
		assert.Equal(t, d.ID, h.Header.Get("webhook-id"), "every attempt has the same webhook-id")
		assert.Equal(t, string(hits[0].Body), string(h.Body), "every attempt sends the same body")
	}
	// Backoff 100ms then 200ms, each ±20%.
	assert.GreaterOrEqual(t, hits[1].At.Sub(hits[0].At), 75*time.Millisecond, "first retry after ~100ms")
	assert.GreaterOrEqual(t, hits[2].At.Sub(hits[1].At), 155*time.Millisecond, "second retry after ~200ms")

	s.whSettled()
	assert.Len(t, rcv.got(), 3, "no attempt after the schedule is used up")
	assert.True(t, s.whGet(wh.ID).Enabled, "failing is not disabling when disable-after is 0")

	t.Run("status filter", func(t *testing.T) {
		failed := s.whDeliveries(wh.ID, "status=failed")
		require.Len(t, failed, 1)
		assert.Equal(t, d.ID, failed[0].ID)
		assert.Empty(t, s.whDeliveries(wh.ID, "status=succeeded"))
		assert.Empty(t, s.whDeliveries(wh.ID, "status=pending"))
		r := s.whAdmin(http.MethodGet, "/api/webhooks/"+wh.ID+"/deliveries?status=done", "")
		assert.Contains(t, whDetails(t, assertErrorBody(t, r, http.StatusBadRequest)), "status")
	})

	t.Run("manual retry", func(t *testing.T) {
		rcv.setReply(whAlways(http.StatusOK))
		r := s.whAdmin(http.MethodPost, "/api/webhooks/deliveries/"+d.ID+"/retry", "")
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		var out struct{ Data whDelivery }
		require.NoError(t, json.Unmarshal(r.Body, &out))
		assert.Equal(t, d.ID, out.Data.ID)
		assert.Equal(t, "succeeded", out.Data.Status)
		assert.Equal(t, 4, out.Data.Attempts)
		if assert.NotNil(t, out.Data.ResponseStatus) {
			assert.Equal(t, http.StatusOK, *out.Data.ResponseStatus)
		}
		assert.Empty(t, out.Data.Error)
		hits := rcv.got()
		require.Len(t, hits, 4, "the retry was sent now")
		assert.Equal(t, d.ID, hits[3].Header.Get("webhook-id"))
		assertWhSigned(t, hits[3], wh.Secrets...)

		logged := s.whDeliveries(wh.ID, "")
		require.Len(t, logged, 1)
		assert.Equal(t, "succeeded", logged[0].Status)
		assert.Equal(t, 4, logged[0].Attempts)
		assert.Empty(t, s.whDeliveries(wh.ID, "status=failed"))

		assertErrorBody(t, s.whAdmin(http.MethodPost, "/api/webhooks/deliveries/dlv_nope/retry", ""), http.StatusNotFound)
	})
}

// TestWebhookDeliveryBackoffSchedule: each retry comes after its backoff delay (±20% jitter), not later.
func TestWebhookDeliveryBackoffSchedule(t *testing.T) {
	t.Parallel()
	cfg := whConfig(t)
	cfg.WebhookDisableAfter = 0
	s := whStart(t, cfg)
	rcv := newWhReceiver(t, whAlways(http.StatusInternalServerError))
	wh := s.whHook("schedule", rcv.URL, "all")
	require.Equal(t, http.StatusOK, s.postUser("auth0|schedule-1", "schedule@example.com").Status)
	d := s.whWaitDelivery(wh.ID, whFinal, "the delivery ends")
	assert.Equal(t, 3, d.Attempts)
	hits := rcv.got()
	require.Len(t, hits, 3)
	// Backoff 100ms then 200ms, each at most +20%, plus room for scheduling.
	assert.Less(t, hits[1].At.Sub(hits[0].At), 120*time.Millisecond+150*time.Millisecond, "first retry after ~100ms")
	assert.Less(t, hits[2].At.Sub(hits[1].At), 240*time.Millisecond+150*time.Millisecond, "second retry after ~200ms")
}

func TestWebhookDeliveryLogPagination(t *testing.T) {
	t.Parallel()
	cfg := whConfig(t)
	cfg.DeliveryBackoff = "50ms"
	s := whStart(t, cfg)
	rcv := newWhReceiver(t, func(_ int, h whHit) whAnswer {
		if bytes.Contains(h.Body, []byte("auth0|fail")) {
			return whAnswer{Status: http.StatusBadGateway}
		}
		return whAnswer{Status: http.StatusOK}
	})
	wh := s.whHook("log", rcv.URL, "all")
	users := []string{"auth0|ok-1", "auth0|fail-1", "auth0|ok-2", "auth0|fail-2", "auth0|ok-3"}
	positions := map[string]int64{}
	for _, u := range users {
		r := s.postUser(u, strings.ReplaceAll(u[6:], "|", "")+"@example.com")
		require.Equal(t, http.StatusOK, r.Status)
		pos, err := strconv.ParseInt(r.Header.Get("X-Event-Position"), 10, 64)
		require.NoError(t, err)
		positions[s.whStream(u)[0].ID] = pos
	}
	require.Eventually(t, func() bool {
		page, err := s.whTryDeliveries(wh.ID, "")
		if err != nil || len(page.Data) != len(users) {
			return false
		}
		for _, d := range page.Data {
			if !whFinal(d) {
				return false
			}
		}
		return true
	}, whWait, whPoll, "every delivery ends")

	assert.Len(t, s.whDeliveries(wh.ID, "status=failed"), 2)
	assert.Len(t, s.whDeliveries(wh.ID, "status=succeeded"), 3)
	for _, d := range s.whDeliveries(wh.ID, "status=failed") {
		assert.Equal(t, "failed", d.Status)
		assert.Equal(t, 2, d.Attempts)
	}

	seen := map[string]int{}
	var order []int64
	cursor := ""
	pages := 0
	for {
		q := "limit=2"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		page, err := s.whTryDeliveries(wh.ID, q)
		require.NoError(t, err)
		pages++
		require.LessOrEqual(t, len(page.Data), 2)
		for _, d := range page.Data {
			seen[d.ID]++
			order = append(order, positions[d.EventID])
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
		require.Less(t, pages, 10, "pagination ends")
	}
	assert.Equal(t, 3, pages)
	assert.Len(t, seen, len(users), "every delivery is seen")
	for id, n := range seen {
		assert.Equal(t, 1, n, "delivery %s is seen once", id)
	}
	assert.True(t, sort.SliceIsSorted(order, func(i, j int) bool { return order[i] > order[j] }), "newest first: %v", order)

	r := s.whAdmin(http.MethodGet, "/api/webhooks/"+wh.ID+"/deliveries?cursor=garbage!", "")
	assert.Contains(t, whDetails(t, assertErrorBody(t, r, http.StatusBadRequest)), "cursor")
	r = s.whAdmin(http.MethodGet, "/api/webhooks/"+wh.ID+"/deliveries?limit=0&bogus=1", "")
	fields := whDetails(t, assertErrorBody(t, r, http.StatusBadRequest))
	assert.Contains(t, fields, "limit")
	assert.Contains(t, fields, "bogus")
}

func TestWebhookDeliveryRetryAfter(t *testing.T) {
	t.Parallel()
	s := whStart(t, whConfig(t))
	rcv := newWhReceiver(t, func(n int, _ whHit) whAnswer {
		if n == 1 {
			return whAnswer{Status: http.StatusTooManyRequests, RetryAfter: "1"}
		}
		return whAnswer{Status: http.StatusOK}
	})
	wh := s.whHook("slow down", rcv.URL, "user.created")
	require.Equal(t, http.StatusOK, s.postUser("auth0|ra-1", "ra@example.com").Status)

	rcv.wait(t, 1)
	// Right after the 429, the delivery waits for the receiver's Retry-After, not the 100ms backoff.
	pending := s.whWaitDelivery(wh.ID, func(d whDelivery) bool { return d.Attempts == 1 }, "the first attempt is recorded")
	if pending.Status == "pending" && assert.NotNil(t, pending.NextAttemptAt) && assert.NotNil(t, pending.LastAttemptAt) {
		assert.GreaterOrEqual(t, pending.NextAttemptAt.Sub(*pending.LastAttemptAt), 900*time.Millisecond)
	}
	if pending.ResponseStatus != nil {
		assert.Equal(t, http.StatusTooManyRequests, *pending.ResponseStatus)
	}

	hits := rcv.wait(t, 2)
	gap := hits[1].At.Sub(hits[0].At)
	assert.GreaterOrEqual(t, gap, 900*time.Millisecond, "Retry-After: 1 postpones the next attempt by a second")
	assert.Less(t, gap, whWait)
	d := s.whWaitDelivery(wh.ID, whFinal, "the delivery ends")
	assert.Equal(t, "succeeded", d.Status)
	assert.Equal(t, 2, d.Attempts)
}

func TestWebhookDeliveryGoneDisablesWebhook(t *testing.T) {
	t.Parallel()
	s := whStart(t, whConfig(t))
	rcv := newWhReceiver(t, whAlways(http.StatusGone))
	wh := s.whHook("gone", rcv.URL, "all")
	require.Equal(t, http.StatusOK, s.postUser("auth0|gone-1", "gone@example.com").Status)

	d := s.whWaitDelivery(wh.ID, whFinal, "the delivery ends")
	assert.Equal(t, "failed", d.Status, "410 fails the delivery")
	assert.Equal(t, 1, d.Attempts, "410 is not retried")
	if assert.NotNil(t, d.ResponseStatus) {
		assert.Equal(t, http.StatusGone, *d.ResponseStatus)
	}
	got := s.whGet(wh.ID)
	assert.False(t, got.Enabled, "410 Gone disables the webhook")
	assert.NotEmpty(t, got.DisabledReason)
	assert.Contains(t, got.DisabledReason, "410")

	s.whSettled()
	assert.Len(t, rcv.got(), 1, "no retry after a 410")

	// Enabling it again clears the reason.
	r := s.whAdmin(http.MethodPatch, "/api/webhooks/"+wh.ID, `{"enabled":true}`)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	got = s.whGet(wh.ID)
	assert.True(t, got.Enabled)
	assert.Empty(t, got.DisabledReason)
}

// --- 5. Auto-disable ---

func TestWebhookAutoDisable(t *testing.T) {
	t.Parallel()
	cfg := whConfig(t)
	cfg.DeliveryBackoff = "100ms,200ms,400ms"
	cfg.WebhookDisableAfter = 300 * time.Millisecond
	s := whStart(t, cfg)
	rcv := newWhReceiver(t, whAlways(http.StatusServiceUnavailable))
	wh := s.whHook("always failing", rcv.URL, "all")
	require.Equal(t, http.StatusOK, s.postUser("auth0|auto-1", "auto@example.com").Status)

	var got whWebhook
	require.Eventually(t, func() bool {
		var out struct{ Data whWebhook }
		if _, err := whFetch(s.URL, "/api/webhooks/"+wh.ID, &out); err != nil {
			return false
		}
		got = out.Data
		return !got.Enabled
	}, whWait, whPoll, "the webhook gets disabled")
	assert.NotEmpty(t, got.DisabledReason)
	assert.Contains(t, got.DisabledReason, "failed")

	d := s.whWaitDelivery(wh.ID, whFinal, "the delivery ends")
	assert.Equal(t, "failed", d.Status)
	hits := rcv.got()
	n := len(hits)
	require.GreaterOrEqual(t, n, 2, "it failed more than once before being disabled")
	assert.GreaterOrEqual(t, hits[n-1].At.Sub(hits[0].At), 250*time.Millisecond, "it failed for about 300ms before being disabled")

	// A disabled webhook gets no new deliveries.
	require.Equal(t, http.StatusOK, s.postUser("auth0|auto-2", "auto2@example.com").Status)
	s.whSettled()
	assert.Len(t, rcv.got(), n)
	assert.Len(t, s.whDeliveries(wh.ID, ""), 1)
}

// --- 6 and 8. A restart resumes the retry schedule of pending deliveries ---

func TestWebhookDeliveryResumesAfterRestart(t *testing.T) {
	t.Parallel()
	cfg := whConfig(t)
	cfg.DeliveryBackoff = "1s,1s,1s"
	var failing atomic.Bool
	failing.Store(true)
	firstAttempt := make(chan struct{}, 1)
	rcv := newWhReceiver(t, func(int, whHit) whAnswer {
		if failing.Load() {
			select {
			case firstAttempt <- struct{}{}:
			default:
			}
			return whAnswer{Status: http.StatusInternalServerError}
		}
		return whAnswer{Status: http.StatusOK}
	})

	s1 := whStart(t, cfg)
	wh := s1.whHook("resumed", rcv.URL, "all")
	require.Equal(t, http.StatusOK, s1.postUser("auth0|restart-1", "restart@example.com").Status)
	select {
	case <-firstAttempt:
	case <-time.After(whWait):
		t.Fatal("the first attempt never came")
	}
	require.NoError(t, s1.Main.Close(), "stop right after the first attempt")
	require.Len(t, rcv.got(), 1, "one attempt before the restart")
	failing.Store(false)

	s2 := whStart(t, cfg)
	d := s2.whWaitDelivery(wh.ID, func(d whDelivery) bool { return d.Status == "succeeded" }, "the delivery resumes after the restart")
	assert.GreaterOrEqual(t, d.Attempts, 2)
	hits := rcv.got()
	require.Len(t, hits, 2)
	assert.Equal(t, hits[0].Header.Get("webhook-id"), hits[1].Header.Get("webhook-id"), "the same webhook-id on both attempts")
	assert.Equal(t, d.ID, hits[1].Header.Get("webhook-id"))
	assert.Equal(t, string(hits[0].Body), string(hits[1].Body))
	assertWhSigned(t, hits[1], wh.Secrets...)
	assert.GreaterOrEqual(t, hits[1].At.Sub(hits[0].At), 750*time.Millisecond, "the resumed schedule keeps its ~1s delay")

	s2.whSettled()
	assert.Len(t, rcv.got(), 2, "a succeeded delivery is not sent again")
}

// --- 7. SSRF guard ---

func TestWebhookDeliverySSRFGuard(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.WebhookAllowPrivate = false
	cfg.DeliveryBackoff = "50ms,50ms"
	s := whStart(t, cfg)

	port, conns, requests := tlsReceiver(t, http.StatusOK)

	// A literal address is refused at creation (TestWebhookCreationRefusesReservedLiterals); a name is judged
	// when a delivery connects.
	cases := []struct {
		name, url, want string
	}{
		{"localhost name", "https://localhost:" + port + "/", "is a loopback address"},
	}
	hooks := make([]whWebhook, len(cases))
	for i, c := range cases {
		hooks[i] = s.whHook(c.name, c.url, "all")
		assert.Equal(t, c.url, hooks[i].URL, "an https URL is accepted by the API")
	}
	require.Equal(t, http.StatusOK, s.postUser("auth0|ssrf-1", "ssrf@example.com").Status)

	for i, c := range cases {
		d := s.whWaitDelivery(hooks[i].ID, func(d whDelivery) bool { return d.Status == "failed" }, c.name+" fails")
		assert.Contains(t, d.Error, "refused", c.name)
		assert.Contains(t, d.Error, c.want, c.name)
		assert.Nil(t, d.ResponseStatus, "%s: nothing answered", c.name)
	}
	assert.Zero(t, requests.Load(), "the loopback receiver gets no request")
	assert.Zero(t, conns.Load(), "the loopback receiver gets no connection at all")
}

// TestWebhookDeliveryDoesNotFollowRedirects: a 3xx is the answer itself (a failure), never followed, so a
// receiver cannot bounce deliveries to another address.
func TestWebhookDeliveryDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	cfg := whConfig(t)
	cfg.DeliveryBackoff = "50ms"
	s := whStart(t, cfg)
	target := newWhReceiver(t, whAlways(http.StatusOK))
	bouncer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(bouncer.Close)
	wh := s.whHook("redirecting", bouncer.URL+"/hook", "all")
	require.Equal(t, http.StatusOK, s.postUser("auth0|redirect-1", "redirect@example.com").Status)

	d := s.whWaitDelivery(wh.ID, whFinal, "the delivery ends")
	assert.Equal(t, "failed", d.Status)
	if assert.NotNil(t, d.ResponseStatus) {
		assert.Equal(t, http.StatusTemporaryRedirect, *d.ResponseStatus)
	}
	assert.Contains(t, d.Error, "307")
	assert.Empty(t, target.got(), "the redirect target gets nothing")
}

// A rename or a new secret keeps what is already on its way to the webhook; a new target starts from the
// next event.
func TestWebhookPatchKeepsEventsInFlight(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.WebhookAllowPrivate = true
	s := startServer(t, cfg)
	r := s.authed(http.MethodPost, "/api/webhooks", `{"name":"a","url":"http://127.0.0.1:9/x","events":["all"]}`, adminKey)
	require.Equal(t, http.StatusCreated, r.Status)
	var created struct{ Data struct{ ID string } }
	require.NoError(t, json.Unmarshal(r.Body, &created))
	id := created.Data.ID
	from := func() int64 {
		w, err := s.Main.storage.hooks.Webhook(context.Background(), id)
		require.NoError(t, err)
		return w.FromPosition
	}
	require.Equal(t, int64(0), from())
	require.Equal(t, http.StatusOK, s.postUser("auth0|inflight", "f@example.com").Status)

	require.Equal(t, http.StatusOK, s.authed(http.MethodPatch, "/api/webhooks/"+id, `{"name":"renamed"}`, adminKey).Status)
	assert.Equal(t, int64(0), from(), "a rename keeps the events stored before it")
	require.Equal(t, http.StatusOK, s.authed(http.MethodPatch, "/api/webhooks/"+id, `{"events":["user.deleted"]}`, adminKey).Status)
	assert.Equal(t, int64(1), from(), "a new filter applies from the next event on")
}

// tlsReceiver is an HTTPS receiver on loopback answering status; it counts the connections and requests it
// gets, and returns its port.
func tlsReceiver(t *testing.T, status int) (port string, conns, requests *atomic.Int32) {
	t.Helper()
	conns, requests = new(atomic.Int32), new(atomic.Int32)
	rcv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.WriteHeader(status)
	}))
	rcv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	rcv.StartTLS()
	t.Cleanup(rcv.Close)
	_, port, err := net.SplitHostPort(rcv.Listener.Addr().String())
	require.NoError(t, err)
	return port, conns, requests
}
