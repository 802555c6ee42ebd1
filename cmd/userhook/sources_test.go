package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// End-to-end tests of the sources (API.md, "Sources"): the admin API and a provider's requests through the
// real server.

// createSource creates a source through the admin API and returns its data.
func createSource(t *testing.T, s *testServer, body string) map[string]any {
	t.Helper()
	r := s.authed(http.MethodPost, "/api/sources", body, adminKey)
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	return r.JSON(t)["data"].(map[string]any)
}

// oktaHook is an Okta event hook delivery of the given events, each [uuid, eventType, user id, login].
func oktaHook(events ...[4]string) string {
	var list []map[string]any
	for i, e := range events {
		list = append(list, map[string]any{
			"uuid": e[0], "published": time.Now().UTC().Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
			"eventType": e[1], "outcome": map[string]any{"result": "SUCCESS"},
			"target": []map[string]any{{"id": e[2], "type": "User", "alternateId": e[3], "displayName": "Ada Lovelace"}},
		})
	}
	b, _ := json.Marshal(map[string]any{"eventType": "com.okta.event_hook", "eventId": "hook-1",
		"eventTime": "2026-01-02T03:04:10Z", "data": map[string]any{"events": list}})
	return string(b)
}

func TestSourcesAdminAPI(t *testing.T) {
	s := startServer(t, testConfig(t))
	src := createSource(t, s, `{"name": "Okta production", "provider": "okta"}`)
	id := src["id"].(string)
	assert.True(t, strings.HasPrefix(id, "src_"))
	assert.Equal(t, "/sources/"+id, src["ingestPath"])
	assert.Equal(t, true, src["enabled"])
	secrets := src["secrets"].([]any)
	require.Len(t, secrets, 1, "a secret is generated for a provider that does not issue one")
	secret := secrets[0].(string)
	assert.GreaterOrEqual(t, len(secret), 32)

	got := s.authed(http.MethodGet, "/api/sources/"+id, "", adminKey)
	require.Equal(t, http.StatusOK, got.Status)
	assert.NotContains(t, string(got.Body), secret, "the secret is shown only when it is set")
	list := s.authed(http.MethodGet, "/api/sources", "", adminKey)
	assert.NotContains(t, string(list.Body), secret)
	assert.Contains(t, string(list.Body), id)

	// Every fault at once, in the documented shape.
	bad := s.authed(http.MethodPost, "/api/sources", `{"provider": "github", "secrets": ["a", "b", "c"], "color": 1}`, adminKey)
	require.Equal(t, http.StatusBadRequest, bad.Status)
	for _, field := range []string{`"name"`, `"provider"`, `"secrets"`, `"color"`} {
		assert.Contains(t, string(bad.Body), field)
	}
	clerk := s.authed(http.MethodPost, "/api/sources", `{"name": "Clerk", "provider": "clerk"}`, adminKey)
	assert.Equal(t, http.StatusBadRequest, clerk.Status, "Clerk issues the secret: it must be given")
	assert.Equal(t, http.StatusForbidden, s.authed(http.MethodPost, "/api/sources", `{"name": "x", "provider": "okta"}`, ingestKey).Status)

	// Disabled, the source answers as if it did not exist; enabled again, it answers.
	patched := s.authed(http.MethodPatch, "/api/sources/"+id, `{"name": "Okta (old)", "enabled": false}`, adminKey)
	require.Equal(t, http.StatusOK, patched.Status, "%s", patched.Body)
	assert.Equal(t, "Okta (old)", patched.JSON(t)["data"].(map[string]any)["name"])
	hook := oktaHook([4]string{"e-1", "user.lifecycle.create", "00u1", "ada@example.com"})
	assert.Equal(t, http.StatusNotFound, s.do(http.MethodPost, "/sources/"+id, hook, "Authorization", secret).Status)
	require.Equal(t, http.StatusOK, s.authed(http.MethodPatch, "/api/sources/"+id, `{"enabled": true}`, adminKey).Status)
	assert.Equal(t, http.StatusOK, s.do(http.MethodPost, "/sources/"+id, hook, "Authorization", secret).Status)

	// Rotation: two secrets, either authenticates; the answer shows both once.
	rotated := s.authed(http.MethodPatch, "/api/sources/"+id, `{"secrets": ["`+secret+`", "next-secret-0123456789abcdef"]}`, adminKey)
	require.Equal(t, http.StatusOK, rotated.Status)
	assert.Contains(t, string(rotated.Body), "next-secret-0123456789abcdef")
	next := oktaHook([4]string{"e-2", "user.lifecycle.create", "00u2", "bob@example.com"})
	assert.Equal(t, http.StatusOK, s.do(http.MethodPost, "/sources/"+id, next, "Authorization", "next-secret-0123456789abcdef").Status)

	require.Equal(t, http.StatusOK, s.authed(http.MethodDelete, "/api/sources/"+id, "", adminKey).Status)
	assert.Equal(t, http.StatusNotFound, s.authed(http.MethodGet, "/api/sources/"+id, "", adminKey).Status)
	assert.Equal(t, http.StatusNotFound, s.do(http.MethodPost, "/sources/"+id, hook, "Authorization", secret).Status)
	assert.NotContains(t, s.logs.String(), secret, "no secret in the log")
}

func TestSourceOktaEndToEnd(t *testing.T) {
	s := startServer(t, testConfig(t))
	src := createSource(t, s, `{"name": "Okta", "provider": "okta", "secrets": ["okta-authorization-value-0123"]}`)
	id, secret := src["id"].(string), "okta-authorization-value-0123"

	// Okta's one-time verification.
	v := s.do(http.MethodGet, "/sources/"+id, "", "Authorization", secret, "X-Okta-Verification-Challenge", "chal-42")
	require.Equal(t, http.StatusOK, v.Status, "%s", v.Body)
	assert.Equal(t, "chal-42", v.JSON(t)["verification"])

	hook := oktaHook(
		[4]string{"uuid-create", "user.lifecycle.create", "00uA", "ada@example.com"},
		[4]string{"uuid-deactivate", "user.lifecycle.deactivate", "00uA", "ada@example.com"},
		[4]string{"uuid-login", "user.session.start", "00uA", "ada@example.com"},
	)
	// A wrong Authorization stores nothing.
	wrong := s.do(http.MethodPost, "/sources/"+id, hook, "Authorization", "not-the-secret")
	assert.Equal(t, http.StatusUnauthorized, wrong.Status)
	assert.Equal(t, http.StatusNotFound, s.authed(http.MethodGet, "/users/00uA", "", readKey).Status)

	r := s.do(http.MethodPost, "/sources/"+id, hook, "Authorization", secret, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	results := r.JSON(t)["results"].([]any)
	require.Len(t, results, 3, "one result per event of data.events")
	statuses := []string{}
	for _, x := range results {
		statuses = append(statuses, x.(map[string]any)["status"].(string))
	}
	assert.Equal(t, []string{"applied", "applied", "ignored"}, statuses)

	require.Eventually(t, func() bool {
		u := s.authed(http.MethodGet, "/users/00uA", "", readKey)
		return u.Status == http.StatusOK && u.JSON(t)["status"] == "inactive"
	}, 5*time.Second, 20*time.Millisecond, "the deactivated user reads inactive")
	inactive := s.authed(http.MethodGet, "/users?status=inactive", "", readKey)
	assert.Contains(t, string(inactive.Body), "00uA")

	// Okta's retry, and 20 copies at once of a new delivery: each event applied once.
	again := s.do(http.MethodPost, "/sources/"+id, hook, "Authorization", secret)
	require.Equal(t, http.StatusOK, again.Status)
	for _, x := range again.JSON(t)["results"].([]any) {
		assert.Equal(t, "duplicate", x.(map[string]any)["status"])
	}
	react := oktaHook([4]string{"uuid-reactivate", "user.lifecycle.reactivate", "00uA", "ada@example.com"})
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := map[string]int{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.do(http.MethodPost, "/sources/"+id, react, "Authorization", secret)
			if r.Status != http.StatusOK {
				mu.Lock()
				count[fmt.Sprint(r.Status)]++
				mu.Unlock()
				return
			}
			var body struct {
				Results []struct{ Status string } `json:"results"`
			}
			_ = json.Unmarshal(r.Body, &body)
			mu.Lock()
			for _, x := range body.Results {
				count[x.Status]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	assert.Equal(t, map[string]int{"applied": 1, "duplicate": 19}, count)
	events := s.authed(http.MethodGet, "/users/00uA/events", "", readKey)
	require.Equal(t, http.StatusOK, events.Status)
	assert.Equal(t, 3, strings.Count(string(events.Body), `"type":"user.`), "registered, deactivated, reactivated: %s", events.Body)

	got := s.authed(http.MethodGet, "/api/sources/"+id, "", adminKey).JSON(t)["data"].(map[string]any)
	assert.NotNil(t, got["lastEventAt"], "the source's last event time is shown")
	text := string(s.do(http.MethodGet, "/metrics", "").Body)
	assert.Equal(t, 3.0, metric(t, text, `userhook_source_events_total{outcome="applied",source="`+id+`"}`))
	assert.Equal(t, 1.0, metric(t, text, `userhook_source_events_total{outcome="unauthorized",source="`+id+`"}`))
	assert.Equal(t, 1.0, metric(t, text, `userhook_source_events_total{outcome="ignored",source="`+id+`"}`))
	assert.NotContains(t, s.logs.String(), secret, "no secret in the log")
}
