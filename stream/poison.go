package stream

import (
	"errors"
	"log/slog"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// ErrUnprocessable marks a message that no retry can process: it does not decode to a stored event, or its
// event is of a type or shape this build cannot apply (an event written by a newer release, say). Only such
// messages go to the poison topic; every other failure (a database that is down) is retried until it
// passes, since the message is right and the store is what a consumer recovers from.
var ErrUnprocessable = errors.New("projection: unprocessable message")

// PoisonedPositionKey is the metadata key of a poisoned run's first event that could not be applied.
const PoisonedPositionKey = "position_poisoned"

// PoisonTopic receives the messages that failed every retry of their handler, with why in their metadata
// (Watermill's PoisonQueue keys: reason_poisoned, handler_poisoned, topic_poisoned).
var PoisonTopic = "userhook_poison"

// poisonPublisher is the PoisonQueue middleware's publisher: it logs and counts each poisoned message, then
// publishes it to the poison topic.
type poisonPublisher struct {
	message.Publisher
	log     *slog.Logger
	observe func(handler string, position int64)
}

// maxReason bounds the reason logged for a poisoned message.
const maxReason = 512

func (p *poisonPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, msg := range msgs {
		handler := msg.Metadata.Get(middleware.PoisonedHandlerKey)
		reason := msg.Metadata.Get(middleware.ReasonForPoisonedKey)
		if len(reason) > maxReason {
			reason = reason[:maxReason] + "…"
		}
		var position int64
		if events, err := EventsOf(msg); err == nil {
			position = events[0].Position
		}
		if at, err := strconv.ParseInt(msg.Metadata.Get(PoisonedPositionKey), 10, 64); err == nil {
			position = at // the event that failed, not the run's first
		}
		p.log.Error("a message failed every retry and went to the poison topic", "handler", handler,
			"event", msg.UUID, "position", position, "topic", topic, "reason", reason)
		if p.observe != nil {
			p.observe(handler, position)
		}
	}
	return p.Publisher.Publish(topic, msgs...)
}
