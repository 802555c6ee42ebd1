package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBadInputCatalogue sends every kind of hostile or broken input to every ingest route and checks each is
// answered with the documented status and error body, and that nothing is stored. (Every JWT fault is in
// TestAuthenticationPostUsers, every signature fault in TestEventsSignatures; a few stand here too.)
func TestBadInputCatalogue(t *testing.T) {
	t.Parallel()
	secret, _ := webhookSecret(t)
	cfg := testConfig(t)
	cfg.WebhookSecrets = secret
	s := startServer(t, cfg)

	user := func(id, email string) string {
		return `{"detail":{"data":{"user_name":"` + email + `","user_id":"` + id + `"}}}`
	}
	ce := func(id, subject, email string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"s","type":"user.created","subject":"` + subject + `","data":{"email":"` + email + `"}}`
	}
	big := strings.Repeat("x", 1<<20)
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	const structured, batch = "application/cloudevents+json", "application/cloudevents-batch+json"
	cases := []struct {
		name, method, path, body, contentType string
		key                                   string // API key; "" sends no credentials at all
		status                                int
		field                                 string // a field named in details, when one must be
	}{
		// Credentials.
		{"no credentials", "POST", "/users", user("auth0|a", "a@example.com"), "application/json", "", 401, ""},
		{"bad signature and no pair", "POST", "/events", ce("e1", "u1", "a@example.com"), structured, "", 401, ""},
		{"read key on ingest", "POST", "/users", user("auth0|a", "a@example.com"), "application/json", readKey, 403, ""},
		// Sizes.
		{"users body over 1 MiB", "POST", "/users", `{"pad":"` + big + `"}`, "application/json", ingestKey, 413, ""},
		{"events body over 1 MiB", "POST", "/events", `{"pad":"` + big + `"}`, structured, ingestKey, 413, ""},
		{"webhook body over 1 MiB", "POST", "/api/webhooks", `{"name":"` + big + `"}`, "application/json", adminKey, 413, ""},
		// Broken JSON.
		{"truncated users JSON", "POST", "/users", `{"detail":{"data":{"user_name":"a@example.com"`, "application/json", ingestKey, 400, ""},
		{"truncated event JSON", "POST", "/events", `{"specversion":"1.0","id":"x"`, structured, ingestKey, 400, ""},
		{"non-UTF-8 users JSON", "POST", "/users", user("auth0|\xff\xfe", "a@example.com"), "application/json", ingestKey, 400, ""},
		{"non-UTF-8 event JSON", "POST", "/events", ce("e2", "u\xff", "a@example.com"), structured, ingestKey, 400, ""},
		{"duplicate keys in users JSON", "POST", "/users", `{"detail":{"data":{"user_name":"a@example.com","user_id":"auth0|a","user_id":"auth0|b"}}}`, "application/json", ingestKey, 400, ""},
		{"duplicate keys in an event", "POST", "/events", `{"specversion":"1.0","id":"e3","id":"e4","source":"s","type":"user.created","subject":"u"}`, structured, ingestKey, 400, ""},
		{"duplicate keys in a webhook", "POST", "/api/webhooks", `{"name":"a","name":"b","url":"https://example.com","events":["all"]}`, "application/json", adminKey, 400, ""},
		{"deeply nested users JSON", "POST", "/users", deep, "application/json", ingestKey, 400, ""},
		{"deeply nested event data", "POST", "/events", `{"specversion":"1.0","id":"e5","source":"s","type":"user.created","subject":"u","data":` + deep + `}`, structured, ingestKey, 400, ""},
		{"a JSON array for users", "POST", "/users", `[1,2]`, "application/json", ingestKey, 400, ""},
		// Content types.
		{"text/plain on users", "POST", "/users", user("auth0|a", "a@example.com"), "text/plain", ingestKey, 415, ""},
		{"form on users", "POST", "/users", "a=b", "application/x-www-form-urlencoded", ingestKey, 415, ""},
		{"xml on events", "POST", "/events", "<event/>", "application/xml", ingestKey, 415, ""},
		{"text/plain on webhooks", "POST", "/api/webhooks", `{}`, "text/plain", adminKey, 415, ""},
		{"json without ce- headers on events", "POST", "/events", `{"email":"a@example.com"}`, "application/json", ingestKey, 400, "ce-specversion"},
		// Ids and emails.
		{"very long user id", "POST", "/users", user("auth0|"+strings.Repeat("i", 10000), "a@example.com"), "application/json", ingestKey, 400, "user_id"},
		{"very long email", "POST", "/users", user("auth0|a", strings.Repeat("e", 300)+"@example.com"), "application/json", ingestKey, 400, "email"},
		{"very long subject", "POST", "/events", ce("e6", strings.Repeat("s", 10000), "a@example.com"), structured, ingestKey, 400, "subject"},
		{"control character in a user id", "POST", "/users", user(`auth0|a\u0001b`, "a@example.com"), "application/json", ingestKey, 400, "user_id"},
		{"newline in a user id", "POST", "/users", user(`auth0|a\nb`, "a@example.com"), "application/json", ingestKey, 400, "user_id"},
		{"DEL in a subject", "POST", "/events", ce("e7", `u\u007f`, "a@example.com"), structured, ingestKey, 400, "subject"},
		{"NUL in a name", "POST", "/events", `{"specversion":"1.0","id":"e8","source":"s","type":"user.created","subject":"u","data":{"name":"a\u0000b"}}`, structured, ingestKey, 400, "data.name"},
		// A batch is refused whole when one event is bad.
		{"batch with one bad event among good ones", "POST", "/events", `[` + ce("b1", "bu1", "ok@example.com") + `,` + ce("b2", "bu2", "not-an-email") + `,` + ce("b3", "bu3", "ok3@example.com") + `]`, batch, ingestKey, 400, "[1].data.email"},
		// Unknown query parameters.
		{"unknown parameter on users", "GET", "/users?colour=red", "", "", readKey, 400, "colour"},
		{"unknown parameter on a user", "GET", "/users/auth0%7Ca?expand=all", "", "", readKey, 400, "expand"},
		{"unknown parameter on the feed", "GET", "/api/events?after=3", "", "", readKey, 400, "after"},
		{"unknown parameter on deliveries", "GET", "/api/webhooks/wh_x/deliveries?sort=asc", "", "", adminKey, 400, "sort"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			if tc.contentType != "" {
				headers = append(headers, "Content-Type", tc.contentType)
			}
			if tc.key != "" {
				headers = append(headers, "Authorization", "Bearer "+token(t), "X-API-Key", tc.key)
			}
			r := s.do(tc.method, tc.path, tc.body, headers...)
			body := assertErrorBody(t, r, tc.status)
			if tc.field != "" {
				assert.Contains(t, detailFields(t, body), tc.field)
			}
		})
	}
	assert.Equal(t, 0, s.allEvents(), "no bad input stored an event")
	hooks := s.authed(http.MethodGet, "/api/webhooks", "", adminKey)
	require.Equal(t, http.StatusOK, hooks.Status)
	assert.JSONEq(t, `{"data":[]}`, string(hooks.Body), "no webhook was created")
}
