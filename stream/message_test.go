package stream_test

import (
	"encoding/json"
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
	decoded, err := stream.EventOf(message.NewMessage(msg.UUID, msg.Payload))
	require.NoError(t, err)
	assert.Equal(t, e, decoded)

	// In process the event rides in the context and needs no decode.
	inProcess := message.NewMessage(msg.UUID, []byte("not json"))
	stream.WithEvent(inProcess, e)
	got, err := stream.EventOf(inProcess)
	require.NoError(t, err)
	assert.Equal(t, e, got)

	_, err = stream.EventOf(message.NewMessage("x", []byte(`{"id":"x"}`)))
	assert.Error(t, err, "a message that is not a stored event")
}
