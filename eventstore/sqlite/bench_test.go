package sqlite_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

func benchStore(b *testing.B) *sqlite.Store {
	b.Helper()
	s, err := sqlite.New(context.Background(), sqlitetest.Open(b))
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s
}

var benchSeq atomic.Int64

func benchEvent() eventstore.Event {
	n := benchSeq.Add(1)
	return eventstore.Event{ID: fmt.Sprintf("01b-%012d", n), StreamType: "UserAggregate", Type: "user.registered.v1",
		Data: []byte(`{"email":"user@example.com"}`)}
}

// BenchmarkAppendSerial is one appender: every append is its own commit and fsync.
func BenchmarkAppendSerial(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Append(ctx, fmt.Sprintf("s-%d", i), 0, benchEvent()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendConcurrent is 64 appenders of new streams: group commit shares transactions and fsyncs.
func BenchmarkAppendConcurrent(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32) // 32 x GOMAXPROCS(2) = 64 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Append(ctx, fmt.Sprintf("p-%d", n.Add(1)), 0, benchEvent()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Appends)/float64(max(st.Commits, 1)), "appends/commit")
}
