package stream_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
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

// TestBinaryRoundTrip: what NewMessage encodes, EventsOf decodes to the same events, times in UTC.
func TestBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	berlin := time.FixedZone("CEST", 2*60*60)
	one := eventstore.Event{ID: "evt-1", StreamID: "u1", StreamType: "UserAggregate", Version: 1, Position: 1,
		Type: "user.registered.v1", Data: json.RawMessage(`{"email": "a@example.com"}`),
		OccurredAt: time.Date(2024, 7, 1, 12, 0, 0, 987654321, berlin)}
	msg, err := stream.NewMessage(one)
	require.NoError(t, err)
	require.Equal(t, "binary-v1", msg.Metadata.Get("encoding"))
	require.True(t, strings.HasPrefix(string(msg.Payload), "UHE\x01"))
	got, err := stream.EventsOf(message.NewMessage(msg.UUID, msg.Payload))
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.True(t, got[0].OccurredAt.Equal(one.OccurredAt))
	require.Equal(t, time.UTC, got[0].OccurredAt.Location())
	require.True(t, got[0].RecordedAt.IsZero(), "a zero time stays zero")
	require.Nil(t, got[0].Metadata, "no metadata decodes as nil")
	want := one
	want.OccurredAt = one.OccurredAt.UTC()
	require.Equal(t, want, got[0], "the data's bytes as they were, spaces too")

	events := make([]eventstore.Event, 1000)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := range events {
		events[i] = eventstore.Event{ID: fmt.Sprintf("evt-%d", i), StreamID: fmt.Sprintf("user-%d", i%7),
			StreamType: "UserAggregate", Version: int64(i/7 + 1), Position: int64(1<<40 + i), Type: "user.updated.v1",
			Data:       json.RawMessage(fmt.Sprintf(`{"name":"Zoë 名前 %d 🎉"}`, i)),
			Metadata:   map[string]string{"request_id": fmt.Sprintf("req-%d", i), "source": "PATCH /users/ü", "ключ": "значение"},
			OccurredAt: at.Add(time.Duration(i) * time.Nanosecond), RecordedAt: at.Add(time.Duration(i) * time.Second)}
		switch i % 3 {
		case 1:
			events[i].Data = json.RawMessage(`{}`)
			events[i].Metadata = nil
		case 2:
			events[i].Metadata = map[string]string{"": "", "trace": fmt.Sprint(i)}
		}
	}
	run, err := stream.NewMessage(events...)
	require.NoError(t, err)
	again, err := stream.NewMessage(events...)
	require.NoError(t, err)
	require.Equal(t, run.Payload, again.Payload, "the payload is deterministic, whatever the maps' order")
	got, err = stream.EventsOf(message.NewMessage(run.UUID, run.Payload))
	require.NoError(t, err)
	require.Equal(t, events, got)
}

// TestEventsOfReadsEarlierJSON: messages an earlier release published, as JSON, still decode.
func TestEventsOfReadsEarlierJSON(t *testing.T) {
	t.Parallel()
	type old struct {
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
	at := time.Date(2024, 1, 1, 0, 0, 0, 5, time.UTC)
	first := old{ID: "evt-1", StreamID: "u1", StreamType: "UserAggregate", Version: 1, Position: 10,
		Type: "user.registered.v1", Data: json.RawMessage(`{"email":"a@example.com"}`),
		Metadata: map[string]string{"request_id": "r1"}, OccurredAt: at, RecordedAt: at.Add(time.Second)}
	want := eventstore.Event{ID: "evt-1", StreamID: "u1", StreamType: "UserAggregate", Version: 1, Position: 10,
		Type: "user.registered.v1", Data: json.RawMessage(`{"email":"a@example.com"}`),
		Metadata: map[string]string{"request_id": "r1"}, OccurredAt: at, RecordedAt: at.Add(time.Second)}

	object, err := json.Marshal(first)
	require.NoError(t, err)
	got, err := stream.EventsOf(message.NewMessage("evt-1", object))
	require.NoError(t, err)
	require.Equal(t, []eventstore.Event{want}, got)

	second := map[string]any{"id": "evt-2", "stream": "u2", "streamType": "UserAggregate", "version": 3,
		"position": 11, "type": "user.deleted.v1", "data": map[string]any{}, "occurredAt": at, "recordedAt": at}
	array, err := json.Marshal([]any{first, second})
	require.NoError(t, err)
	got, err = stream.EventsOf(message.NewMessage("run-10-11-evt-1", append([]byte(" \n"), array...)))
	require.NoError(t, err)
	require.Equal(t, []eventstore.Event{want, {ID: "evt-2", StreamID: "u2", StreamType: "UserAggregate", Version: 3,
		Position: 11, Type: "user.deleted.v1", Data: json.RawMessage(`{}`), OccurredAt: at, RecordedAt: at}}, got)

	second["position"] = 0
	array, err = json.Marshal([]any{first, second})
	require.NoError(t, err)
	_, err = stream.EventsOf(message.NewMessage("x", array))
	require.ErrorIs(t, err, stream.ErrUnprocessable, "an event without a position")
}

func binaryPayload(t testing.TB, events ...eventstore.Event) []byte {
	t.Helper()
	msg, err := stream.NewMessage(events...)
	require.NoError(t, err)
	return msg.Payload
}

// TestEventsOfRejectsBrokenBinary: a truncated or corrupt payload is unprocessable, and never a panic.
func TestEventsOfRejectsBrokenBinary(t *testing.T) {
	t.Parallel()
	events := realisticEvents(3)
	events[1].OccurredAt, events[2].Metadata = time.Time{}, nil
	payload := binaryPayload(t, events...)
	decode := func(p []byte) error {
		_, err := stream.EventsOf(message.NewMessage("x", p))
		return err
	}
	require.NoError(t, decode(payload))
	for n := range len(payload) {
		err := decode(payload[:n:n])
		require.Error(t, err, "cut at %d of %d bytes", n, len(payload))
		require.True(t, errors.Is(err, stream.ErrUnprocessable), "cut at %d: %v", n, err)
	}
	require.ErrorIs(t, decode(append(payload[:len(payload):len(payload)], 0)), stream.ErrUnprocessable, "trailing bytes")

	header := func(count uint64) []byte { return binary.AppendUvarint([]byte("UHE\x01"), count) }
	require.ErrorIs(t, decode(header(0)), stream.ErrUnprocessable, "no event")
	overflow := append(header(1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)
	err := decode(append(overflow, make([]byte, 20)...))
	require.ErrorIs(t, err, stream.ErrUnprocessable, "a varint of 11 bytes")
	require.ErrorContains(t, err, "overflows")

	field := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	event := func(id string, version int64, pairs []string, marker byte) []byte {
		b := field(field(field(field(field(nil, id), "u1"), "UserAggregate"), "t"), "{}")
		b = binary.AppendVarint(binary.AppendVarint(b, version), 1)
		b = binary.AppendUvarint(b, uint64(len(pairs)/2))
		for _, s := range pairs {
			b = field(b, s)
		}
		return append(b, 0, marker)
	}
	require.NoError(t, decode(append(header(1), event("e", 1, []string{"k", "v"}, 0)...)))
	require.ErrorIs(t, decode(append(header(1), event("", 1, nil, 0)...)), stream.ErrUnprocessable, "no id")
	require.ErrorIs(t, decode(append(header(1), event("e", 0, nil, 0)...)), stream.ErrUnprocessable, "no version")
	require.ErrorIs(t, decode(append(header(1), event("e", -1, nil, 0)...)), stream.ErrUnprocessable, "a negative version")
	require.ErrorIs(t, decode(append(header(1), event("e", 1, nil, 7)...)), stream.ErrUnprocessable, "a time marker")
	require.ErrorIs(t, decode(append(header(1), event("e", 1, []string{"k", "v", "k", "w"}, 0)...)), stream.ErrUnprocessable,
		"a metadata key twice")
	require.ErrorIs(t, decode(append(header(2), event("e", 1, nil, 0)...)), stream.ErrUnprocessable, "an event short")
}

// TestEventsOfHugeCountAllocatesLittle: a payload claiming 2^40 events, or metadata pairs, fails before
// allocating for them. Not parallel: it reads the process's allocation total.
func TestEventsOfHugeCountAllocatesLittle(t *testing.T) {
	events := binary.AppendUvarint([]byte("UHE\x01"), 1<<40)
	events = append(events, make([]byte, 4096)...)
	pairs := binary.AppendUvarint([]byte("UHE\x01"), 1)
	pairs = append(pairs, 1, 'e', 1, 'u', 0, 0, 0, 2, 2)
	pairs = binary.AppendUvarint(pairs, 1<<40)
	pairs = append(pairs, make([]byte, 4096)...)
	for name, payload := range map[string][]byte{"events": events, "metadata pairs": pairs} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := stream.EventsOf(message.NewMessage("x", payload))
		runtime.ReadMemStats(&after)
		require.ErrorIs(t, err, stream.ErrUnprocessable, name)
		require.ErrorContains(t, err, "a count of 1099511627776 is more than", name)
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10), "%s: allocated for the claimed count", name)
	}
}

// FuzzEventsOf: whatever the payload, EventsOf returns events or ErrUnprocessable, and what it decodes
// encodes again to the same events.
func FuzzEventsOf(f *testing.F) {
	events := realisticEvents(3)
	events[1].Data, events[1].Metadata, events[2].RecordedAt = json.RawMessage(`{}`), nil, time.Time{}
	f.Add(binaryPayload(f, events[0]))
	f.Add(binaryPayload(f, events...))
	object, err := json.Marshal(map[string]any{"id": "e", "stream": "u", "version": 1, "position": 2, "data": "{}",
		"metadata": map[string]string{"k": "v"}, "occurredAt": time.Unix(1, 2)})
	require.NoError(f, err)
	f.Add(object)
	f.Add([]byte(`[` + string(object) + `,` + string(object) + `]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		decoded, err := stream.EventsOf(message.NewMessage("f", payload))
		if err != nil {
			require.ErrorIs(t, err, stream.ErrUnprocessable)
			return
		}
		require.NotEmpty(t, decoded)
		msg, err := stream.NewMessage(decoded...)
		if err != nil {
			// JSON holds times (years 1 to 9999) that UnixNano cannot; what was binary always encodes again.
			require.False(t, strings.HasPrefix(string(payload), "UHE\x01"), "%v", err)
			return
		}
		again, err := stream.EventsOf(message.NewMessage(msg.UUID, msg.Payload))
		require.NoError(t, err)
		require.Len(t, again, len(decoded))
		for i, e := range decoded {
			a := again[i]
			require.True(t, e.OccurredAt.Equal(a.OccurredAt) && e.RecordedAt.Equal(a.RecordedAt), "event %d's times", i)
			e.OccurredAt, e.RecordedAt, a.OccurredAt, a.RecordedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if len(e.Metadata) == 0 {
				e.Metadata = nil // JSON's {} is binary's nil
			}
			if len(e.Data) == 0 {
				e.Data = nil
			}
			require.Equal(t, e, a, "event %d", i)
		}
	})
}

// realisticEvents is a relay read of n user registrations as the API stores them.
func realisticEvents(n int) []eventstore.Event {
	at := time.Date(2024, 5, 17, 9, 30, 0, 123456789, time.UTC)
	events := make([]eventstore.Event, n)
	for i := range events {
		events[i] = eventstore.Event{
			ID:         fmt.Sprintf("0190a1b2-c3d4-7e5f-8a9b-%012x", i+1),
			StreamID:   fmt.Sprintf("user-0190a1b2-c3d4-7000-8000-%012x", i+1),
			StreamType: "UserAggregate", Version: 1, Position: int64(1_000_000 + i),
			Type:       "user.registered.v1",
			Data:       json.RawMessage(fmt.Sprintf(`{"email":"user-%d@example.com","name":"User Nº%d"}`, i, i)),
			Metadata:   map[string]string{"request_id": fmt.Sprintf("req-%016x", i), "source": "POST /users"},
			OccurredAt: at.Add(time.Duration(i) * time.Millisecond),
			RecordedAt: at.Add(time.Duration(i)*time.Millisecond + 3*time.Microsecond),
		}
	}
	return events
}

// BenchmarkMessagesRoundTrip encodes a relay read of 1000 events and decodes it as a consumer across a
// network does: from the payload alone, without the events riding in the context.
func BenchmarkMessagesRoundTrip(b *testing.B) {
	events := realisticEvents(1000)
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := stream.Messages(events)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, m := range msgs {
			wire := message.NewMessage(m.UUID, m.Payload)
			for k, v := range m.Metadata {
				wire.Metadata.Set(k, v)
			}
			decoded, err := stream.EventsOf(wire)
			if err != nil {
				b.Fatal(err)
			}
			n += len(decoded)
		}
		if n != len(events) {
			b.Fatalf("decoded %d events, want %d", n, len(events))
		}
	}
}
