package stream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestLagWatch(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name    string
		steps   []struct{ pos, store int64 }
		at      []int
		failing bool
	}{
		{"caught up and idle for long", []struct{ pos, store int64 }{{5, 5}, {5, 5}}, []int{0, 100}, false},
		{"behind but advancing", []struct{ pos, store int64 }{{1, 50}, {20, 80}, {60, 90}}, []int{0, 20, 40}, false},
		{"behind and stalled", []struct{ pos, store int64 }{{10, 50}, {10, 60}}, []int{0, 31}, true},
		{"behind, stalled for less than the limit", []struct{ pos, store int64 }{{10, 50}, {10, 60}}, []int{0, 29}, false},
		{"too far behind though advancing", []struct{ pos, store int64 }{{10, 50}, {20, 2000}}, []int{0, 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &LagWatch{MaxLag: 1000, Stall: 30 * time.Second}
			var err error
			for i, s := range tt.steps {
				err = w.Observe("users-projection", s.pos, s.store, at(tt.at[i]))
			}
			if tt.failing {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}
