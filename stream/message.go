package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/userhook/userhook/eventstore"
)

// Topic is the Watermill topic of an event: one per event family (stream type). It has no dots, so it can name
// a JetStream stream as well as a subject.
func Topic(streamType string) string { return "userhook_events_" + streamType }

// UsersTopic carries every UserAggregate event.
var UsersTopic = Topic("UserAggregate")

type wireEvent struct {
	ID         string            `json:"id"`
	StreamID   string            `json:"stream"`
	StreamType string            `json:"streamType"`
	Version    int64             `json:"version"`
	Position   int64             `json:"position"`
	Type       string            `json:"type"`
	Data       json.RawMessage   `json:"data"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	OccurredAt time.Time         `json:"occurredAt"`
	RecordedAt time.Time         `json:"recordedAt"`
}

// maxMessageEvents and maxMessageBytes bound what one message carries, well under NATS's 1 MiB payload.
const (
	maxMessageEvents = 1000
	maxMessageBytes  = 256 << 10
)

// NewMessage wraps a run of consecutive stored events (in position order) in one Watermill message, so that a
// consumer can apply them in one transaction and a broker carries one message, and one acknowledgement, for
// all of them. The message's UUID names the run (a single event's is the event id), so a broker that
// de-duplicates on message id (JetStream) drops a second publish of the same run; consumers skip what they
// already applied, so a run published again with other bounds (a relay that took over) is harmless.
func NewMessage(events ...eventstore.Event) (*message.Message, error) {
	if len(events) == 0 {
		return nil, errors.New("stream: a message carries at least one event")
	}
	wire := make([]wireEvent, len(events))
	for i, e := range events {
		wire[i] = wireEvent(e)
	}
	var payload []byte
	var err error
	if len(events) == 1 {
		payload, err = json.Marshal(wire[0])
	} else {
		payload, err = json.Marshal(wire)
	}
	if err != nil {
		return nil, fmt.Errorf("stream: encode %s: %w", events[0].ID, err)
	}
	first, last := events[0], events[len(events)-1]
	id := first.ID
	if len(events) > 1 {
		id = fmt.Sprintf("run-%d-%d-%s", first.Position, last.Position, first.ID)
	}
	msg := message.NewMessage(id, payload)
	msg.Metadata.Set("position", strconv.FormatInt(first.Position, 10))
	msg.Metadata.Set("last", strconv.FormatInt(last.Position, 10))
	msg.Metadata.Set("events", strconv.Itoa(len(events)))
	return msg, nil
}

// Messages cuts events into the messages that carry them: runs of at most maxMessageEvents events and about
// maxMessageBytes of payload. Each message also carries its events in its context (WithEvents).
func Messages(events []eventstore.Event) ([]*message.Message, error) {
	var msgs []*message.Message
	for len(events) > 0 {
		n, size := 0, 0
		for n < len(events) && n < maxMessageEvents && (n == 0 || size+eventSize(events[n]) <= maxMessageBytes) {
			size += eventSize(events[n])
			n++
		}
		msg, err := NewMessage(events[:n]...)
		if err != nil {
			return nil, err
		}
		WithEvents(msg, events[:n:n]) // no spare capacity reaching into the next message's events
		msgs = append(msgs, msg)
		events = events[n:]
	}
	return msgs, nil
}

// eventSize estimates an event's encoded size.
func eventSize(e eventstore.Event) int {
	size := 256 + len(e.ID) + len(e.StreamID) + len(e.StreamType) + len(e.Type) + len(e.Data)
	for k, v := range e.Metadata {
		size += len(k) + len(v) + 8
	}
	return size
}

type eventsKey struct{}

// WithEvents attaches the stored events themselves to a message's context. An in-process pub/sub that
// preserves contexts (GoChannel with PreserveContext) then hands them to every consumer without a JSON decode
// each; over a network the payload is decoded as usual.
func WithEvents(msg *message.Message, events []eventstore.Event) {
	msg.SetContext(context.WithValue(msg.Context(), eventsKey{}, events))
}

// EventsOf returns the stored events a message carries, in position order. It reads a message of one event
// (an object) as well as a run (an array), so messages published by an earlier release still decode.
func EventsOf(msg *message.Message) ([]eventstore.Event, error) {
	if events, ok := msg.Context().Value(eventsKey{}).([]eventstore.Event); ok && len(events) > 0 {
		return events, nil
	}
	payload := bytes.TrimLeft(msg.Payload, " \t\r\n")
	var wire []wireEvent
	if len(payload) > 0 && payload[0] == '[' {
		if err := json.Unmarshal(payload, &wire); err != nil {
			return nil, fmt.Errorf("%w: decode message %s: %v", ErrUnprocessable, msg.UUID, err)
		}
	} else {
		var w wireEvent
		if err := json.Unmarshal(payload, &w); err != nil {
			return nil, fmt.Errorf("%w: decode message %s: %v", ErrUnprocessable, msg.UUID, err)
		}
		wire = []wireEvent{w}
	}
	if len(wire) == 0 {
		return nil, fmt.Errorf("%w: message %s carries no event", ErrUnprocessable, msg.UUID)
	}
	events := make([]eventstore.Event, len(wire))
	for i, w := range wire {
		if w.ID == "" || w.StreamID == "" || w.Version <= 0 || w.Position <= 0 {
			return nil, fmt.Errorf("%w: message %s does not carry stored events", ErrUnprocessable, msg.UUID)
		}
		events[i] = eventstore.Event(w)
	}
	return events, nil
}
