package postgresdb

import (
	"context"
	"log/slog"
	"time"

	"github.com/userhook/userhook/internal/retry"
)

// Listen hands fn the payload of every NOTIFY on channel until ctx ends, on a pooled connection it holds for
// the purpose. When the connection fails it logs, pauses and listens again; caughtUp, when set, runs each time
// the LISTEN is in place, so the caller can read what it may have missed meanwhile.
func (db *DB) Listen(ctx context.Context, channel string, log *slog.Logger, caughtUp func(ctx context.Context), fn func(payload string)) {
	pause := retry.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	for ctx.Err() == nil {
		if err := db.listenOnce(ctx, channel, caughtUp, fn); err != nil && ctx.Err() == nil {
			log.Warn("listening for notifications failed, retrying", "channel", channel, "error", err.Error())
			pause.Wait(ctx)
		}
	}
}

func (db *DB) listenOnce(ctx context.Context, channel string, caughtUp func(ctx context.Context), fn func(payload string)) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	// The connection goes back to the pool: it must not go on receiving notifications there.
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_, _ = conn.Exec(uctx, "UNLISTEN "+channel)
		cancel()
	}()
	if caughtUp != nil {
		caughtUp(ctx)
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
