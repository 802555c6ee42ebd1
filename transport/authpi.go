package transport

import (
	"encoding/json"
	"time"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/ingest"
)

// innerEvent is AuthPI's event inside a CloudEvent's data (seed 001): the envelope is AuthPI's webhook
// delivery, its data the user event that happened. This file reads the inner event; cloudevents.go the
// envelope.
type innerEvent struct {
	ID      string
	Type    string
	Trace   string
	Source  string
	Time    time.Time
	Subject json.RawMessage
	Data    json.RawMessage
}

// applyTo makes e the inner event: its id and type, its source and time where it says them, and its
// subject's user, with the inner event's provenance in e's metadata. It returns the inner event's data, or
// false when that is not a JSON object (a fault, for a type that is applied). checked says the envelope's
// data is JSON that checkJSON accepted.
func (inner innerEvent) applyTo(e *ingest.Event, path string, fe *userhook.FieldErrors, checked bool) (map[string]json.RawMessage, bool) {
	e.ProviderEventID, e.Kind = inner.ID, ceKinds[inner.Type]
	if inner.Source != "" {
		e.Source = inner.Source
	}
	if !inner.Time.IsZero() {
		e.OccurredAt = inner.Time
	}
	e.UserID = subjectUserID(inner.Subject)
	e.Metadata["inner_id"], e.Metadata["inner_source"], e.Metadata["inner_type"] = inner.ID, e.Source, inner.Type
	if inner.Trace != "" {
		e.Metadata["trace"] = inner.Trace
	}
	var object map[string]json.RawMessage
	if len(inner.Data) > 0 && string(inner.Data) != "null" {
		var err error
		if checked {
			object, err = objectMembers(inner.Data)
		} else {
			err = json.Unmarshal(inner.Data, &object)
		}
		if err != nil {
			if e.Kind.Applies() {
				fe.Add(path+".data", "must be a JSON object")
			}
			return nil, false
		}
	}
	return object, true
}

// asInner recognises AuthPI's shape: an envelope that is not itself a user event, whose data is an event
// with a type and a subject or an id. Once recognised, a malformed inner event is a fault (with a wrong inner
// time, say), never a reason to fall back to the envelope: that would ignore the event for good.
func asInner(envelopeType string, object map[string]json.RawMessage, path string, fe *userhook.FieldErrors) (innerEvent, bool) {
	if object == nil || ceKinds[envelopeType].Applies() {
		return innerEvent{}, false
	}
	var inner innerEvent
	var ok bool
	if inner.Type, ok = jsonString(object["type"]); !ok || inner.Type == "" {
		return innerEvent{}, false
	}
	_, hasSubject := object["subject"]
	_, hasID := object["id"]
	if !hasSubject && !hasID {
		return innerEvent{}, false
	}
	str := func(key string, dst *string, required bool) {
		raw, ok := object[key]
		if !ok || string(raw) == "null" {
			if required {
				fe.Add(path+"."+key, key+" is required in an inner event")
			}
			return
		}
		s, ok := jsonString(raw)
		if !ok {
			fe.Add(path+"."+key, "must be a string")
			return
		}
		*dst = s
	}
	str("id", &inner.ID, true)
	str("source", &inner.Source, false)
	str("trace", &inner.Trace, false)
	if raw, ok := object["time"]; ok && string(raw) != "null" {
		ts, ok := jsonString(raw)
		t, err := time.Parse(time.RFC3339Nano, ts) // "" when not a string: zero, and an error
		if !ok || err != nil {
			fe.Add(path+".time", "must be an RFC 3339 time")
		}
		inner.Time = t
	}
	inner.Subject, inner.Data = object["subject"], object["data"]
	return inner, true
}

// subjectUserID reads AuthPI's subject: {"user_id": "..."}, or a plain string.
func subjectUserID(raw json.RawMessage) string {
	var s struct {
		UserID string `json:"user_id"`
	}
	if json.Unmarshal(raw, &s) == nil && s.UserID != "" {
		return s.UserID
	}
	var plain string
	if json.Unmarshal(raw, &plain) == nil {
		return plain
	}
	return ""
}
