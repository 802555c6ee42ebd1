package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/userhook/userhook/eventstore"
)

const readPageQuery = selectColumns + ` WHERE position > ? ORDER BY position LIMIT ?`

// maxPrealloc bounds the room readPage makes for a page before it has read it.
const maxPrealloc = 10000

// readPage reads up to limit events after position after from the driver's rows, not database/sql's: Rows.Next
// and Scan lock, check and convert each of the ten values of a row again, which cost a replay of the whole
// table about a third more CPU than the driver's rows do. It reads what ScanEvent reads, in Columns order,
// making room for the page at its first row.
//
// An event keeps the driver's []byte of its data: go-sqlite3 copies every blob into memory of its own for
// each row (C.GoBytes) and never reuses it (TestReadAllPagesShareNothing).
func readPage(ctx context.Context, db *sql.DB, after int64, limit int) ([]eventstore.Event, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var out []eventstore.Event
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		rows, err := c.QueryContext(ctx, readPageQuery, []driver.NamedValue{{Ordinal: 1, Value: after}, {Ordinal: 2, Value: int64(limit)}})
		if err != nil {
			return err
		}
		defer rows.Close()
		row := make([]driver.Value, len(rows.Columns()))
		if len(row) != 10 {
			return fmt.Errorf("%d columns", len(row))
		}
		for {
			if err := rows.Next(row); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if out == nil {
				out = make([]eventstore.Event, 0, min(limit, maxPrealloc))
			}
			e, err := eventOf(row)
			if err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			out = append(out, e)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eventOf is eventstore.ScanEvent for a row of driver values.
func eventOf(row []driver.Value) (eventstore.Event, error) {
	var e eventstore.Event
	var meta string
	var occurred, recorded int64
	ok := integer(row[0], &e.Position) && text(row[1], &e.ID) && text(row[2], &e.StreamID) &&
		text(row[3], &e.StreamType) && integer(row[4], &e.Version) && text(row[5], &e.Type) &&
		text(row[7], &meta) && integer(row[8], &occurred) && integer(row[9], &recorded)
	switch v := row[6].(type) {
	case []byte:
		e.Data = v
	case string:
		e.Data = json.RawMessage(v)
	default:
		ok = false
	}
	if !ok {
		return eventstore.Event{}, fmt.Errorf("unexpected values %v", row)
	}
	if meta != "" && meta != "{}" {
		if err := json.Unmarshal([]byte(meta), &e.Metadata); err != nil {
			return eventstore.Event{}, fmt.Errorf("metadata of %s: %w", e.ID, err)
		}
	}
	e.OccurredAt = time.Unix(0, occurred).UTC()
	e.RecordedAt = time.Unix(0, recorded).UTC()
	return e, nil
}

func integer(v driver.Value, to *int64) bool {
	n, ok := v.(int64)
	*to = n
	return ok
}

func text(v driver.Value, to *string) bool {
	switch v := v.(type) {
	case string:
		*to = v
	case []byte:
		*to = string(v)
	default:
		return false
	}
	return true
}
