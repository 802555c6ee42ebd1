package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
)

// crashWriters is how many clients post at once while the server is killed.
const crashWriters = 64

// crashRounds is the number of kill/restart cycles: USERHOOK_CRASH_ROUNDS, 2 by default.
func crashRounds(t *testing.T) int {
	t.Helper()
	raw := os.Getenv("USERHOOK_CRASH_ROUNDS")
	if raw == "" {
		return 2
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		t.Fatalf("USERHOOK_CRASH_ROUNDS=%q: want a positive integer", raw)
	}
	return n
}

// crashLoad is what the writers of one round saw.
type crashLoad struct {
	acked      map[string]int64 // user id -> X-Event-Position of its 200
	unanswered []string         // the request failed or got no answer: stored or not
	refused    map[int]int      // status -> count of answers other than 200 (stored or not)
	early      int              // transport errors before the kill (unexpected)
	badAcks    []string         // 200s without a usable X-Event-Position
}

// TestCrashLosesNoAcknowledgedEvent kills the real binary with SIGKILL under load from many concurrent
// writers, restarts it on the same SQLite file, and checks that every acknowledged user was stored once,
// that the feed's positions have no gaps, and that the read model catches up with all of it. It repeats the
// kill/restart cycle USERHOOK_CRASH_ROUNDS times on the same database.
func TestCrashLosesNoAcknowledgedEvent(t *testing.T) {
	rounds := crashRounds(t)
	db := filepath.Join(t.TempDir(), "crash.db")
	env := []string{
		"USERHOOK_DATABASE=" + db,
		"USERHOOK_JWT_SECRET=" + testSecret,
		"USERHOOK_API_KEYS=" + ingestKey + ":ingest," + readKey + ":read",
		"USERHOOK_PUBSUB=embedded",
	}
	tok := token(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("random seed %d, %d rounds, %d writers", seed, rounds, crashWriters)

	acked := map[string]int64{}     // every user acknowledged in any round
	unanswered := map[string]bool{} // every user whose post failed or got no 200, in any round
	p := startBinary(t, env)
	for round := 1; round <= rounds; round++ {
		start := time.Now()
		delay := 300*time.Millisecond + time.Duration(rng.Int64N(int64(1200*time.Millisecond)))
		load := crashUnderLoad(t, p, tok, round, delay)
		for id, pos := range load.acked {
			acked[id] = pos
		}
		for _, id := range load.unanswered {
			unanswered[id] = true
		}
		require.NotEmpty(t, load.acked, "round %d: some posts were acknowledged before the kill", round)
		require.Empty(t, load.badAcks, "round %d: every 200 carries X-Event-Position", round)

		p = startBinary(t, env) // the same database
		feed := crashVerify(t, p, tok, acked, unanswered)
		storedAnyway := 0
		for _, id := range load.unanswered {
			if feed.users[id] > 0 {
				storedAnyway++
			}
		}
		t.Logf("round %d: killed after %v; acknowledged %d, failed/unanswered %d (stored anyway %d), other answers %v, "+
			"errors before the kill %d; events in the store %d (all rounds: %d acknowledged); round took %v",
			round, delay.Round(time.Millisecond), len(load.acked), len(load.unanswered), storedAnyway, load.refused,
			load.early, feed.events, len(acked), time.Since(start).Round(time.Millisecond))
		if t.Failed() {
			t.Fatalf("round %d failed; the restarted server's log ends with:\n%s", round, crashTail(p.stderr.String(), 2000))
		}
	}
}

// crashUnderLoad starts the writers on p, sends SIGKILL after delay while they post, and waits for the
// process to exit and the writers to stop.
func crashUnderLoad(t *testing.T, p *process, tok string, round int, delay time.Duration) crashLoad {
	t.Helper()
	var killed atomic.Bool
	results := make([]crashLoad, crashWriters)
	var wg sync.WaitGroup
	for w := 0; w < crashWriters; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			res := crashLoad{acked: map[string]int64{}, refused: map[int]int{}}
			defer func() { results[w] = res }()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for n := 0; !killed.Load(); n++ {
				id := fmt.Sprintf("auth0|crash-%d-%d-%d", round, w, n)
				body, _ := json.Marshal(map[string]any{"detail": map[string]any{"data": map[string]any{
					"user_name": fmt.Sprintf("crash-%d-%d-%d@example.com", round, w, n), "user_id": id}}})
				req, err := http.NewRequest(http.MethodPost, p.URL+"/users", bytes.NewReader(body))
				if err != nil {
					panic(err)
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("X-API-Key", ingestKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					res.unanswered = append(res.unanswered, id)
					if !killed.Load() {
						res.early++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					// Answered but refused: it may or may not be stored, like an unanswered one.
					res.refused[resp.StatusCode]++
					res.unanswered = append(res.unanswered, id)
					continue
				}
				// The status line of a 200 arrived: the event is acknowledged, even if the body was cut off.
				pos, err := strconv.ParseInt(resp.Header.Get("X-Event-Position"), 10, 64)
				if err != nil || pos < 1 {
					res.badAcks = append(res.badAcks, id)
				}
				res.acked[id] = pos
			}
		}(w)
	}

	time.Sleep(delay)
	killed.Store(true)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not exit after SIGKILL")
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL,
		"the server was alive until SIGKILL ended it (%v); its log ends with:\n%s", p.cmd.ProcessState, crashTail(p.stderr.String(), 2000))
	wg.Wait()

	all := crashLoad{acked: map[string]int64{}, refused: map[int]int{}}
	for _, r := range results {
		for id, pos := range r.acked {
			all.acked[id] = pos
		}
		all.unanswered = append(all.unanswered, r.unanswered...)
		for s, n := range r.refused {
			all.refused[s] += n
		}
		all.early += r.early
		all.badAcks = append(all.badAcks, r.badAcks...)
	}
	return all
}

// crashFeed is what the store holds, read through GET /api/events.
type crashFeed struct {
	events int
	last   int64
	users  map[string]int // user id -> events of that user
}

type crashEvent struct {
	Position int64  `json:"position"`
	UserID   string `json:"userId"`
	Type     string `json:"type"`
	EventID  string `json:"eventId"`
}

// crashVerify checks the restarted server p against what the writers of every round so far saw.
func crashVerify(t *testing.T, p *process, tok string, acked map[string]int64, unanswered map[string]bool) crashFeed {
	t.Helper()
	events := crashReadFeed(t, p, tok)
	feed := crashFeed{events: len(events), users: map[string]int{}}

	// Positions are 1, 2, 3, ...: strictly increasing without gaps.
	var gaps []string
	prev := int64(0)
	for _, e := range events {
		if e.Position != prev+1 {
			gaps = append(gaps, fmt.Sprintf("position %d follows %d", e.Position, prev))
		}
		prev = e.Position
	}
	crashReport(t, "feed positions are not 1..n without gaps", gaps)
	if len(events) > 0 {
		feed.last = events[len(events)-1].Position
	}

	// Nothing stored twice: no event id twice, no user registered twice; nothing stored that nobody posted.
	ids := map[string]int64{}
	registered := map[string]int64{} // user id -> position of its registration
	var dupIDs, dupUsers, strangers []string
	for _, e := range events {
		if at, ok := ids[e.EventID]; ok {
			dupIDs = append(dupIDs, fmt.Sprintf("event %s at positions %d and %d", e.EventID, at, e.Position))
		}
		ids[e.EventID] = e.Position
		feed.users[e.UserID]++
		if e.Type == aggregate.TypeUserRegistered {
			if at, ok := registered[e.UserID]; ok {
				dupUsers = append(dupUsers, fmt.Sprintf("%s registered at positions %d and %d", e.UserID, at, e.Position))
			} else {
				registered[e.UserID] = e.Position
			}
		} else {
			strangers = append(strangers, fmt.Sprintf("%s at position %d is a %s (each user was posted once)", e.UserID, e.Position, e.Type))
		}
		if _, ok := acked[e.UserID]; !ok && !unanswered[e.UserID] {
			strangers = append(strangers, fmt.Sprintf("%s at position %d was never posted", e.UserID, e.Position))
		}
	}
	crashReport(t, "event ids stored twice", dupIDs)
	crashReport(t, "users registered twice", dupUsers)
	crashReport(t, "unexpected events", strangers)

	// Every acknowledged user is stored, at the position its 200 announced.
	var lost, moved []string
	for id, pos := range acked {
		at, ok := registered[id]
		switch {
		case !ok:
			lost = append(lost, fmt.Sprintf("%s (acknowledged at position %d)", id, pos))
		case at != pos:
			moved = append(moved, fmt.Sprintf("%s acknowledged at position %d, stored at %d", id, pos, at))
		}
	}
	sort.Strings(lost)
	sort.Strings(moved)
	crashReport(t, "acknowledged users missing from the store", lost)
	crashReport(t, "acknowledged users stored elsewhere than their X-Event-Position", moved)

	// The read model catches up with the whole store after the restart and holds exactly its users.
	inModel := crashReadModel(t, p, tok, feed.last)
	var missing, extra []string
	for id := range acked {
		if !inModel[id] {
			missing = append(missing, id)
		}
	}
	for id := range registered {
		if _, ok := acked[id]; !ok && !inModel[id] {
			missing = append(missing, id+" (stored, unanswered)")
		}
	}
	for id := range inModel {
		if _, ok := registered[id]; !ok {
			extra = append(extra, id)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	crashReport(t, "stored users missing from the read model", missing)
	crashReport(t, "read-model users not in the store", extra)
	return feed
}

// crashReadFeed pages through GET /api/events from the first position to the end.
func crashReadFeed(t *testing.T, p *process, tok string) []crashEvent {
	t.Helper()
	var all []crashEvent
	from := int64(1)
	for {
		status, body, _ := crashGet(t, p, tok, "/api/events?limit=1000&from="+strconv.FormatInt(from, 10))
		require.Equal(t, http.StatusOK, status, "GET /api/events: %s", body)
		var page struct {
			Events   []crashEvent `json:"events"`
			NextFrom int64        `json:"nextFrom"`
		}
		require.NoError(t, json.Unmarshal(body, &page))
		if len(page.Events) == 0 {
			return all
		}
		all = append(all, page.Events...)
		require.Greater(t, page.NextFrom, from, "the feed moves on")
		from = page.NextFrom
	}
}

// crashReadModel lists every user of the read model once it has applied position last, through
// GET /users with minPosition, retrying while the projection is still catching up (503).
func crashReadModel(t *testing.T, p *process, tok string, last int64) map[string]bool {
	t.Helper()
	users := map[string]bool{}
	cursor := ""
	deadline := time.Now().Add(30 * time.Second)
	for {
		path := "/users?limit=1000&minPosition=" + strconv.FormatInt(last, 10)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		status, body, hdr := crashGet(t, p, tok, path)
		if status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			continue // the read waited 5 s; the projection is still catching up
		}
		require.Equal(t, http.StatusOK, status, "GET %s: %s", path, body)
		at, err := strconv.ParseInt(hdr.Get("X-Projection-Position"), 10, 64)
		require.NoError(t, err)
		require.GreaterOrEqual(t, at, last, "the read waited for the projection")
		var page struct {
			Users []struct {
				UserID string `json:"userId"`
			} `json:"users"`
			NextCursor *string `json:"nextCursor"`
		}
		require.NoError(t, json.Unmarshal(body, &page))
		for _, u := range page.Users {
			require.False(t, users[u.UserID], "%s listed twice", u.UserID)
			users[u.UserID] = true
		}
		if page.NextCursor == nil {
			return users
		}
		cursor = *page.NextCursor
	}
}

func crashGet(t *testing.T, p *process, tok, path string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-API-Key", readKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body, resp.Header
}

// crashReport fails t with a count and the first few of what went wrong (in the order given).
func crashReport(t *testing.T, what string, faults []string) {
	t.Helper()
	if len(faults) == 0 {
		return
	}
	shown := faults
	if len(shown) > 20 {
		shown = shown[:20]
	}
	t.Errorf("%s: %d, first ones:\n  %s", what, len(faults), strings.Join(shown, "\n  "))
}

// crashTail is the end of a server log, at most n bytes of it.
func crashTail(s string, n int) string {
	if strings.TrimSpace(s) == "" {
		return "(nothing logged)"
	}
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
