package stream

import (
	"context"
	"encoding/json"
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

// NewMessage wraps a stored event in a Watermill message whose UUID is the event id, so a broker that
// de-duplicates on message id (JetStream) drops a second publish of the same event.
func NewMessage(e eventstore.Event) (*message.Message, error) {
	payload, err := json.Marshal(wireEvent(e))
	if err != nil {
		return nil, fmt.Errorf("projection: encode %s: %w", e.ID, err)
	}
	msg := message.NewMessage(e.ID, payload)
	msg.Metadata.Set("position", strconv.FormatInt(e.Position, 10))
	msg.Metadata.Set("stream", e.StreamID)
	msg.Metadata.Set("type", e.Type)
	return msg, nil
}

type eventKey struct{}

// WithEvent attaches the stored event itself to a message's context. An in-process pub/sub that preserves
// contexts (GoChannel with PreserveContext) then hands it to every consumer without a JSON decode each; over a
// network the payload is decoded as usual.
func WithEvent(msg *message.Message, e eventstore.Event) {
	msg.SetContext(context.WithValue(msg.Context(), eventKey{}, e))
}

// EventOf returns the stored event a message carries.
func EventOf(msg *message.Message) (eventstore.Event, error) {
	if e, ok := msg.Context().Value(eventKey{}).(eventstore.Event); ok && e.ID == msg.UUID {
		return e, nil
	}
	var w wireEvent
	if err := json.Unmarshal(msg.Payload, &w); err != nil {
		return eventstore.Event{}, fmt.Errorf("%w: decode message %s: %v", ErrUnprocessable, msg.UUID, err)
	}
	if w.ID == "" || w.StreamID == "" || w.Version <= 0 || w.Position <= 0 {
		return eventstore.Event{}, fmt.Errorf("%w: message %s is not a stored event", ErrUnprocessable, msg.UUID)
	}
	return eventstore.Event(w), nil
}
