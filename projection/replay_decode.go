package projection

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/userhook/userhook/aggregate"
)

// The fields of the payloads decodeFast reads, one bit each.
const (
	fieldEmail = 1 << iota
	fieldEmailVerified
	fieldName
	fieldProfile
	fieldPrevious
)

// payloadFields are the JSON keys, as tagged, of each domain event's payload.
func payloadFields(typ string) int {
	switch typ {
	case aggregate.TypeUserRegistered:
		return fieldEmail | fieldEmailVerified | fieldName | fieldProfile
	case aggregate.TypeUserEmailChanged:
		return fieldEmail | fieldPrevious
	case aggregate.TypeUserProfileUpdated:
		return fieldName | fieldProfile
	case aggregate.TypeUserEmailVerified:
		return fieldEmail
	}
	return 0
}

func fieldOf(key []byte) int {
	switch string(key) {
	case "email":
		return fieldEmail
	case "emailVerified":
		return fieldEmailVerified
	case "name":
		return fieldName
	case "profile":
		return fieldProfile
	case "previous":
		return fieldPrevious
	}
	return 0
}

// maxSkipDepth bounds the nesting decodeFast follows in a profile; deeper ones go to aggregate.Decode.
const maxSkipDepth = 64

// decodeFast reads the payload data of an event of type typ into p, as aggregate.Decode would decode it, and
// reports whether it could. It takes the payloads json.Marshal writes: an object whose keys are the fields'
// tags, each at most once, whose strings have no escapes and are valid UTF-8, and whose profile is an object
// (kept as its JSON, and checked to be one encoding/json decodes) or null. Anything else (other keys, keys
// in another case, escapes, a value of another type, a syntax error) is false, for aggregate.Decode to
// decode or refuse.
func decodeFast(typ string, data []byte, p *payload) bool {
	*p = payload{}
	switch typ {
	case aggregate.TypeUserDeleted, aggregate.TypeUserRestored, aggregate.TypeUserDeactivated, aggregate.TypeUserReactivated:
		return true // aggregate.Decode does not read these payloads
	}
	fields := payloadFields(typ)
	if fields == 0 {
		return false
	}
	if len(data) == 0 || string(data) == "null" {
		return true // decoded as the zero payload
	}
	s := scanner{b: data}
	s.space()
	if !s.byte('{') {
		return false
	}
	s.space()
	if !s.byte('}') {
		seen := 0
		for {
			s.space()
			key, ok := s.plainString()
			if !ok {
				return false
			}
			f := fieldOf(key)
			if f&fields == 0 || f&seen != 0 {
				return false
			}
			seen |= f
			s.space()
			if !s.byte(':') {
				return false
			}
			s.space()
			switch f {
			case fieldEmail, fieldName, fieldPrevious:
				v, null, ok := s.stringOrNull()
				if !ok {
					return false
				}
				switch {
				case null:
				case f == fieldName:
					p.name, p.hasName = string(v), typ == aggregate.TypeUserProfileUpdated
				case f == fieldEmail && typ != aggregate.TypeUserEmailVerified:
					p.email = string(v)
				}
			case fieldEmailVerified:
				switch {
				case s.literal("true"):
					p.verified = true
				case s.literal("false"), s.literal("null"):
				default:
					return false
				}
			case fieldProfile:
				if s.literal("null") {
					break
				}
				start := s.i
				if s.i >= len(s.b) || s.b[s.i] != '{' || !s.value(0) {
					return false
				}
				p.raw = s.b[start:s.i:s.i]
			}
			s.space()
			if s.byte(',') {
				continue
			}
			if s.byte('}') {
				break
			}
			return false
		}
	}
	s.space()
	if s.i != len(s.b) {
		return false
	}
	return true
}

// scanner reads JSON text from b at i. Its methods report false for what they do not take, leaving i
// anywhere.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// plainString reads a string without escapes or control characters, in valid UTF-8: its bytes are exactly
// the string encoding/json decodes.
func (s *scanner) plainString() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start, ascii := s.i, true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, ascii || utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// stringOrNull reads a plain string or null.
func (s *scanner) stringOrNull() (v []byte, null, ok bool) {
	if s.literal("null") {
		return nil, true, true
	}
	v, ok = s.plainString()
	return v, false, ok
}

// value checks one JSON value that encoding/json decodes into an any without error, and reads past it.
func (s *scanner) value(depth int) bool {
	if depth > maxSkipDepth || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		s.i++
		s.space()
		if s.byte('}') {
			return true
		}
		for {
			s.space()
			if !s.string() {
				return false
			}
			s.space()
			if !s.byte(':') {
				return false
			}
			s.space()
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			if s.byte(',') {
				continue
			}
			return s.byte('}')
		}
	case c == '[':
		s.i++
		s.space()
		if s.byte(']') {
			return true
		}
		for {
			s.space()
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			if s.byte(',') {
				continue
			}
			return s.byte(']')
		}
	case c == '"':
		return s.string()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

// string reads any valid JSON string; encoding/json replaces invalid UTF-8 in it rather than refusing it.
func (s *scanner) string() bool {
	if !s.byte('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if s.i >= len(s.b) {
				return false
			}
			e := s.b[s.i]
			s.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(s.b)-s.i < 4 {
					return false
				}
				for _, h := range s.b[s.i : s.i+4] {
					if !isHex(h) {
						return false
					}
				}
				s.i += 4
			default:
				return false
			}
		}
	}
	return false
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// number reads a JSON number that encoding/json decodes into a float64 (an any) without a range error.
func (s *scanner) number() bool {
	start := s.i
	s.byte('-')
	digits := func() bool {
		n := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		return s.i > n
	}
	switch {
	case s.byte('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		digits()
	default:
		return false
	}
	plain := true
	if s.byte('.') && !digits() {
		return false
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if !s.byte('+') {
			s.byte('-')
		}
		if !digits() {
			return false
		}
		plain = false
	}
	if plain && s.i-start <= 300 {
		return true // no float64 overflow without an exponent in so few digits
	}
	_, err := strconv.ParseFloat(string(s.b[start:s.i]), 64)
	return err == nil
}

// profileDecoder decodes the stored JSON of profiles, as json.Unmarshal into a map[string]any does. Its zero
// value is ready to use.
type profileDecoder struct {
	strings map[string]string // the keys and short string values seen, each kept once
}

// maxInterned bounds what a profileDecoder keeps of the strings it has seen.
const maxInterned = 4096

// profile decodes a profile object. The flat ones (no object or array in it, no escape in a string) are
// decoded here, without reflection, and share their keys and short values; the others by json.Unmarshal.
func (d *profileDecoder) profile(raw []byte) (map[string]any, error) {
	if m, ok := d.flat(raw); ok {
		return m, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func (d *profileDecoder) flat(raw []byte) (map[string]any, bool) {
	s := scanner{b: raw}
	s.space()
	if !s.byte('{') {
		return nil, false
	}
	m := map[string]any{}
	s.space()
	if !s.byte('}') {
		for {
			s.space()
			k, ok := s.plainString()
			if !ok {
				return nil, false
			}
			s.space()
			if !s.byte(':') {
				return nil, false
			}
			s.space()
			var v any
			switch {
			case s.i >= len(s.b):
				return nil, false
			case s.b[s.i] == '"':
				b, ok := s.plainString()
				if !ok {
					return nil, false
				}
				v = d.intern(b)
			case s.literal("true"):
				v = true
			case s.literal("false"):
				v = false
			case s.literal("null"):
				v = nil
			default:
				start := s.i
				if !s.number() {
					return nil, false
				}
				f, err := strconv.ParseFloat(string(s.b[start:s.i]), 64)
				if err != nil {
					return nil, false
				}
				v = f
			}
			m[d.intern(k)] = v
			s.space()
			if s.byte(',') {
				continue
			}
			if s.byte('}') {
				break
			}
			return nil, false
		}
	}
	s.space()
	return m, s.i == len(s.b)
}

func (d *profileDecoder) intern(b []byte) string {
	if v, ok := d.strings[string(b)]; ok {
		return v
	}
	v := string(b)
	if len(v) <= 32 && len(d.strings) < maxInterned {
		if d.strings == nil {
			d.strings = map[string]string{}
		}
		d.strings[v] = v
	}
	return v
}
