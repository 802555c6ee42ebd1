package eventstore

import (
	"encoding/json"
	"fmt"
	"time"
)

// Columns are the columns of an events table, in the order ScanEvent reads them; SQL stores share them.
const Columns = `position, event_id, stream_id, stream_type, version, type, data, metadata, occurred_at, recorded_at`

// ScanEvent reads one row of Columns: times as Unix nanoseconds, metadata as a JSON object.
func ScanEvent(row interface{ Scan(dest ...any) error }) (Event, error) {
	var e Event
	var data []byte
	var meta string
	var occurred, recorded int64
	if err := row.Scan(&e.Position, &e.ID, &e.StreamID, &e.StreamType, &e.Version, &e.Type, &data, &meta,
		&occurred, &recorded); err != nil {
		return Event{}, err
	}
	e.Data = json.RawMessage(data)
	if meta != "" && meta != "{}" {
		if err := json.Unmarshal([]byte(meta), &e.Metadata); err != nil {
			return Event{}, fmt.Errorf("metadata of %s: %w", e.ID, err)
		}
	}
	e.OccurredAt = time.Unix(0, occurred).UTC()
	e.RecordedAt = time.Unix(0, recorded).UTC()
	return e, nil
}

// EncodeMetadata is the stored form of an event's metadata: a JSON object, "{}" when empty.
func EncodeMetadata(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("eventstore: metadata: %w", err)
	}
	return string(b), nil
}
