package postgres

import "github.com/userhook/userhook/eventstore"

// InsertRows writes the events of Rows, one array per column, in one statement.
const InsertRows = `INSERT INTO events
	(position, event_id, stream_id, stream_type, version, type, data, metadata, occurred_at, recorded_at)
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bytea[],
	                     $8::text[], $9::bigint[], $10::bigint[])`

// Rows are stored events as the column arrays InsertRows takes: the one encoding of an event row, which the
// benchmark's C2-PG ceiling writes too.
type Rows struct {
	pos, version, occurred, recorded  []int64
	id, stream, streamType, typ, meta []string
	data                              [][]byte
}

// Add appends e, positioned, versioned and stamped, as a row.
func (r *Rows) Add(e eventstore.Event) error {
	meta, err := eventstore.EncodeMetadata(e.Metadata)
	if err != nil {
		return err
	}
	data := []byte(e.Data)
	if data == nil {
		data = []byte("null")
	}
	r.pos = append(r.pos, e.Position)
	r.id = append(r.id, e.ID)
	r.stream = append(r.stream, e.StreamID)
	r.streamType = append(r.streamType, e.StreamType)
	r.version = append(r.version, e.Version)
	r.typ = append(r.typ, e.Type)
	r.data = append(r.data, data)
	r.meta = append(r.meta, meta)
	r.occurred = append(r.occurred, e.OccurredAt.UnixNano())
	r.recorded = append(r.recorded, e.RecordedAt.UnixNano())
	return nil
}

// Len is how many rows there are.
func (r *Rows) Len() int { return len(r.pos) }

// Args are InsertRows' arguments.
func (r *Rows) Args() []any {
	return []any{r.pos, r.id, r.stream, r.streamType, r.version, r.typ, r.data, r.meta, r.occurred, r.recorded}
}
