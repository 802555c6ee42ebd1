package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/sqlitedb"
)

// C2 stores one event row per new user, positions counted in Go without a gap; C3 also the user's row.
func TestCeilingSQLite(t *testing.T) {
	t.Parallel()
	for _, level := range []int{2, 3} {
		t.Run(fmt.Sprintf("C%d", level), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "ceiling.db")
			h, closeFn, err := ceilingSQLite(context.Background(), path, level)
			require.NoError(t, err)
			tok := token()
			const users = 200
			var wg sync.WaitGroup
			for i := range users {
				wg.Go(func() {
					body := fmt.Sprintf(`{"detail":{"data":{"user_name":"U%d@example.com","user_id":"auth0|u%d"}}}`, i, i)
					req := httptest.NewRequest(http.MethodPost, "/users", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("X-API-Key", apiKey)
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					assert.Equal(t, http.StatusOK, rec.Code)
					assert.NotEmpty(t, rec.Header().Get("X-Event-Position"))
				})
			}
			wg.Wait()
			closeFn()

			db, err := sqlitedb.Open(path)
			require.NoError(t, err)
			defer db.Close()
			var n, lo, hi, streams int64
			require.NoError(t, db.Read.QueryRow(`SELECT COUNT(*), MIN(position), MAX(position), COUNT(DISTINCT stream_id) FROM events`).Scan(&n, &lo, &hi, &streams))
			assert.Equal(t, []int64{users, 1, users, users}, []int64{n, lo, hi, streams})
			var meta string
			require.NoError(t, db.Read.QueryRow(`SELECT metadata FROM events WHERE stream_id = 'auth0|u7'`).Scan(&meta))
			assert.Contains(t, meta, `"source":"POST /users"`)

			var rows int64
			err = db.Read.QueryRow(`SELECT COUNT(*) FROM users WHERE email_key = lower(email) AND version = 1`).Scan(&rows)
			if level == 2 {
				assert.ErrorContains(t, err, "no such table", "C2 has no read model")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, int64(users), rows)
			var email string
			var pos int64
			require.NoError(t, db.Read.QueryRow(`SELECT u.email, u.position FROM users u JOIN events e ON e.stream_id = u.user_id AND e.position = u.position
				WHERE u.user_id = 'auth0|u7'`).Scan(&email, &pos))
			assert.Equal(t, "U7@example.com", email)
			assert.Positive(t, pos)
		})
	}
}

func TestReadVM(t *testing.T) {
	t.Parallel()
	v, err := readVM(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, v.rss)
	assert.GreaterOrEqual(t, v.hwm, v.rss)
	_, err = readVM(-1)
	assert.Error(t, err)
}
