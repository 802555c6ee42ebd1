package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/stream"
)

// Source is the CloudEvents source of every delivery.
const Source = "userhook"

// CloudEvent is the structured CloudEvent a delivery posts.
type CloudEvent struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Data            EventData `json:"data"`
}

// EventData is a delivery's data: the user's state after the event, and the stored event itself.
type EventData struct {
	User  projection.UserView `json:"user"`
	Event StoredEvent         `json:"event"`
}

// StoredEvent describes the stored event behind a delivery.
type StoredEvent struct {
	Type     string          `json:"type"`
	Position int64           `json:"position"`
	Version  int64           `json:"version"`
	Data     json.RawMessage `json:"data"`
}

// Consumer turns each applied event into one durable delivery per matching enabled webhook. It is a Watermill
// handler; it writes the deliveries and its checkpoint in one transaction, and a redelivered event creates
// nothing new (one delivery per webhook and event).
type Consumer struct {
	Store  Store
	Events eventstore.Store
	Now    func() time.Time
	// Wake is told that deliveries were created, so the sender need not wait for its poll.
	Wake func()
}

// Handle is the Watermill handler for a broker that redelivers what was not acknowledged: it creates the
// deliveries of the message's events in one transaction (stream.Durable).
func (c *Consumer) Handle(msg *message.Message) error {
	return stream.Durable(c.ConsumeBatch)(msg)
}

// ConsumeBatch creates the deliveries of events (in position order) and advances the checkpoint to the last
// one, in one transaction.
func (c *Consumer) ConsumeBatch(ctx context.Context, events []eventstore.Event) error {
	if len(events) == 0 {
		return nil
	}
	var hooks []Webhook
	loaded := false
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	at := now().UTC()
	var deliveries []Delivery
	for _, e := range events {
		typ := aggregate.PublicType(e.Type)
		if typ == "" {
			continue
		}
		if !loaded {
			var err error
			if hooks, err = c.Store.Webhooks(ctx); err != nil {
				return err
			}
			loaded = true
		}
		var payload []byte
		for _, w := range hooks {
			if !w.Matches(typ) || e.Position <= w.FromPosition {
				continue
			}
			if payload == nil {
				var err error
				if payload, err = c.payload(ctx, e, typ); err != nil {
					return err
				}
			}
			deliveries = append(deliveries, Delivery{
				ID: NewID("dlv_"), WebhookID: w.ID, EventID: e.ID, EventType: typ, Position: e.Position,
				Payload: payload, Status: StatusPending, CreatedAt: at, NextAttemptAt: at,
			})
		}
	}
	if err := c.Store.Enqueue(ctx, ConsumerName, events[len(events)-1].Position, deliveries); err != nil {
		return err
	}
	if len(deliveries) > 0 && c.Wake != nil {
		c.Wake()
	}
	return nil
}

// payload builds the CloudEvent with the user's state right after e.
func (c *Consumer) payload(ctx context.Context, e eventstore.Event, typ string) ([]byte, error) {
	history, err := c.Events.Load(ctx, e.StreamID)
	if err != nil {
		return nil, err
	}
	u := aggregate.User{ID: e.StreamID}
	for _, se := range history {
		if se.Version > e.Version {
			break
		}
		if err := u.ApplyStored(se); err != nil {
			return nil, fmt.Errorf("%w: delivery: event %s at position %d: %v", stream.ErrUnprocessable, se.ID, se.Position, err)
		}
	}
	if u.Version != e.Version {
		return nil, fmt.Errorf("%w: delivery: stream %s has no version %d", stream.ErrUnprocessable, e.StreamID, e.Version)
	}
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	return json.Marshal(CloudEvent{
		SpecVersion: "1.0", ID: e.ID, Source: Source, Type: typ, Subject: e.StreamID, Time: e.OccurredAt,
		DataContentType: "application/json",
		Data:            EventData{User: projection.View(u), Event: StoredEvent{Type: e.Type, Position: e.Position, Version: e.Version, Data: data}},
	})
}
