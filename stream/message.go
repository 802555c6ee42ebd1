package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
// already applied, so a run published again with other bounds (a relay that took over) is harmless. The
// payload is the compact binary encoding (see appendBinary), which EventsOf reads far faster than JSON.
func NewMessage(events ...eventstore.Event) (*message.Message, error) {
	size := 0
	for _, e := range events {
		size += eventSize(e)
	}
	return newMessage(events, size)
}

// newMessage is NewMessage with the events' size (eventSize), which Messages knows already.
func newMessage(events []eventstore.Event, size int) (*message.Message, error) {
	if len(events) == 0 {
		return nil, errors.New("stream: a message carries at least one event")
	}
	payload, err := appendBinary(make([]byte, 0, size), events)
	if err != nil {
		return nil, err
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
	msg.Metadata.Set(encodingKey, encodingBinary)
	return msg, nil
}

// Messages cuts events into the messages that carry them: runs of at most maxMessageEvents events and about
// maxMessageBytes of payload. Each message also carries its events in its context (WithEvents).
func Messages(events []eventstore.Event) ([]*message.Message, error) {
	var msgs []*message.Message
	for len(events) > 0 {
		n, size := 0, 0
		for n < len(events) && n < maxMessageEvents {
			s := eventSize(events[n])
			if n > 0 && size+s > maxMessageBytes {
				break
			}
			size += s
			n++
		}
		msg, err := newMessage(events[:n], size)
		if err != nil {
			return nil, err
		}
		WithEvents(msg, events[:n:n]) // no spare capacity reaching into the next message's events
		msgs = append(msgs, msg)
		events = events[n:]
	}
	return msgs, nil
}

// eventSize is an upper bound of an event's binary encoding: its strings and data, and a little for the
// length prefixes, numbers and times. It bounds a message's payload and presizes NewMessage's buffer.
func eventSize(e eventstore.Event) int {
	// 48: the length prefixes, the varint numbers and the two times of the binary encoding, rounded up.
	size := 48 + len(e.ID) + len(e.StreamID) + len(e.StreamType) + len(e.Type) + len(e.Data)
	for k, v := range e.Metadata {
		size += len(k) + len(v) + 4
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

// EventsOf returns the stored events a message carries, in position order. Besides the binary encoding
// NewMessage writes, it reads the JSON that earlier releases published, a message of one event (an object) as
// well as a run (an array), so their messages still decode. A payload that is neither, or that is truncated or
// corrupt, fails with ErrUnprocessable.
func EventsOf(msg *message.Message) ([]eventstore.Event, error) {
	if events, ok := msg.Context().Value(eventsKey{}).([]eventstore.Event); ok && len(events) > 0 {
		return events, nil
	}
	if bytes.HasPrefix(msg.Payload, []byte(binaryMagic)) {
		events, err := decodeBinary(msg.Payload[len(binaryMagic):])
		if err != nil {
			return nil, fmt.Errorf("%w: decode message %s: %v", ErrUnprocessable, msg.UUID, err)
		}
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
		if !stored(eventstore.Event(w)) {
			return nil, fmt.Errorf("%w: message %s does not carry stored events", ErrUnprocessable, msg.UUID)
		}
		events[i] = eventstore.Event(w)
	}
	return events, nil
}

// stored reports whether e has what every stored event has: an id, a stream, a version and a position.
func stored(e eventstore.Event) bool {
	return e.ID != "" && e.StreamID != "" && e.Version > 0 && e.Position > 0
}

// The binary encoding of a run of events, which NewMessage writes: binaryMagic, the number of events
// (uvarint), then each event as
//
//	ID, StreamID, StreamType, Type, Data   each a uvarint length and its bytes
//	Version, Position                      varints
//	Metadata                               a uvarint count of pairs, then each key and value as a uvarint
//	                                       length and its bytes, keys sorted (the payload is deterministic)
//	OccurredAt, RecordedAt                 each a byte, 0 for the zero time (then nothing) or 1, then
//	                                       UnixNano as a varint; decoded in UTC
//
// The magic starts no JSON document, so EventsOf tells it from the JSON earlier releases published.
const (
	binaryMagic    = "UHE\x01"
	encodingKey    = "encoding" // message metadata naming the payload's encoding, for people reading messages
	encodingBinary = "binary-v1"
	// minEventBytes is the least an encoded event takes: a byte each for its five lengths, two varints,
	// metadata count and two time markers. It bounds a declared event count by the bytes that follow it.
	minEventBytes = 10
)

// appendBinary appends the binary encoding of events to buf.
func appendBinary(buf []byte, events []eventstore.Event) ([]byte, error) {
	buf = append(buf, binaryMagic...)
	buf = binary.AppendUvarint(buf, uint64(len(events)))
	var pairs []metadataPair
	for _, e := range events {
		buf = appendString(buf, e.ID)
		buf = appendString(buf, e.StreamID)
		buf = appendString(buf, e.StreamType)
		buf = appendString(buf, e.Type)
		buf = binary.AppendUvarint(buf, uint64(len(e.Data)))
		buf = append(buf, e.Data...)
		buf = binary.AppendVarint(buf, e.Version)
		buf = binary.AppendVarint(buf, e.Position)
		pairs = pairs[:0]
		for k, v := range e.Metadata {
			pairs = append(pairs, metadataPair{k, v})
		}
		slices.SortFunc(pairs, func(a, b metadataPair) int { return strings.Compare(a.key, b.key) })
		buf = binary.AppendUvarint(buf, uint64(len(pairs)))
		for _, p := range pairs {
			buf = appendString(buf, p.key)
			buf = appendString(buf, p.value)
		}
		var err error
		if buf, err = appendTime(buf, e.OccurredAt); err == nil {
			buf, err = appendTime(buf, e.RecordedAt)
		}
		if err != nil {
			return nil, fmt.Errorf("stream: encode %s: %w", e.ID, err)
		}
	}
	return buf, nil
}

type metadataPair struct{ key, value string }

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendTime(buf []byte, t time.Time) ([]byte, error) {
	if t.IsZero() {
		return append(buf, 0), nil
	}
	n := t.UnixNano()
	if !time.Unix(0, n).Equal(t) {
		return nil, fmt.Errorf("time %s is out of the range of nanoseconds since 1970 an int64 holds", t)
	}
	return binary.AppendVarint(append(buf, 1), n), nil
}

// decodeBinary decodes the binary encoding of a run of events, the magic already read. It checks every length
// and count against the bytes left, so a truncated or corrupt payload is an error, not a panic or an
// allocation sized by a count the payload cannot hold.
func decodeBinary(payload []byte) ([]eventstore.Event, error) {
	r := binaryReader{buf: payload}
	n := r.count(minEventBytes)
	if r.err != nil {
		return nil, r.err
	}
	if n == 0 {
		return nil, errors.New("no event")
	}
	events := make([]eventstore.Event, n)
	var kv []string // the previous event's metadata, keys and values: runs repeat most of them
	for i := range events {
		e, prev := &events[i], &events[max(i-1, 0)]
		e.ID = r.string("")
		e.StreamID = r.string(prev.StreamID)
		e.StreamType = r.string(prev.StreamType)
		e.Type = r.string(prev.Type)
		if data := r.bytes(); len(data) > 0 {
			e.Data = json.RawMessage(bytes.Clone(data))
		}
		e.Version = r.varint()
		e.Position = r.varint()
		if pairs := r.count(2); pairs > 0 && r.err == nil {
			e.Metadata = make(map[string]string, pairs)
			for j := range pairs {
				var prevKey, prevValue string
				if 2*j+1 < len(kv) {
					prevKey, prevValue = kv[2*j], kv[2*j+1]
				}
				k, v := r.string(prevKey), r.string(prevValue)
				if 2*j+1 < len(kv) {
					kv[2*j], kv[2*j+1] = k, v
				} else {
					kv = append(kv, k, v)
				}
				e.Metadata[k] = v
			}
			if r.err == nil && len(e.Metadata) != pairs {
				return nil, fmt.Errorf("event %d repeats a metadata key", i)
			}
		}
		e.OccurredAt = r.time()
		e.RecordedAt = r.time()
		if r.err != nil {
			return nil, fmt.Errorf("event %d: %w", i, r.err)
		}
		if !stored(*e) {
			return nil, fmt.Errorf("event %d is not a stored event", i)
		}
	}
	if len(r.buf) > 0 {
		return nil, fmt.Errorf("%d bytes after the last event", len(r.buf))
	}
	return events, nil
}

// binaryReader reads the binary encoding. After its first error it reads nothing more: every read returns a
// zero value and err stays the first error.
type binaryReader struct {
	buf []byte // what is left to read
	err error
}

var errTruncated = errors.New("truncated payload")

func (r *binaryReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.buf = nil
}

func (r *binaryReader) uvarint() uint64 {
	if len(r.buf) > 0 && r.buf[0] < 0x80 { // one byte: most lengths, counts and markers
		v := r.buf[0]
		r.buf = r.buf[1:]
		return uint64(v)
	}
	v, n := binary.Uvarint(r.buf)
	if n < 0 {
		r.fail(errors.New("a varint overflows 64 bits"))
		return 0
	}
	if n == 0 {
		r.fail(errTruncated)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *binaryReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.AppendVarint writes
}

// count reads a count of items each at least min bytes long, so never more than the bytes left can hold.
func (r *binaryReader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.buf)/min) {
		r.fail(fmt.Errorf("a count of %d is more than the %d bytes left hold", n, len(r.buf)))
		return 0
	}
	return int(n)
}

// bytes reads a length and that many bytes, which alias the payload.
func (r *binaryReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.buf)) {
		r.fail(fmt.Errorf("a length of %d is more than the %d bytes left", n, len(r.buf)))
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

// string reads a string; when it equals same, it returns same and allocates nothing.
func (r *binaryReader) string(same string) string {
	b := r.bytes()
	if string(b) == same {
		return same
	}
	return string(b)
}

func (r *binaryReader) time() time.Time {
	if len(r.buf) == 0 {
		r.fail(errTruncated)
		return time.Time{}
	}
	marker := r.buf[0]
	r.buf = r.buf[1:]
	switch marker {
	case 0:
		return time.Time{}
	case 1:
		n := r.varint()
		if r.err != nil {
			return time.Time{}
		}
		return time.Unix(0, n).UTC()
	default:
		r.fail(fmt.Errorf("a time marker of %d", marker))
		return time.Time{}
	}
}
