package main

import (
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

// replayMemoryLimit is the soft memory limit of a replay: the Go runtime's part of the 150 MB a replay of
// 100,000 users stays within, the rest being the binary and SQLite's caches (about 30 MB).
const replayMemoryLimit = 100 << 20

type replayCmd struct {
	databaseFlags `embed:""`
	CPUProfile    string `name:"cpuprofile" help:"write a CPU profile of the replay to this file" placeholder:"FILE"`
}

// Run rebuilds the read model, with a progress bar on a terminal and a one-line summary always.
func (c *replayCmd) Run(s *session) error {
	stdout, stderr := s.stdout, s.stderr
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
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
	cfg := c.config()
	cfg.DatabaseTimeout = 0
	st, err := openStorage(s.ctx, cfg)
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
	// process growing (GOMEMLIMIT, when set, wins). Below it, the collector lets the heap grow to five times
	// what it kept rather than twice (GOGC, when set, wins): while the replay reads, the heap is mostly the
	// read pages' garbage, and every collection marks all the users folded so far again.
	if os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(replayMemoryLimit))
	}
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	sum, err := projection.Replay(s.ctx, st.events, st.reads, progress)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	fmt.Fprintf(stdout, "replayed %d events into %d users up to position %d in %.2f s (%.0f events/s)\n",
		sum.Events, sum.Users, sum.Position, sum.Elapsed.Seconds(), sum.Rate())
	return nil
}

type eventsCmd struct {
	databaseFlags `embed:""`
	Stream        string        `help:"only this user's events" placeholder:"USER_ID"`
	From          int64         `help:"first global position to print" default:"1" placeholder:"POSITION"`
	Follow        bool          `help:"keep printing new events as they are stored"`
	Poll          time.Duration `help:"how often --follow looks for new events" default:"200ms"`
}

// Run prints the events from --from on, and with --follow waits for more until the context ends.
func (c *eventsCmd) Run(s *session) error {
	ctx, stdout := s.ctx, s.stdout
	if c.From < 0 {
		return fmt.Errorf("events: --from must not be negative")
	}
	st, err := openStorage(s.ctx, c.config())
	if err != nil {
		return err
	}
	defer st.Close()
	enc := json.NewEncoder(stdout)
	after := max(c.From, 1) - 1
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
			if c.Stream != "" && e.StreamID != c.Stream {
				continue
			}
			if err := enc.Encode(transport.ToEventBody(e, true)); err != nil {
				return err
			}
		}
		if len(page) > 0 {
			continue
		}
		if !c.Follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-committed:
		case <-time.After(c.Poll):
		}
	}
}
