package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/transport"
)

// isTerminal says whether w is a terminal, where a progress bar belongs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func cmdReplay(ctx context.Context, cfg Config, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("userhook replay", stderr)
	cfg.databaseFlags(fs)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the replay to this file")
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// A rebuild swaps the whole users table in one statement, which may take longer than a request's deadline.
	cfg.DatabaseTimeout = 0
	st, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	var progress func(done, total int64)
	if isTerminal(stderr) {
		var bar *progressbar.ProgressBar
		progress = func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("replaying events"), progressbar.OptionShowCount(),
					progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"),
					progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
			}
			_ = bar.Set64(done)
		}
		defer func() {
			if bar != nil {
				_ = bar.Finish()
			}
		}()
	}
	// Replay holds every user in memory; a soft memory limit makes the collector work harder instead of the
	// process growing (GOMEMLIMIT, when set, wins).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(150 << 20)
	}
	sum, err := projection.Replay(ctx, st.events, st.reads, progress)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	fmt.Fprintf(stdout, "replayed %d events into %d users up to position %d in %.2f s (%.0f events/s)\n",
		sum.Events, sum.Users, sum.Position, sum.Elapsed.Seconds(), sum.Rate())
	return nil
}

func cmdEvents(ctx context.Context, cfg Config, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("userhook events", stderr)
	cfg.databaseFlags(fs)
	stream := fs.String("stream", "", "only this user's events")
	from := fs.Int64("from", 1, "first global position to print")
	follow := fs.Bool("follow", false, "keep printing new events as they are stored")
	poll := fs.Duration("poll", 200*time.Millisecond, "how often --follow looks for new events")
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if *from < 0 {
		return fmt.Errorf("events: --from must not be negative")
	}
	st, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	enc := json.NewEncoder(stdout)
	after := max(*from, 1) - 1
	notifier, _ := st.events.(eventstore.Notifier)
	for {
		var committed <-chan struct{}
		if notifier != nil {
			committed = notifier.Committed()
		}
		page, err := st.events.ReadAll(ctx, after, 1000)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, e := range page {
			after = e.Position
			if *stream != "" && e.StreamID != *stream {
				continue
			}
			if err := enc.Encode(transport.ToEventBody(e, true)); err != nil {
				return err
			}
		}
		if len(page) > 0 {
			continue
		}
		if !*follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-committed:
		case <-time.After(*poll):
		}
	}
}
