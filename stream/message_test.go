package stream_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/stream"
)

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	e := eventstore.Event{ID: "evt-1", StreamID: "u1", StreamType: "UserAggregate", Version: 2, Position: 7,
		Type: "user.registered.v1", Data: json.RawMessage(`{"email":"a@example.com"}`), Metadata: map[string]string{"k": "v"},
		OccurredAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), RecordedAt: time.Date(2024, 1, 1, 0, 0, 1, 0, time.UTC)}
	msg, err := stream.NewMessage(e)
	require.NoError(t, err)
	assert.Equal(t, "evt-1", msg.UUID, "the message id is the event id (JetStream de-duplicates on it)")
	assert.Equal(t, "7", msg.Metadata.Get("position"))

	// Over a network only the payload travels.
	decoded, err := stream.EventsOf(message.NewMessage(msg.UUID, msg.Payload))
	require.NoError(t, err)
	assert.Equal(t, []eventstore.Event{e}, decoded)

	// In process the events ride in the context and need no decode.
	inProcess := message.NewMessage(msg.UUID, []byte("not json"))
	stream.WithEvents(inProcess, []eventstore.Event{e})
	got, err := stream.EventsOf(inProcess)
	require.NoError(t, err)
	assert.Equal(t, []eventstore.Event{e}, got)

	_, err = stream.EventsOf(message.NewMessage("x", []byte(`{"id":"x"}`)))
	assert.ErrorIs(t, err, stream.ErrUnprocessable, "a message that is not a stored event")
	_, err = stream.EventsOf(message.NewMessage("x", []byte(`[]`)))
	assert.ErrorIs(t, err, stream.ErrUnprocessable, "a run of no events")
}

// TestMessagesCarryRuns: a relay's read goes out in as few messages as fit, each a run in position order,
// bounded in events and bytes, and decodes back to the same events.
func TestMessagesCarryRuns(t *testing.T) {
	t.Parallel()
	var events []eventstore.Event
	for i := 1; i <= 2500; i++ {
		events = append(events, eventstore.Event{ID: fmt.Sprintf("evt-%d", i), StreamID: "u1", StreamType: "UserAggregate",
			Version: int64(i), Position: int64(i), Type: "user.updated.v1", Data: json.RawMessage(`{"name":"x"}`),
			OccurredAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), RecordedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	}
	// One large event forces a cut by size.
	events[300].Data = json.RawMessage(`{"name":"` + strings.Repeat("x", 300<<10) + `"}`)
	msgs, err := stream.Messages(events)
	require.NoError(t, err)
	var got []eventstore.Event
	for _, m := range msgs {
		assert.LessOrEqual(t, len(m.Payload), 1<<20, "under NATS's payload limit")
		decoded, err := stream.EventsOf(message.NewMessage(m.UUID, m.Payload))
		require.NoError(t, err)
		assert.LessOrEqual(t, len(decoded), 1000)
		got = append(got, decoded...)
	}
	assert.Equal(t, events, got, "every event once, in order")
	assert.Less(t, len(msgs), 10, "a few messages, not one per event")
	again, err := stream.Messages(events)
	require.NoError(t, err)
	assert.Equal(t, msgs[1].UUID, again[1].UUID, "the same run has the same id: JetStream drops its second publish")
}
