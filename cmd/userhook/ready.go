package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/transport"
)

// consumers are the consumers of the event stream, by their checkpoint names.
var consumers = []string{projection.UsersProjection, delivery.ConsumerName}

// How the store check judges writes: an append that succeeded within writeFresh proves the store takes
// writes; one that failed within failureHolds (and none succeeded since) proves it does not; otherwise a
// probe write decides.
const (
	writeFresh   = 5 * time.Second
	failureHolds = 10 * time.Second
)

// readiness answers /readyz: the store takes writes, the pub/sub is reachable, and every consumer runs and
// keeps up with the store (LagWatch).
func (m *Main) readiness(ctx context.Context) transport.Readiness {
	r := transport.Readiness{Relay: "standby"}
	if m.pipeline.Leading() {
		r.Relay = "leading"
	}
	r.Checks = append(r.Checks, m.check("store", m.storeTakesWrites(ctx)))
	r.Checks = append(r.Checks, m.check("pubsub", m.bus.Reachable(ctx)))
	pos, err := m.positions(ctx)
	if err != nil {
		m.log.Warn("readiness: reading positions failed", "error", err.Error())
	} else {
		r.Positions = pos
		r.Lag = map[string]int64{}
	}
	now := time.Now()
	for _, name := range consumers {
		var err error
		if cerr := m.pipeline.Consumer(name); cerr != nil {
			err = shown{"not running", cerr}
		}
		if err == nil && pos != nil {
			r.Lag[name] = pos["store"] - pos[name]
			if lerr := m.lag.Observe(name, pos[name], pos["store"], now); lerr != nil {
				err = shown{lerr.Error(), nil} // LagWatch's words are ours
			}
		}
		if err == nil && pos == nil {
			err = shown{"its position cannot be read", nil}
		}
		r.Checks = append(r.Checks, m.check(name, err))
	}
	return r
}

// check turns a check's error into its result; the error itself, which may hold a driver's text, is logged
// rather than shown.
func (m *Main) check(name string, err error) transport.CheckResult {
	if err == nil {
		return transport.CheckResult{Name: name}
	}
	m.log.Warn("readiness check failed", "check", name, "error", err.Error())
	var words shown
	if errors.As(err, &words) {
		return transport.CheckResult{Name: name, Failed: words.words}
	}
	return transport.CheckResult{Name: name, Failed: "failing"}
}

// shown is a readiness failure whose words are ours, safe to show on /readyz; the cause is logged.
type shown struct {
	words string
	cause error
}

func (e shown) Error() string {
	if e.cause == nil {
		return e.words
	}
	return e.words + ": " + e.cause.Error()
}

// storeTakesWrites says whether the event store took a write lately, probing with one when it did not.
func (m *Main) storeTakesWrites(ctx context.Context) error {
	p, ok := m.storage.events.(eventstore.Prober)
	if !ok {
		if err := m.storage.events.Ping(ctx); err != nil {
			return shown{"the store does not answer", err}
		}
		return nil
	}
	w, now := p.Writes(), time.Now()
	switch {
	case !w.Failing() && now.Sub(w.LastSuccess) < writeFresh:
		return nil
	case w.Failing() && now.Sub(w.LastFailure) < failureHolds:
		return shown{fmt.Sprintf("the last write failed %s ago and none succeeded since", now.Sub(w.LastFailure).Round(time.Second)), nil}
	}
	if err := p.Probe(ctx); err != nil {
		return shown{"a probe write failed", err}
	}
	return nil
}
