package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/standardwebhooks"
	"github.com/userhook/userhook/transport"
)

// The CloudEvents content types of POST /events.
const (
	ctStructured = "application/cloudevents+json"
	ctBatch      = "application/cloudevents-batch+json"
)

// ceEvent is a CloudEvent in structured JSON; empty attributes and nil data are left out.
func ceEvent(t *testing.T, id, source, typ, subject, at string, data any) map[string]any {
	t.Helper()
	ev := map[string]any{"specversion": "1.0"}
	for k, v := range map[string]string{"id": id, "source": source, "type": typ, "subject": subject, "time": at} {
		if v != "" {
			ev[k] = v
		}
	}
	if data != nil {
		ev["data"] = data
		ev["datacontenttype"] = "application/json"
	}
	return ev
}

// authpiEvent is AuthPI's envelope (seed 001) around an inner event.
func authpiEvent(t *testing.T, envID, envTime string, inner map[string]any) map[string]any {
	t.Helper()
	return ceEvent(t, envID, "com.authpi.webhooks/v1/wh_test", "event", "", envTime, inner)
}

// authpiInner is AuthPI's inner event; an empty at leaves its time out.
func authpiInner(id, typ, userID, at string, data map[string]any) map[string]any {
	in := map[string]any{"id": id, "type": typ, "trace": "tr-" + id, "source": "com.authpi/v1",
		"subject": map[string]any{"user_id": userID}}
	if at != "" {
		in["time"] = at
	}
	if data != nil {
		in["data"] = data
	}
	return in
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// postEvents posts a body to /events with the ingest key pair.
func (s *testServer) postEvents(body, contentType string, headers ...string) response {
	s.t.Helper()
	return s.authed(http.MethodPost, "/events", body, ingestKey, append([]string{"Content-Type", contentType}, headers...)...)
}

// postCE posts one structured CloudEvent with the ingest key pair.
func (s *testServer) postCE(ev map[string]any) response {
	s.t.Helper()
	return s.postEvents(mustJSON(s.t, ev), ctStructured)
}

// assertResults checks the whole 200 body of POST /events.
func assertResults(t *testing.T, r response, want ...ingest.Result) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.JSONEq(t, mustJSON(t, map[string]any{"success": true, "results": want}), string(r.Body))
}

func appliedResult(eventID, userID string, pos int64) ingest.Result {
	return ingest.Result{EventID: eventID, UserID: userID, Status: ingest.StatusApplied, Position: pos}
}

func duplicateResult(eventID, userID string) ingest.Result {
	return ingest.Result{EventID: eventID, UserID: userID, Status: ingest.StatusDuplicate}
}

func ignoredResult(eventID, userID, reason string) ingest.Result {
	return ingest.Result{EventID: eventID, UserID: userID, Status: ingest.StatusIgnored, Reason: reason}
}

// storedEvents is a user's stored events, metadata included, straight from the store.
func (s *testServer) storedEvents(userID string) []eventstore.Event {
	s.t.Helper()
	evs, err := s.Main.storage.events.Load(context.Background(), userID)
	require.NoError(s.t, err)
	return evs
}

// assertUser reads a user through the read model once it applied pos and compares the whole body.
func (s *testServer) assertUser(userID string, pos int64, want string) map[string]any {
	s.t.Helper()
	r := s.read("/users/" + url.PathEscape(userID) + "?minPosition=" + strconv.FormatInt(pos, 10))
	require.Equal(s.t, http.StatusOK, r.Status, "body: %s", r.Body)
	if want != "" {
		assert.JSONEq(s.t, want, string(r.Body))
	}
	return r.JSON(s.t)
}

// idempotencyKey is the id the store gives the first event raised by a provider event (source, id).
func idempotencyKey(source, id string) string {
	sum := sha256.Sum256([]byte(source + "\n" + id))
	return "ce_" + hex.EncodeToString(sum[:16])
}

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cloudevents", name))
	require.NoError(t, err)
	return string(b)
}

// TestEventsModes posts CloudEvents in structured, binary and batch mode, in AuthPI's shape and the plain
// envelope shape, and reads the users back through the read model.
func TestEventsModes(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))

	t.Run("structured AuthPI event applies the inner event at the envelope's time", func(t *testing.T) {
		r := s.postEvents(readFixture(t, "authpi-user-created.json"), ctStructured)
		assertResults(t, r, appliedResult("1234-1234-1234-1234", "user-1", 1))
		assert.Equal(t, "1", r.Header.Get("X-Event-Position"))
		s.assertUser("user-1", 1, `{"userId":"user-1","email":"user-1@example.com","emailVerified":false,
			"name":"Ada Lovelace","status":"active","profile":{"locale":"en-GB","plan":"pro"},
			"createdAt":"2024-01-01T03:21:36Z","updatedAt":"2024-01-01T03:21:36Z","version":1}`)

		evs := s.storedEvents("user-1")
		require.Len(t, evs, 1)
		e := evs[0]
		assert.Equal(t, aggregate.TypeUserRegistered, e.Type)
		assert.Equal(t, idempotencyKey("com.authpi/v1", "9876-9876-9876-9876"), e.ID, "the inner event identifies it")
		assert.Equal(t, time.Date(2024, 1, 1, 3, 21, 36, 0, time.UTC), e.OccurredAt.UTC())
		assert.True(t, strings.HasPrefix(e.Metadata["caller"], "apikey:"), "caller: %q", e.Metadata["caller"])
		assert.Equal(t, map[string]string{
			"ce_id": "1234-1234-1234-1234", "ce_source": "com.authpi.webhooks/v1/wh_01", "ce_type": "event",
			"inner_id": "9876-9876-9876-9876", "inner_source": "com.authpi/v1", "inner_type": "user.created",
			"trace": "abc123", "request_id": r.Header.Get("X-Request-Id"), "caller": e.Metadata["caller"],
		}, e.Metadata)
	})

	t.Run("structured AuthPI event with its own time applies that time", func(t *testing.T) {
		ev := authpiEvent(t, "env-2", "2024-03-01T00:00:00Z", authpiInner("in-2", "user.updated", "user-1",
			"2024-02-01T12:00:00Z", map[string]any{"name": "Ada King"}))
		assertResults(t, s.postCE(ev), appliedResult("env-2", "user-1", 2))
		s.assertUser("user-1", 2, `{"userId":"user-1","email":"user-1@example.com","emailVerified":false,
			"name":"Ada King","status":"active","profile":{"locale":"en-GB","plan":"pro"},
			"createdAt":"2024-01-01T03:21:36Z","updatedAt":"2024-02-01T12:00:00Z","version":2}`)
		evs := s.storedEvents("user-1")
		require.Len(t, evs, 2)
		assert.Equal(t, aggregate.TypeUserProfileUpdated, evs[1].Type)
		assert.Equal(t, time.Date(2024, 2, 1, 12, 0, 0, 0, time.UTC), evs[1].OccurredAt.UTC())
		assert.Equal(t, "env-2", evs[1].Metadata["ce_id"])
		assert.Equal(t, "com.authpi.webhooks/v1/wh_test", evs[1].Metadata["ce_source"])
		assert.Equal(t, "in-2", evs[1].Metadata["inner_id"])
		assert.Equal(t, "com.authpi/v1", evs[1].Metadata["inner_source"])
		assert.Equal(t, "tr-in-2", evs[1].Metadata["trace"])
	})

	t.Run("structured plain envelope applies its own type, subject and data", func(t *testing.T) {
		r := s.postEvents(readFixture(t, "structured-user-created.json"), ctStructured)
		assertResults(t, r, appliedResult("evt_2Z1Xk9", "user-2", 3))
		s.assertUser("user-2", 3, `{"userId":"user-2","email":"grace@example.com","emailVerified":true,
			"name":"Grace Hopper","status":"active","profile":{},
			"createdAt":"2024-01-03T11:00:00Z","updatedAt":"2024-01-03T11:00:00Z","version":1}`)
		evs := s.storedEvents("user-2")
		require.Len(t, evs, 1)
		assert.Equal(t, idempotencyKey("https://idp.example.com", "evt_2Z1Xk9"), evs[0].ID)
		meta := evs[0].Metadata
		assert.Equal(t, "evt_2Z1Xk9", meta["ce_id"])
		assert.Equal(t, "https://idp.example.com", meta["ce_source"])
		assert.Equal(t, "user.created", meta["ce_type"])
		for _, k := range []string{"inner_id", "inner_source", "inner_type", "trace"} {
			assert.NotContains(t, meta, k, "a plain envelope has no inner event")
		}
	})

	t.Run("binary mode reads the ce- headers and the body as data", func(t *testing.T) {
		r := s.postEvents(`{"email":"bin@example.com","email_verified":true,"name":"Bin Ary","team":"core"}`, "application/json",
			"ce-specversion", "1.0", "ce-id", "bin-1", "ce-source", "https://idp.example.com/bin",
			"ce-type", "user.created", "ce-subject", "user-bin", "ce-time", "2024-04-01T08:00:00Z")
		assertResults(t, r, appliedResult("bin-1", "user-bin", 4))
		assert.Equal(t, "4", r.Header.Get("X-Event-Position"))
		s.assertUser("user-bin", 4, `{"userId":"user-bin","email":"bin@example.com","emailVerified":true,
			"name":"Bin Ary","status":"active","profile":{"team":"core"},
			"createdAt":"2024-04-01T08:00:00Z","updatedAt":"2024-04-01T08:00:00Z","version":1}`)
		evs := s.storedEvents("user-bin")
		require.Len(t, evs, 1)
		assert.Equal(t, "bin-1", evs[0].Metadata["ce_id"])
		assert.Equal(t, "https://idp.example.com/bin", evs[0].Metadata["ce_source"])
		assert.Equal(t, "user.created", evs[0].Metadata["ce_type"])
	})

	t.Run("binary mode with AuthPI's inner event as the body", func(t *testing.T) {
		inner := authpiInner("in-bin-2", "user.created", "user-bin2", "", map[string]any{"email": "bin2@example.com"})
		r := s.postEvents(mustJSON(t, inner), "application/json",
			"ce-specversion", "1.0", "ce-id", "bin-2", "ce-source", "com.authpi.webhooks/v1/wh_bin",
			"ce-type", "event", "ce-time", "2024-04-02T08:00:00Z")
		assertResults(t, r, appliedResult("bin-2", "user-bin2", 5))
		s.assertUser("user-bin2", 5, `{"userId":"user-bin2","email":"bin2@example.com","emailVerified":false,
			"name":"","status":"active","profile":{},
			"createdAt":"2024-04-02T08:00:00Z","updatedAt":"2024-04-02T08:00:00Z","version":1}`)
		evs := s.storedEvents("user-bin2")
		require.Len(t, evs, 1)
		assert.Equal(t, "bin-2", evs[0].Metadata["ce_id"])
		assert.Equal(t, "com.authpi.webhooks/v1/wh_bin", evs[0].Metadata["ce_source"])
		assert.Equal(t, "in-bin-2", evs[0].Metadata["inner_id"])
		assert.Equal(t, "com.authpi/v1", evs[0].Metadata["inner_source"])
		assert.Equal(t, "tr-in-bin-2", evs[0].Metadata["trace"])
	})

	t.Run("batch mode answers one result per event, in order", func(t *testing.T) {
		r := s.postEvents(readFixture(t, "batch.json"), ctBatch)
		assertResults(t, r,
			appliedResult("evt_b1", "user-3", 6),
			ignoredResult("evt_b2", "org-1", ingest.ReasonUnsupportedType),
			appliedResult("evt_b3", "user-3", 7))
		assert.Equal(t, "7", r.Header.Get("X-Event-Position"))
		s.assertUser("user-3", 7, `{"userId":"user-3","email":"linus@example.com","emailVerified":false,
			"name":"Linus T.","status":"active","profile":{},
			"createdAt":"2024-01-04T08:00:00Z","updatedAt":"2024-01-04T08:00:02Z","version":2}`)
		assert.Equal(t, []string{aggregate.TypeUserRegistered, aggregate.TypeUserProfileUpdated}, s.events("user-3"))
		assert.Empty(t, s.storedEvents("org-1"), "an organization event raises nothing")
	})

	t.Run("batch mode with AuthPI events", func(t *testing.T) {
		batch := []any{
			authpiEvent(t, "env-b4", "2024-05-01T00:00:00Z", authpiInner("in-b4", "user.created", "user-4", "", map[string]any{"email": "four@example.com"})),
			authpiEvent(t, "env-b5", "2024-05-01T00:00:01Z", authpiInner("in-b5", "user.email_verified", "user-4", "", nil)),
		}
		r := s.postEvents(mustJSON(t, batch), ctBatch)
		assertResults(t, r, appliedResult("env-b4", "user-4", 8), appliedResult("env-b5", "user-4", 9))
		s.assertUser("user-4", 9, `{"userId":"user-4","email":"four@example.com","emailVerified":true,
			"name":"","status":"active","profile":{},
			"createdAt":"2024-05-01T00:00:00Z","updatedAt":"2024-05-01T00:00:01Z","version":2}`)
		evs := s.storedEvents("user-4")
		require.Len(t, evs, 2)
		assert.Equal(t, "env-b5", evs[1].Metadata["ce_id"])
		assert.Equal(t, "in-b5", evs[1].Metadata["inner_id"])
		assert.Equal(t, "user.email_verified", evs[1].Metadata["inner_type"])
	})
	assert.Equal(t, 9, s.allEvents())
}

// TestEventsStatuses walks one server through every status and reason of a result.
func TestEventsStatuses(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	const src = "https://idp.example.com"
	created := ceEvent(t, "evt-1", src, "user.created", "u1", "2024-06-01T10:00:00Z",
		map[string]any{"email": "u1@example.com", "name": "One"})

	t.Run("applied", func(t *testing.T) {
		assertResults(t, s.postCE(created), appliedResult("evt-1", "u1", 1))
		s.assertUser("u1", 1, `{"userId":"u1","email":"u1@example.com","emailVerified":false,"name":"One",
			"status":"active","profile":{},"createdAt":"2024-06-01T10:00:00Z","updatedAt":"2024-06-01T10:00:00Z","version":1}`)
	})
	t.Run("the same id and source again is a duplicate and stores nothing", func(t *testing.T) {
		assertResults(t, s.postCE(created), duplicateResult("evt-1", "u1"))
		assertResults(t, s.postCE(created), duplicateResult("evt-1", "u1"))
		assert.Equal(t, 1, s.allEvents())
	})
	t.Run("a duplicate is checked before deciding, whatever the copy says", func(t *testing.T) {
		changed := ceEvent(t, "evt-1", src, "user.updated", "u1", "2024-06-01T11:00:00Z", map[string]any{"name": "Changed"})
		assertResults(t, s.postCE(changed), duplicateResult("evt-1", "u1"))
		assert.Equal(t, 1, s.allEvents())
	})
	t.Run("the same id from another source is not a duplicate", func(t *testing.T) {
		other := ceEvent(t, "evt-1", "https://other.example.com", "user.updated", "u1", "2024-06-01T12:00:00Z",
			map[string]any{"name": "One Other"})
		assertResults(t, s.postCE(other), appliedResult("evt-1", "u1", 2))
		s.assertUser("u1", 2, `{"userId":"u1","email":"u1@example.com","emailVerified":false,"name":"One Other",
			"status":"active","profile":{},"createdAt":"2024-06-01T10:00:00Z","updatedAt":"2024-06-01T12:00:00Z","version":2}`)
	})
	t.Run("an unsupported type is ignored, then a duplicate", func(t *testing.T) {
		org := ceEvent(t, "org-evt-1", src, "organization.created", "org-1", "2024-06-01T12:00:00Z", map[string]any{"name": "Acme"})
		r := s.postCE(org)
		assertResults(t, r, ignoredResult("org-evt-1", "org-1", ingest.ReasonUnsupportedType))
		assert.Empty(t, r.Header.Get("X-Event-Position"))
		assertResults(t, s.postCE(org), duplicateResult("org-evt-1", "org-1"))
		assert.Equal(t, 2, s.allEvents())
	})
	t.Run("an unsupported inner AuthPI type is ignored", func(t *testing.T) {
		ev := authpiEvent(t, "env-org", "2024-06-01T12:00:00Z", authpiInner("in-org", "subscription.created", "u1", "", map[string]any{"plan": "pro"}))
		assertResults(t, s.postCE(ev), ignoredResult("env-org", "u1", ingest.ReasonUnsupportedType))
		assertResults(t, s.postCE(ev), duplicateResult("env-org", "u1"))
		assert.Equal(t, 2, s.allEvents())
	})
	t.Run("an event older than the last applied change is stale and leaves the user unchanged", func(t *testing.T) {
		old := ceEvent(t, "evt-old", src, "user.updated", "u1", "2024-06-01T11:59:59Z",
			map[string]any{"name": "Too Old", "email": "old@example.com"})
		r := s.postCE(old)
		assertResults(t, r, ignoredResult("evt-old", "u1", ingest.ReasonStale))
		assertResults(t, s.postCE(old), duplicateResult("evt-old", "u1"))
		assert.Equal(t, 2, s.allEvents())
		s.assertUser("u1", 2, `{"userId":"u1","email":"u1@example.com","emailVerified":false,"name":"One Other",
			"status":"active","profile":{},"createdAt":"2024-06-01T10:00:00Z","updatedAt":"2024-06-01T12:00:00Z","version":2}`)
	})
	t.Run("an update with identical attributes is no_change", func(t *testing.T) {
		same := ceEvent(t, "evt-same", src, "user.updated", "u1", "2024-06-01T13:00:00Z",
			map[string]any{"name": "One Other", "email": "u1@example.com"})
		r := s.postCE(same)
		assertResults(t, r, ignoredResult("evt-same", "u1", ingest.ReasonNoChange))
		assertResults(t, s.postCE(same), duplicateResult("evt-same", "u1"))
		assert.Equal(t, 2, s.allEvents())
	})
	t.Run("user.updated for a deleted user is ignored as deleted", func(t *testing.T) {
		del := ceEvent(t, "evt-del", src, "user.deleted", "u1", "2024-06-02T10:00:00Z", nil)
		assertResults(t, s.postCE(del), appliedResult("evt-del", "u1", 3))
		s.assertUser("u1", 3, `{"userId":"u1","email":"u1@example.com","emailVerified":false,"name":"One Other",
			"status":"deleted","profile":{},"createdAt":"2024-06-01T10:00:00Z","updatedAt":"2024-06-02T10:00:00Z","version":3}`)

		upd := ceEvent(t, "evt-upd-deleted", src, "user.updated", "u1", "2024-06-02T11:00:00Z", map[string]any{"name": "Ghost"})
		assertResults(t, s.postCE(upd), ignoredResult("evt-upd-deleted", "u1", ingest.ReasonDeleted))
		assertResults(t, s.postCE(upd), duplicateResult("evt-upd-deleted", "u1"))
		assert.Equal(t, 3, s.allEvents())
		s.assertUser("u1", 3, `{"userId":"u1","email":"u1@example.com","emailVerified":false,"name":"One Other",
			"status":"deleted","profile":{},"createdAt":"2024-06-01T10:00:00Z","updatedAt":"2024-06-02T10:00:00Z","version":3}`)
	})
	t.Run("user.created older than the deletion is stale; newer restores the user", func(t *testing.T) {
		older := ceEvent(t, "evt-recreate-old", src, "user.created", "u1", "2024-06-02T09:00:00Z", map[string]any{"email": "u1@example.com"})
		assertResults(t, s.postCE(older), ignoredResult("evt-recreate-old", "u1", ingest.ReasonStale))

		newer := ceEvent(t, "evt-recreate", src, "user.created", "u1", "2024-06-03T10:00:00Z", map[string]any{"email": "u1@example.com"})
		assertResults(t, s.postCE(newer), appliedResult("evt-recreate", "u1", 4))
		s.assertUser("u1", 4, `{"userId":"u1","email":"u1@example.com","emailVerified":false,"name":"One Other",
			"status":"active","profile":{},"createdAt":"2024-06-01T10:00:00Z","updatedAt":"2024-06-03T10:00:00Z","version":4}`)
		assert.Equal(t, []string{aggregate.TypeUserRegistered, aggregate.TypeUserProfileUpdated,
			aggregate.TypeUserDeleted, aggregate.TypeUserRestored}, s.events("u1"))
	})
	t.Run("user.updated for a user never created creates it", func(t *testing.T) {
		upd := ceEvent(t, "evt-new-upd", src, "user.updated", "u2", "2024-06-04T10:00:00Z",
			map[string]any{"email": "u2@example.com", "name": "Two", "tier": "gold"})
		assertResults(t, s.postCE(upd), appliedResult("evt-new-upd", "u2", 5))
		s.assertUser("u2", 5, `{"userId":"u2","email":"u2@example.com","emailVerified":false,"name":"Two",
			"status":"active","profile":{"tier":"gold"},"createdAt":"2024-06-04T10:00:00Z","updatedAt":"2024-06-04T10:00:00Z","version":1}`)
		assert.Equal(t, []string{aggregate.TypeUserRegistered}, s.events("u2"))
	})
	t.Run("a deletion of a user never seen is kept, so a late older creation stays out", func(t *testing.T) {
		del := ceEvent(t, "evt-tomb", src, "user.deleted", "u3", "2024-06-05T10:00:00Z", nil)
		assertResults(t, s.postCE(del), appliedResult("evt-tomb", "u3", 6))
		late := ceEvent(t, "evt-tomb-late", src, "user.created", "u3", "2024-06-05T09:00:00Z", map[string]any{"email": "u3@example.com"})
		assertResults(t, s.postCE(late), ignoredResult("evt-tomb-late", "u3", ingest.ReasonStale))
		assert.Equal(t, []string{aggregate.TypeUserDeleted}, s.events("u3"))
	})
	t.Run("an event with no time is never stale", func(t *testing.T) {
		future := ceEvent(t, "evt-future", src, "user.created", "u4", "2099-01-01T00:00:00Z", map[string]any{"email": "u4@example.com"})
		assertResults(t, s.postCE(future), appliedResult("evt-future", "u4", 7))
		untimed := ceEvent(t, "evt-untimed", src, "user.updated", "u4", "", map[string]any{"name": "Four"})
		assertResults(t, s.postCE(untimed), appliedResult("evt-untimed", "u4", 8))
		u := s.assertUser("u4", 8, "")
		assert.Equal(t, "Four", u["name"])
		assert.Equal(t, "2099-01-01T00:00:00Z", u["updatedAt"], "the provider's latest time stays the user's")
		assert.EqualValues(t, 2, u["version"])

		inner := authpiEvent(t, "env-untimed", "", authpiInner("in-untimed", "user.updated", "u4", "", map[string]any{"name": "Four Again"}))
		assertResults(t, s.postCE(inner), appliedResult("env-untimed", "u4", 9))
		assert.Equal(t, "Four Again", s.assertUser("u4", 9, "")["name"])
	})
	t.Run("a second copy in the same batch is a duplicate", func(t *testing.T) {
		five := ceEvent(t, "evt-batch", src, "user.created", "u5", "2024-06-06T10:00:00Z", map[string]any{"email": "u5@example.com"})
		r := s.postEvents(mustJSON(t, []any{created, five, five}), ctBatch)
		assertResults(t, r, duplicateResult("evt-1", "u1"), appliedResult("evt-batch", "u5", 10), duplicateResult("evt-batch", "u5"))
		assert.Equal(t, []string{aggregate.TypeUserRegistered}, s.events("u5"))
	})
	assert.Equal(t, 10, s.allEvents())
}

// TestEventsAttributes: email, email_verified and name are the user's own attributes, everything else in
// data (but user_id) is its profile.
func TestEventsAttributes(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	const src = "https://idp.example.com"
	data := map[string]any{
		"email": "attr@example.com", "email_verified": false, "name": "At Tribute", "user_id": "ignored-here",
		"locale": "fr-FR", "age": 42, "roles": []any{"admin", "dev"}, "address": map[string]any{"city": "Paris"},
	}
	assertResults(t, s.postCE(ceEvent(t, "a-1", src, "user.created", "attr", "2024-07-01T00:00:00Z", data)), appliedResult("a-1", "attr", 1))
	s.assertUser("attr", 1, `{"userId":"attr","email":"attr@example.com","emailVerified":false,"name":"At Tribute",
		"status":"active","profile":{"locale":"fr-FR","age":42,"roles":["admin","dev"],"address":{"city":"Paris"}},
		"createdAt":"2024-07-01T00:00:00Z","updatedAt":"2024-07-01T00:00:00Z","version":1}`)

	t.Run("an update replaces the profile and changes the email", func(t *testing.T) {
		upd := ceEvent(t, "a-2", src, "user.updated", "attr", "2024-07-02T00:00:00Z",
			map[string]any{"email": "new@example.com", "locale": "en-US"})
		assertResults(t, s.postCE(upd), appliedResult("a-2", "attr", 3))
		s.assertUser("attr", 3, `{"userId":"attr","email":"new@example.com","emailVerified":false,"name":"At Tribute",
			"status":"active","profile":{"locale":"en-US"},
			"createdAt":"2024-07-01T00:00:00Z","updatedAt":"2024-07-02T00:00:00Z","version":3}`)
		assert.Equal(t, []string{aggregate.TypeUserRegistered, aggregate.TypeUserEmailChanged, aggregate.TypeUserProfileUpdated}, s.events("attr"))
	})
	t.Run("email_verified verifies the email", func(t *testing.T) {
		ver := authpiEvent(t, "a-3", "2024-07-03T00:00:00Z", authpiInner("in-a-3", "user.email_verified", "attr", "", nil))
		assertResults(t, s.postCE(ver), appliedResult("a-3", "attr", 4))
		s.assertUser("attr", 4, `{"userId":"attr","email":"new@example.com","emailVerified":true,"name":"At Tribute",
			"status":"active","profile":{"locale":"en-US"},
			"createdAt":"2024-07-01T00:00:00Z","updatedAt":"2024-07-03T00:00:00Z","version":4}`)
	})
	t.Run("a user.updated with email_verified true verifies", func(t *testing.T) {
		upd := ceEvent(t, "a-4", src, "user.updated", "attr2", "2024-07-04T00:00:00Z",
			map[string]any{"email": "attr2@example.com", "email_verified": true})
		assertResults(t, s.postCE(upd), appliedResult("a-4", "attr2", 5))
		s.assertUser("attr2", 5, `{"userId":"attr2","email":"attr2@example.com","emailVerified":true,"name":"",
			"status":"active","profile":{},
			"createdAt":"2024-07-04T00:00:00Z","updatedAt":"2024-07-04T00:00:00Z","version":1}`)
	})
	t.Run("without a subject the user id comes from data.user_id", func(t *testing.T) {
		ev := ceEvent(t, "a-5", src, "user.created", "", "2024-07-05T00:00:00Z",
			map[string]any{"user_id": "from-data", "email": "fd@example.com", "plan": "free"})
		assertResults(t, s.postCE(ev), appliedResult("a-5", "from-data", 6))
		s.assertUser("from-data", 6, `{"userId":"from-data","email":"fd@example.com","emailVerified":false,"name":"",
			"status":"active","profile":{"plan":"free"},
			"createdAt":"2024-07-05T00:00:00Z","updatedAt":"2024-07-05T00:00:00Z","version":1}`)
	})
}

// detailFields returns the fields of an error body's details, checking each has a message.
func detailFields(t *testing.T, body map[string]any) []string {
	t.Helper()
	details, ok := body["details"].([]any)
	if !ok {
		return nil
	}
	fields := []string{}
	for _, d := range details {
		m := d.(map[string]any)
		assert.NotEmpty(t, m["message"])
		fields = append(fields, m["field"].(string))
	}
	return fields
}

// TestEventsBadInput: malformed envelopes are refused with the documented error body, every fault in its
// details, and nothing stored.
func TestEventsBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	const src = "https://idp.example.com"
	good := func(id string) map[string]any {
		return ceEvent(t, id, src, "user.created", "bad-"+id, "2024-08-01T00:00:00Z", map[string]any{"email": id + "@example.com"})
	}
	assertResults(t, s.postCE(good("seed")), appliedResult("seed", "bad-seed", 1))
	before := s.allEvents()

	binary := []string{"ce-specversion", "1.0", "ce-source", src, "ce-type", "user.created", "ce-subject", "bin", "ce-time", "2024-08-01T00:00:00Z"}
	noID := good("x")
	delete(noID, "id")
	badEmail := ceEvent(t, "e-1", src, "user.created", "bad-e1", "2024-08-01T00:00:00Z", map[string]any{"email": "not-an-email"})
	noSubject := ceEvent(t, "e-2", src, "user.created", "", "2024-08-01T00:00:00Z", map[string]any{"email": "ns@example.com"})
	manyFaults := ceEvent(t, "e-3", src, "user.updated", "", "2024-08-01T00:00:00Z",
		map[string]any{"email": "a@@b", "name": 7, "email_verified": "yes"})
	innerBad := authpiEvent(t, "e-4", "2024-08-01T00:00:00Z", authpiInner("in-e-4", "user.created", "", "", map[string]any{"email": "nope"}))
	longID := ceEvent(t, "e-5", src, "user.created", strings.Repeat("x", 256), "2024-08-01T00:00:00Z", nil)
	tooMany := make([]any, transport.MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = good(fmt.Sprintf("m%d", i))
	}

	cases := []struct {
		name        string
		body        string
		contentType string
		headers     []string
		status      int
		fields      []string // nil: no details expected
		mention     string   // a text the details or the message must contain
	}{
		{"binary mode without ce-id", `{"email":"b@example.com"}`, "application/json", binary, 400, []string{"envelope"}, "id"},
		{"structured mode without id", mustJSON(t, noID), ctStructured, nil, 400, []string{"envelope"}, "id"},
		{"batch that is not an array", mustJSON(t, good("nb")), ctBatch, nil, 400, nil, "array"},
		{"empty batch", `[]`, ctBatch, nil, 400, []string{"batch"}, ""},
		{"batch with one bad event among good ones", mustJSON(t, []any{good("g1"), badEmail, good("g2")}), ctBatch, nil, 400, []string{"[1].data.email"}, "Invalid email format"},
		{"batch with several bad events", mustJSON(t, []any{noSubject, good("g3"), badEmail}), ctBatch, nil, 400, []string{"[0].subject", "[2].data.email"}, ""},
		{"data.email not an email", mustJSON(t, badEmail), ctStructured, nil, 400, []string{"data.email"}, "Invalid email format"},
		{"user event without a subject or user id", mustJSON(t, noSubject), ctStructured, nil, 400, []string{"subject"}, "user_id is required"},
		{"every fault of one event at once", mustJSON(t, manyFaults), ctStructured, nil, 400, []string{"subject", "data.email", "data.email_verified", "data.name"}, ""},
		{"AuthPI inner event without user id and with a bad email", mustJSON(t, innerBad), ctStructured, nil, 400, []string{"data.subject.user_id", "data.data.email"}, ""},
		{"user id too long", mustJSON(t, longID), ctStructured, nil, 400, []string{"subject"}, "255"},
		{"binary user event with a bad email", `{"email":"bad"}`, "application/json", append(append([]string{}, binary...), "ce-id", "bin-bad"), 400, []string{"data.email"}, ""},
		{"application/json without any ce- headers", mustJSON(t, good("plain")), "application/json", nil, 400, []string{"ce-specversion"}, ""},
		{"batch with an invalid envelope", mustJSON(t, []any{good("g4"), noID}), ctBatch, nil, 400, []string{"[1].envelope"}, "id: MUST be a non-empty string"},
		{"batch over 1000 events", mustJSON(t, tooMany), ctBatch, nil, 400, []string{"batch"}, "1000"},
		{"data that is not an object", mustJSON(t, ceEvent(t, "e-6", src, "user.created", "bad-e6", "", []any{1})), ctStructured, nil, 400, []string{"data"}, "JSON object"},
		{"AuthPI inner data that is not an object", mustJSON(t, authpiEvent(t, "e-7", "", map[string]any{"id": "in-e-7", "type": "user.created",
			"subject": map[string]any{"user_id": "bad-e7"}, "data": "text"})), ctStructured, nil, 400, []string{"data.data"}, "JSON object"},
		{"user event with text data", `{"specversion":"1.0","id":"e-8","source":"s","type":"user.created","subject":"bad-e8","datacontenttype":"text/plain","data":"hi"}`, ctStructured, nil, 400, []string{"datacontenttype"}, ""},
		{"email that is not a string", mustJSON(t, ceEvent(t, "e-9", src, "user.created", "bad-e9", "", map[string]any{"email": 5})), ctStructured, nil, 400, []string{"data.email"}, "must be a string"},
		{"time that is not RFC 3339", `{"specversion":"1.0","id":"e-10","source":"s","type":"user.created","subject":"bad-e10","time":"yesterday"}`, ctStructured, nil, 400, nil, "RFC3339"},
		{"binary mode with a bad ce-time", `{"email":"b@example.com"}`, "application/json", append(append([]string{}, binary...)[:8], "ce-id", "bin-t", "ce-time", "nope"), 400, nil, "time"},
		{"structured body that is not JSON", `{"specversion":`, ctStructured, nil, 400, nil, ""},
		{"text/plain", "hello", "text/plain", nil, 415, nil, ""},
		{"body over 1 MiB", mustJSON(t, ceEvent(t, "big", src, "user.created", "big", "", map[string]any{"email": "big@example.com", "pad": strings.Repeat("p", 1<<20)})), ctStructured, nil, 413, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.postEvents(tc.body, tc.contentType, tc.headers...)
			body := assertErrorBody(t, r, tc.status)
			fields := detailFields(t, body)
			if tc.fields == nil {
				assert.Nil(t, body["details"])
			} else {
				assert.Equal(t, tc.fields, fields, "body: %s", r.Body)
			}
			if tc.mention != "" {
				assert.Contains(t, string(r.Body), tc.mention)
			}
			assert.Equal(t, before, s.allEvents(), "a refused request stores nothing")
		})
	}

	t.Run("an envelope missing two required attributes reports both", func(t *testing.T) {
		ev := good("y")
		delete(ev, "id")
		delete(ev, "source")
		r := s.postEvents(mustJSON(t, ev), ctStructured)
		body := assertErrorBody(t, r, http.StatusBadRequest)
		var text strings.Builder
		for _, d := range body["details"].([]any) {
			m := d.(map[string]any)
			fmt.Fprintf(&text, "%s: %s; ", m["field"], m["message"])
		}
		names := func(s string) (id, source bool) {
			return regexp.MustCompile(`\bid: `).MatchString(s), regexp.MustCompile(`\bsource: `).MatchString(s)
		}
		id, source := names(text.String())
		assert.True(t, id && source, "both faults are reported: %s", text.String())
		assert.Equal(t, before, s.allEvents())
	})
	t.Run("an invalid envelope hides no fault of its data", func(t *testing.T) {
		r := s.postEvents(`{"email":"bad"}`, "application/json", binary...)
		body := assertErrorBody(t, r, http.StatusBadRequest)
		fields := detailFields(t, body)
		assert.Equal(t, []string{"envelope", "data.email"}, fields)
	})
	assert.Equal(t, before, s.allEvents())
	assert.Empty(t, s.storedEvents("bad-g1"), "no event of a refused batch is applied")
}

// TestEventsMalformedAuthPIInnerEvent: an AuthPI envelope whose inner event is malformed is a malformed
// request (400 with details), not an ignored event: an ignored event is acknowledged and its retries are
// duplicates, so the user change would be lost for good.
func TestEventsMalformedAuthPIInnerEvent(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	cases := []struct {
		name  string
		inner map[string]any
		field string
	}{
		{"inner time not RFC 3339", map[string]any{"id": "in-m1", "type": "user.created", "source": "com.authpi/v1",
			"time": "2024-01-01 03:21:36", "subject": map[string]any{"user_id": "mal-1"}, "data": map[string]any{"email": "m1@example.com"}}, "data.time"},
		{"inner time a number", map[string]any{"id": "in-m2", "type": "user.created", "source": "com.authpi/v1",
			"time": 1704079296, "subject": map[string]any{"user_id": "mal-2"}, "data": map[string]any{"email": "m2@example.com"}}, "data.time"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := authpiEvent(t, fmt.Sprintf("env-mal-%d", i), "2024-01-01T00:00:00Z", tc.inner)
			r := s.postCE(ev)
			body := assertErrorBody(t, r, http.StatusBadRequest)
			assert.Contains(t, detailFields(t, body), tc.field)
			assert.Equal(t, 0, s.allEvents())
		})
	}
}

// webhookSecret returns a new "whsec_" secret and its key bytes.
func webhookSecret(t *testing.T) (string, []byte) {
	t.Helper()
	key := make([]byte, 24)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return "whsec_" + base64.StdEncoding.EncodeToString(key), key
}

// standardSignature is a Standard Webhooks v1 signature: base64 HMAC-SHA256 of "id.timestamp.body".
func standardSignature(key []byte, id, timestamp, body string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// hexSignature is X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>.
func hexSignature(key []byte, body string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestEventsSignatures: POST /events is let in by a valid webhook signature under either configured secret,
// or by a JWT and ingest key pair, and refused otherwise; no secret or signature reaches the logs.
func TestEventsSignatures(t *testing.T) {
	t.Parallel()
	secret1, key1 := webhookSecret(t)
	secret2, key2 := webhookSecret(t)
	secret3, key3 := webhookSecret(t) // not configured
	cfg := testConfig(t)
	cfg.WebhookSecrets = secret1 + "," + secret2
	s := startServer(t, cfg)

	const src = "https://idp.example.com/signed"
	var signatures []string // every signature value sent, to look for in the logs
	n := 0
	event := func() (string, string) {
		n++
		id := fmt.Sprintf("sig-%d", n)
		return id, mustJSON(t, ceEvent(t, id, src, "user.created", "signed-"+id, "2024-09-01T00:00:00Z",
			map[string]any{"email": id + "@example.com"}))
	}
	now := func() string { return strconv.FormatInt(time.Now().Unix(), 10) }
	post := func(body string, headers ...string) response {
		t.Helper()
		for i := 0; i+1 < len(headers); i += 2 {
			if strings.Contains(strings.ToLower(headers[i]), "signature") {
				signatures = append(signatures, headers[i+1])
			}
		}
		return s.do(http.MethodPost, "/events", body, append([]string{"Content-Type", ctStructured}, headers...)...)
	}
	stored := func() int { return s.allEvents() }
	accepted := func(t *testing.T, r response, id string) {
		t.Helper()
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		pos, err := s.Main.storage.events.LastPosition(context.Background())
		require.NoError(t, err)
		assertResults(t, r, appliedResult(id, "signed-"+id, pos))
		evs := s.storedEvents("signed-" + id)
		require.Len(t, evs, 1)
		assert.True(t, strings.HasPrefix(evs[0].Metadata["caller"], "signature:") || strings.HasPrefix(evs[0].Metadata["caller"], "apikey:"))
	}
	refused := func(t *testing.T, r response, status int) {
		t.Helper()
		before := stored()
		assertErrorBody(t, r, status)
		assert.Equal(t, before, stored(), "a refused request stores nothing")
	}

	t.Run("Standard Webhooks with the first secret", func(t *testing.T) {
		id, body := event()
		ts := now()
		sig := standardSignature(key1, "msg_"+id, ts, body)
		parsed, err := strconv.ParseInt(ts, 10, 64)
		require.NoError(t, err)
		require.Equal(t, sig, standardwebhooks.Sign("msg_"+id, time.Unix(parsed, 0), []byte(body), key1), "cross-check")
		r := post(body, "webhook-id", "msg_"+id, "webhook-timestamp", ts, "webhook-signature", sig)
		accepted(t, r, id)
		assert.Equal(t, "signature:standard-webhooks:0", s.storedEvents("signed-" + id)[0].Metadata["caller"])
	})
	t.Run("Standard Webhooks with the second secret (rotation)", func(t *testing.T) {
		id, body := event()
		ts := now()
		accepted(t, post(body, "webhook-id", "msg_"+id, "webhook-timestamp", ts,
			"webhook-signature", standardSignature(key2, "msg_"+id, ts, body)), id)
		assert.Equal(t, "signature:standard-webhooks:1", s.storedEvents("signed-" + id)[0].Metadata["caller"],
			"the caller is told apart by its secret (the rate limit's key)")
	})
	t.Run("several signatures of which only one is right", func(t *testing.T) {
		id, body := event()
		ts := now()
		sigs := strings.Join([]string{
			standardSignature(key3, "msg_"+id, ts, body),
			"v2," + base64.StdEncoding.EncodeToString([]byte("not a signature")),
			standardSignature(key2, "msg_"+id, ts, body),
			"garbage",
		}, " ")
		accepted(t, post(body, "webhook-id", "msg_"+id, "webhook-timestamp", ts, "webhook-signature", sigs), id)
	})
	t.Run("svix headers", func(t *testing.T) {
		id, body := event()
		ts := now()
		r := post(body, "svix-id", "msg_"+id, "svix-timestamp", ts, "svix-signature", standardSignature(key1, "msg_"+id, ts, body))
		accepted(t, r, id)
		assert.Equal(t, "signature:svix:0", s.storedEvents("signed-" + id)[0].Metadata["caller"])
	})
	t.Run("X-Webhook-Signature hex HMAC of the body", func(t *testing.T) {
		id, body := event()
		r := post(body, "X-Webhook-Signature", hexSignature(key1, body))
		accepted(t, r, id)
		assert.Equal(t, "signature:x-webhook-signature:0", s.storedEvents("signed-" + id)[0].Metadata["caller"])
		id, body = event()
		accepted(t, post(body, "X-Webhook-Signature", hexSignature(key2, body)), id)
	})
	t.Run("tampered body", func(t *testing.T) {
		id, body := event()
		ts := now()
		sig := standardSignature(key1, "msg_"+id, ts, body)
		tampered := strings.Replace(body, id+"@example.com", "evil@example.com", 1)
		require.NotEqual(t, body, tampered)
		refused(t, post(tampered, "webhook-id", "msg_"+id, "webhook-timestamp", ts, "webhook-signature", sig), http.StatusUnauthorized)
		refused(t, post(tampered, "X-Webhook-Signature", hexSignature(key1, body)), http.StatusUnauthorized)
	})
	t.Run("wrong secret", func(t *testing.T) {
		id, body := event()
		ts := now()
		refused(t, post(body, "webhook-id", "msg_"+id, "webhook-timestamp", ts,
			"webhook-signature", standardSignature(key3, "msg_"+id, ts, body)), http.StatusUnauthorized)
		refused(t, post(body, "svix-id", "msg_"+id, "svix-timestamp", ts,
			"svix-signature", standardSignature(key3, "msg_"+id, ts, body)), http.StatusUnauthorized)
		refused(t, post(body, "X-Webhook-Signature", hexSignature(key3, body)), http.StatusUnauthorized)
	})
	t.Run("signed id differs from the header", func(t *testing.T) {
		id, body := event()
		ts := now()
		refused(t, post(body, "webhook-id", "msg_other", "webhook-timestamp", ts,
			"webhook-signature", standardSignature(key1, "msg_"+id, ts, body)), http.StatusUnauthorized)
	})
	t.Run("timestamp 6 minutes old", func(t *testing.T) {
		id, body := event()
		ts := strconv.FormatInt(time.Now().Add(-6*time.Minute).Unix(), 10)
		refused(t, post(body, "webhook-id", "msg_"+id, "webhook-timestamp", ts,
			"webhook-signature", standardSignature(key1, "msg_"+id, ts, body)), http.StatusUnauthorized)
	})
	t.Run("timestamp 6 minutes in the future", func(t *testing.T) {
		id, body := event()
		ts := strconv.FormatInt(time.Now().Add(6*time.Minute).Unix(), 10)
		refused(t, post(body, "webhook-id", "msg_"+id, "webhook-timestamp", ts,
			"webhook-signature", standardSignature(key1, "msg_"+id, ts, body)), http.StatusUnauthorized)
	})
	t.Run("timestamp 4 minutes old is within the tolerance", func(t *testing.T) {
		id, body := event()
		ts := strconv.FormatInt(time.Now().Add(-4*time.Minute).Unix(), 10)
		accepted(t, post(body, "webhook-id", "msg_"+id, "webhook-timestamp", ts,
			"webhook-signature", standardSignature(key1, "msg_"+id, ts, body)), id)
	})
	t.Run("incomplete Standard Webhooks headers", func(t *testing.T) {
		id, body := event()
		ts := now()
		refused(t, post(body, "webhook-id", "msg_"+id, "webhook-signature", standardSignature(key1, "msg_"+id, ts, body)), http.StatusUnauthorized)
	})
	t.Run("neither a signature nor a JWT and API key", func(t *testing.T) {
		_, body := event()
		refused(t, post(body), http.StatusUnauthorized)
	})
	t.Run("a bad signature with a valid JWT and ingest key pair", func(t *testing.T) {
		id, body := event()
		ts := now()
		r := post(body, "webhook-id", "msg_"+id, "webhook-timestamp", ts,
			"webhook-signature", standardSignature(key3, "msg_"+id, ts, body),
			"Authorization", "Bearer "+token(t), "X-API-Key", ingestKey)
		accepted(t, r, id)
		assert.True(t, strings.HasPrefix(s.storedEvents("signed-" + id)[0].Metadata["caller"], "apikey:"))
	})
	t.Run("a read key pair without a signature", func(t *testing.T) {
		_, body := event()
		refused(t, post(body, "Authorization", "Bearer "+token(t), "X-API-Key", readKey), http.StatusForbidden)
	})
	t.Run("an ingest key without a JWT", func(t *testing.T) {
		_, body := event()
		refused(t, post(body, "X-API-Key", ingestKey), http.StatusUnauthorized)
	})

	t.Run("no secret or signature in the logs", func(t *testing.T) {
		logs := s.logs.String()
		require.NotEmpty(t, logs)
		for _, secret := range []string{secret1, secret2, secret3} {
			assert.NotContains(t, logs, secret)
			assert.NotContains(t, logs, strings.TrimPrefix(secret, "whsec_"))
		}
		require.NotEmpty(t, signatures)
		for _, sig := range signatures {
			for _, part := range strings.Fields(sig) {
				_, value, ok := strings.Cut(part, ",")
				if !ok {
					_, value, ok = strings.Cut(part, "=")
				}
				if !ok || len(value) < 16 {
					continue
				}
				assert.NotContains(t, logs, value)
			}
		}
	})
}

// postRaw posts without the test's require, for goroutines.
func postRaw(base, body, contentType string, headers ...string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// concurrentCopies posts n copies of body at the same moment and returns each copy's status.
func concurrentCopies(t *testing.T, s *testServer, n int, body string) []string {
	t.Helper()
	auth := []string{"Authorization", "Bearer " + token(t), "X-API-Key", ingestKey}
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	codes := make([]int, n)
	bodies := make([][]byte, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		ready.Add(1)
		done.Add(1)
		go func(i int) {
			defer done.Done()
			ready.Done()
			<-start
			codes[i], bodies[i], errs[i] = postRaw(s.URL, body, ctStructured, auth...)
		}(i)
	}
	ready.Wait()
	close(start)
	done.Wait()
	statuses := make([]string, n)
	for i := 0; i < n; i++ {
		require.NoError(t, errs[i])
		require.Equal(t, http.StatusOK, codes[i], "copy %d: %s", i, bodies[i])
		var res struct {
			Success bool            `json:"success"`
			Results []ingest.Result `json:"results"`
		}
		require.NoError(t, json.Unmarshal(bodies[i], &res))
		require.True(t, res.Success)
		require.Len(t, res.Results, 1)
		statuses[i] = res.Results[0].Status
	}
	return statuses
}

func countStatus(statuses []string, want string) int {
	n := 0
	for _, s := range statuses {
		if s == want {
			n++
		}
	}
	return n
}

// TestEventsConcurrentDuplicates: twenty copies of one event at the same moment store it once.
func TestEventsConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	const src = "https://idp.example.com/race"

	t.Run("a supported event: one applied, nineteen duplicates", func(t *testing.T) {
		body := mustJSON(t, ceEvent(t, "race-1", src, "user.created", "racer", "2024-10-01T00:00:00Z",
			map[string]any{"email": "racer@example.com", "name": "Racer"}))
		statuses := concurrentCopies(t, s, 20, body)
		assert.Equal(t, 1, countStatus(statuses, ingest.StatusApplied), "statuses: %v", statuses)
		assert.Equal(t, 19, countStatus(statuses, ingest.StatusDuplicate), "statuses: %v", statuses)
		evs := s.storedEvents("racer")
		require.Len(t, evs, 1)
		assert.Equal(t, idempotencyKey(src, "race-1"), evs[0].ID)
		assert.Equal(t, 1, s.allEvents())
		s.assertUser("racer", 1, `{"userId":"racer","email":"racer@example.com","emailVerified":false,"name":"Racer",
			"status":"active","profile":{},"createdAt":"2024-10-01T00:00:00Z","updatedAt":"2024-10-01T00:00:00Z","version":1}`)
	})
	t.Run("an AuthPI update: one applied, nineteen duplicates", func(t *testing.T) {
		body := mustJSON(t, authpiEvent(t, "race-env-2", "2024-10-02T00:00:00Z",
			authpiInner("race-in-2", "user.updated", "racer", "", map[string]any{"name": "Racer Two"})))
		statuses := concurrentCopies(t, s, 20, body)
		assert.Equal(t, 1, countStatus(statuses, ingest.StatusApplied), "statuses: %v", statuses)
		assert.Equal(t, 19, countStatus(statuses, ingest.StatusDuplicate), "statuses: %v", statuses)
		assert.Len(t, s.storedEvents("racer"), 2)
		assert.Equal(t, 2, s.allEvents())
	})
	t.Run("an unsupported type: one ignored, nineteen duplicates", func(t *testing.T) {
		body := mustJSON(t, ceEvent(t, "race-org", src, "organization.created", "org-race", "2024-10-01T00:00:00Z",
			map[string]any{"name": "Acme"}))
		statuses := concurrentCopies(t, s, 20, body)
		assert.Equal(t, 1, countStatus(statuses, ingest.StatusIgnored), "statuses: %v", statuses)
		assert.Equal(t, 19, countStatus(statuses, ingest.StatusDuplicate), "statuses: %v", statuses)
		assert.Equal(t, 2, s.allEvents(), "an ignored event stores no event")
	})
}

// Found by fuzzing: a batch followed by more data was read as its array alone, and a bare "ce-" header made
// the CloudEvents SDK panic (a 500).
func TestEventsFuzzFindings(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	batch := `[{"specversion":"1.0","id":"t1","source":"s","type":"user.created","subject":"tr-1","data":{"email":"t@example.com"}}]`
	assertErrorBody(t, s.postEvents(batch+` trailing`, "application/cloudevents-batch+json"), http.StatusBadRequest)
	assertErrorBody(t, s.postEvents(batch+`[]`, "application/cloudevents-batch+json"), http.StatusBadRequest)
	r := s.authed(http.MethodPost, "/events", `{"email":"b@example.com"}`, ingestKey, "Content-Type", "application/json",
		"ce-specversion", "1.0", "ce-id", "b1", "ce-source", "s", "ce-type", "user.created", "ce-subject", "tr-2", "Ce-", "0")
	body := assertErrorBody(t, r, http.StatusBadRequest)
	assert.Equal(t, []string{"ce-"}, detailFields(t, body))
	assert.Equal(t, 0, s.allEvents())
}
