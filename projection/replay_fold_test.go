package projection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/projection"
)

// oddPayload is a payload of an event of type typ for user u: the ones json.Marshal writes, which replay
// reads itself, and ones it does not write (keys in another case, repeated keys, escapes, unknown keys,
// nested profiles), which replay leaves to aggregate.Decode.
func oddPayload(r *rand.Rand, typ string, u, n int) string {
	email := fmt.Sprintf("u%d-%d@example.com", u, n)
	var forms []string
	switch typ {
	case aggregate.TypeUserRegistered:
		forms = []string{
			fmt.Sprintf(`{"email":%q,"name":"User","profile":{"plan":"free","seats":%d}}`, email, n),
			fmt.Sprintf(`{"email":%q,"emailVerified":true}`, email),
			fmt.Sprintf(`{"Email":%q,"NAME":"Case"}`, email),
			fmt.Sprintf(`{"email":%q,"name":"N\u00e9e","profile":{"nested":{"a":[1,2.5,null]},"s":"x\"y","n":1e3}}`, email),
			fmt.Sprintf(`{"email":%q,"email":"again-%s"}`, email, email),
			fmt.Sprintf(`{"email":%q,"profile":{"a":1},"profile":{"b":2}}`, email),
			fmt.Sprintf(` { "email" : %q , "name" : "Zoë" , "profile" : { } } `, email),
			`null`,
		}
	case aggregate.TypeUserEmailChanged:
		forms = []string{
			fmt.Sprintf(`{"email":%q}`, email),
			fmt.Sprintf(`{"email":%q,"previous":null}`, email),
			fmt.Sprintf(`{"email":"Ünï-%d@example.com","previous":"old@example.com"}`, n),
			fmt.Sprintf(`{"email":"esc\u0040%d.example.com"}`, n),
		}
	case aggregate.TypeUserProfileUpdated:
		forms = []string{
			fmt.Sprintf(`{"name":"User %d"}`, n),
			fmt.Sprintf(`{"name":"User %d","profile":{"plan":"pro","seats":%d}}`, n, n),
			fmt.Sprintf(`{"profile":{"plan":"p%d"}}`, n),
			`{"profile":{}}`,
			`{"name":null,"profile":null}`,
			`{"profile":{"k":-1.5e-3,"z":null,"t":true,"f":false,"e":""}}`,
			fmt.Sprintf(`{"name":"x%d","extra":{"x":[1]}}`, n),
			`{"profile":{"a":1},"profile":{"b":2}}`,
		}
	case aggregate.TypeUserEmailVerified:
		forms = []string{`{}`, fmt.Sprintf(`{"email":%q}`, email)}
	default:
		forms = []string{`{}`}
	}
	return forms[r.IntN(len(forms))]
}

// TestReplayMatchesApplyingEachEvent: a replay (pages read ahead in parallel, payloads decoded its own way)
// writes exactly the rows that applying the events one by one writes, with users whose events interleave
// and straddle the replay's pages.
func TestReplayMatchesApplyingEachEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	const users = 40
	perUser := (2*projection.ReplayPage + 2000) / users
	types := []string{aggregate.TypeUserEmailChanged, aggregate.TypeUserProfileUpdated, aggregate.TypeUserProfileUpdated,
		aggregate.TypeUserEmailVerified, aggregate.TypeUserDeleted, aggregate.TypeUserRestored, aggregate.TypeUserRegistered,
		aggregate.TypeUserDeactivated, aggregate.TypeUserReactivated, aggregate.TypeUserDeactivated}
	for _, typ := range aggregate.StoredTypes() {
		require.Contains(t, types, typ, "the replay is compared on every stored type")
	}
	at := time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(u), 15))
			id := fmt.Sprintf("mixed-%02d", u)
			for n := 0; n < perUser; {
				// Runs of one to three events, appended alongside the other users' runs.
				run := make([]eventstore.Event, min(1+r.IntN(3), perUser-n))
				for i := range run {
					typ := aggregate.TypeUserRegistered
					if n > 0 {
						typ = types[r.IntN(len(types))]
					}
					run[i] = eventstore.Event{
						ID: fmt.Sprintf("%s/%d", id, n), StreamType: aggregate.StreamType, Type: typ,
						Data: []byte(oddPayload(r, typ, u, n)),
						// Times go back now and then: a user's updated time is the latest of them.
						OccurredAt: at.Add(time.Duration(n*60-r.IntN(200)) * time.Second),
					}
					n++
				}
				_, err := f.store.Append(ctx, id, eventstore.ExpectAny, run...)
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	wg.Wait()
	// Other streams' events are passed over.
	_, err := f.store.Append(ctx, "other", 0, eventstore.Event{ID: "other/0", StreamType: "Other", Type: "other.v1", Data: []byte(`{"x":1}`)})
	require.NoError(t, err)

	all, err := f.store.ReadAll(ctx, 0, users*perUser+1)
	require.NoError(t, err)
	require.Len(t, all, users*perUser+1)
	require.Greater(t, len(all), 2*projection.ReplayPage, "the replay reads more than two pages")
	straddling := 0
	for u := range users {
		var first, last int64
		for _, e := range all {
			if e.StreamID == fmt.Sprintf("mixed-%02d", u) {
				last = e.Position
				if first == 0 {
					first = e.Position
				}
			}
		}
		if (first-1)/projection.ReplayPage != (last-1)/projection.ReplayPage {
			straddling++
		}
	}
	require.Positive(t, straddling, "users whose events straddle pages")

	applied := newModel(t)
	byEvent := &projection.Users{Model: applied}
	for _, e := range all {
		if e.StreamType == aggregate.StreamType {
			require.NoError(t, byEvent.Project(ctx, e))
		}
	}
	replayed := newModel(t)
	sum, err := projection.Replay(ctx, f.store, replayed, nil)
	require.NoError(t, err)
	assert.Equal(t, int64(len(all)), sum.Events)
	assert.Equal(t, users, sum.Users)

	want := rows(t, applied)
	require.Len(t, want, users)
	assert.Equal(t, want, rows(t, replayed), "replay writes what applying each event writes")
	assert.Equal(t, lastPosition(t, f.store), checkpoint(t, replayed, projection.UsersProjection))
	assert.True(t, strings.Contains(strings.Join(want, "\n"), `"nested":{"a":[1,2.5,null]}`) ||
		strings.Contains(strings.Join(want, "\n"), `"plan":"`), "profiles are written")
	for _, status := range []aggregate.Status{aggregate.StatusActive, aggregate.StatusInactive, aggregate.StatusDeleted} {
		assert.Contains(t, strings.Join(want, "\n"), "'"+string(status)+"'", "some user ends %s", status)
	}
}

// TestReplayRefusesAPayloadDecodeRefuses: a payload aggregate.Decode cannot decode fails the replay, as it
// always did, also when a later event replaces the profile it carries.
func TestReplayRefusesAPayloadDecodeRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, data := range []string{`{"profile":{"n":1e400}}`, `{"profile":[1]}`, `{"email":5}`, `{"name":"x"`} {
		f := newFixture(t)
		_, err := f.store.Append(ctx, "bad", 0,
			eventstore.Event{ID: "bad/0", StreamType: aggregate.StreamType, Type: aggregate.TypeUserRegistered, Data: []byte(data)},
			eventstore.Event{ID: "bad/1", StreamType: aggregate.StreamType, Type: aggregate.TypeUserProfileUpdated, Data: []byte(`{"profile":{}}`)})
		require.NoError(t, err)
		_, err = projection.Replay(ctx, f.store, f.model, nil)
		assert.ErrorContains(t, err, "aggregate: decode user.registered.v1 bad/0", data)
	}
}
