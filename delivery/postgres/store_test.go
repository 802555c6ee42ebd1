package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/delivery/deliverytest"
	"github.com/userhook/userhook/delivery/postgres"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
)

func open(t *testing.T, url string) *postgresdb.DB {
	t.Helper()
	db, err := postgresdb.Open(context.Background(), url, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newStore(t *testing.T, db *postgresdb.DB) *postgres.Store {
	t.Helper()
	s, err := postgres.New(context.Background(), db)
	require.NoError(t, err)
	return s
}

// TestIntegrationStore runs the delivery.Store contract against PostgreSQL, a schema of its own per subtest,
// and checks what only several instances on one database can show.
func TestIntegrationStore(t *testing.T) {
	t.Run("Contract", func(t *testing.T) {
		deliverytest.Run(t, func(t *testing.T) delivery.Store {
			return newStore(t, open(t, pgtest.URL(t)))
		})
	})
	t.Run("InstancesMigrateTogether", testInstancesMigrate)
	t.Run("InstancesClaimEachDeliveryOnce", testInstancesClaim)
	t.Run("CheckpointsTableAlreadyThere", testSharedCheckpoints)
	t.Run("EnqueueRacesWebhookDelete", testEnqueueRacesDelete)
}

func testInstancesMigrate(t *testing.T) {
	url := pgtest.URL(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		db := open(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = postgres.New(context.Background(), db)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
}

// testInstancesClaim has three instances, each with its own pool and four senders, claim 300 due deliveries.
func testInstancesClaim(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	instances := []*postgres.Store{newStore(t, open(t, url)), newStore(t, open(t, url)), newStore(t, open(t, url))}
	now := time.Now().UTC()
	require.NoError(t, instances[0].CreateWebhook(ctx, delivery.Webhook{ID: "wh_a", Name: "a", URL: "https://example.com/a",
		Events: []string{delivery.All}, Enabled: true, ContentType: "application/json", CreatedAt: now, UpdatedAt: now}))
	var ds []delivery.Delivery
	for i := range 300 {
		ds = append(ds, delivery.Delivery{ID: fmt.Sprintf("dlv_%03d", i), WebhookID: "wh_a", EventID: fmt.Sprintf("evt_%03d", i),
			EventType: "user.created", Position: int64(i + 1), Payload: []byte(`{}`), Status: delivery.StatusPending,
			CreatedAt: now, NextAttemptAt: now.Add(-time.Duration(i%7) * time.Second)})
	}
	require.NoError(t, instances[0].Enqueue(ctx, delivery.ConsumerName, 300, ds))

	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for _, s := range instances {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					claimed, err := s.Claim(ctx, now, time.Hour, delivery.ClaimLimits{Total: 5})
					assert.NoError(t, err)
					mu.Lock()
					for _, d := range claimed {
						counts[d.ID]++
					}
					mu.Unlock()
					if err != nil || len(claimed) == 0 {
						return
					}
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	assert.Len(t, counts, len(ds))
	for id, n := range counts {
		assert.Equal(t, 1, n, "%s claimed %d times", id, n)
	}
}

func testSharedCheckpoints(t *testing.T) {
	ctx := context.Background()
	db := open(t, pgtest.URL(t))
	// As the read model creates it, with a checkpoint of its own.
	_, err := db.Pool.Exec(ctx, `CREATE TABLE checkpoints (name TEXT NOT NULL PRIMARY KEY, position BIGINT NOT NULL);
		INSERT INTO checkpoints (name, position) VALUES ('users', 42)`)
	require.NoError(t, err)
	s := newStore(t, db)
	require.NoError(t, s.Enqueue(ctx, delivery.ConsumerName, 7, nil))
	pos, err := s.Checkpoint(ctx, delivery.ConsumerName)
	require.NoError(t, err)
	assert.Equal(t, int64(7), pos)
	pos, err = s.Checkpoint(ctx, "users")
	require.NoError(t, err)
	assert.Equal(t, int64(42), pos)
}

// testEnqueueRacesDelete deletes webhooks while deliveries for them are enqueued: each enqueue either stores
// the delivery before the delete (which then removes it) or skips it, and never fails.
func testEnqueueRacesDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, open(t, pgtest.URL(t)))
	now := time.Now().UTC()
	for i := range 100 {
		id := fmt.Sprintf("wh_%03d", i)
		require.NoError(t, s.CreateWebhook(ctx, delivery.Webhook{ID: id, Name: id, URL: "https://example.com/" + id,
			Events: []string{delivery.All}, Enabled: true, ContentType: "application/json", CreatedAt: now, UpdatedAt: now}))
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			assert.NoError(t, s.DeleteWebhook(ctx, id))
		}()
		go func() {
			defer wg.Done()
			assert.NoError(t, s.Enqueue(ctx, delivery.ConsumerName, int64(i+1), []delivery.Delivery{{
				ID: "dlv_" + id, WebhookID: id, EventID: "evt", EventType: "user.created", Position: int64(i + 1),
				Payload: []byte(`{}`), Status: delivery.StatusPending, CreatedAt: now, NextAttemptAt: now,
			}}))
		}()
		wg.Wait()
	}
	n, err := s.Pending(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "no delivery outlives its webhook")
	pos, err := s.Checkpoint(ctx, delivery.ConsumerName)
	require.NoError(t, err)
	assert.Equal(t, int64(100), pos)
}
