package transport

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Readers of JSON already known to be valid, for the hot path of POST /events: they give what encoding/json
// gives for the same input without checking it again, and without reflection.

var errNotObject = errors.New("not a JSON object")

// objectMembers reads data, one JSON value, as json.Unmarshal into a map[string]json.RawMessage does: the
// members of an object (the last of a key given twice), nil for null, an error for anything else. The values
// share data's bytes. data must be valid JSON (checkJSON accepted it): the quick reading follows its
// structure without checking every byte, and leaves to json.Unmarshal what it does not expect.
func objectMembers(data []byte) (map[string]json.RawMessage, error) {
	if object, ok := readObject(data); ok {
		return object, nil
	}
	var object map[string]json.RawMessage
	if err := json.Unmarshal(data, &object); err != nil {
		return nil, err
	}
	return object, nil
}

// readObject is objectMembers without the fallback: false when data is not an object or null, or not as
// expected.
func readObject(data []byte) (map[string]json.RawMessage, bool) {
	i := skipSpace(data, 0)
	if i < len(data) && data[i] == 'n' {
		end := skipLiteral(data, i)
		return nil, string(data[i:end]) == "null" && skipSpace(data, end) == len(data)
	}
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	object := map[string]json.RawMessage{}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return object, skipSpace(data, i+1) == len(data)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return nil, false
		}
		end := skipString(data, i)
		if end < 0 {
			return nil, false
		}
		key, ok := jsonString(data[i:end])
		if !ok {
			return nil, false
		}
		if i = skipSpace(data, end); i >= len(data) || data[i] != ':' {
			return nil, false
		}
		start := skipSpace(data, i+1)
		if end = skipValue(data, start); end < 0 {
			return nil, false
		}
		object[key] = data[start:end:end]
		switch i = skipSpace(data, end); {
		case i < len(data) && data[i] == ',':
			i = skipSpace(data, i+1)
		case i < len(data) && data[i] == '}':
			return object, skipSpace(data, i+1) == len(data)
		default:
			return nil, false
		}
	}
}

// jsonString reads raw, one JSON value, as json.Unmarshal into a string does: false when that fails (a
// value that is not a string). A string with no escape, in valid UTF-8, is its own bytes.
func jsonString(raw []byte) (string, bool) {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		plain := true
		for _, c := range raw[1 : n-1] {
			if c == '\\' || c == '"' || c < 0x20 {
				plain = false
				break
			}
		}
		if plain && utf8.Valid(raw[1:n-1]) {
			return string(raw[1 : n-1]), true
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the index after the string that opens at data[i], or -1 when it does not close.
func skipString(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipLiteral returns the index after the number, true, false or null that starts at data[i].
func skipLiteral(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}

// skipValue returns the index after the value that starts at data[i], or -1 when it does not end.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				if j = skipString(data, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	case ',', '}', ']', ':':
		return -1
	}
	if end := skipLiteral(data, i); end > i {
		return end
	}
	return -1
}
