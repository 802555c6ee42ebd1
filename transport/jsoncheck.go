package transport

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/userhook/userhook"
)

// MaxJSONDepth bounds how deeply a request body may nest objects and arrays.
const MaxJSONDepth = 64

// checkJSON refuses what encoding/json would accept silently but a caller cannot have meant: bytes that are
// not UTF-8 and \u escapes of UTF-16 surrogates without their pair (the decoder turns both into U+FFFD, so
// "pg\ud800" and "pg\udbff" would be one user id), an object with the same key twice (the decoder would keep
// the last), and nesting deeper than MaxJSONDepth. A body that is not JSON at all is left to the decoder,
// which says so in its own words. An unpaired surrogate is a fault of the string's field, named by its path
// (detail.data.user_id, [1].data.name, events[0]), so a route can report it as its own field names.
//
// It is one pass over the bytes of a body json.Valid accepted, so the structure is known to be well formed:
// strings are scanned as a whole, brackets push and pop, and a string right after '{' or ',' in an object is a
// key.
func checkJSON(body []byte) error {
	_, err := checkedJSON(body)
	return err
}

// checkedJSON is checkJSON that also says whether the body is JSON (json.Valid): a body it accepts and says
// is JSON holds valid UTF-8 only, no unpaired surrogate escape and no key twice in one object, so any value in
// it can be read as such without checking it again (see objectMembers, jsonString).
func checkedJSON(body []byte) (valid bool, err error) {
	if !utf8.Valid(body) {
		return false, userhook.Errorf(userhook.ErrInvalid, "the body is not valid UTF-8")
	}
	if !json.Valid(body) {
		return false, nil
	}
	type frame struct {
		object bool
		first  int                 // where its keys start in keys, a linear search while an object has few (no copies),
		set    map[string]struct{} // a map once it has many
		key    []byte              // the member being read, in an object
		index  int                 // the element being read, in an array
	}
	// The keys of the objects on the stack, each object's after its parent's (an object's keys are dropped
	// when it closes); a common body needs no allocation for them, nor for the stack.
	var keysBuf [32][]byte
	var stackBuf [16]frame
	keys, stack := keysBuf[:0], stackBuf[:0]
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if !f.object {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(truncate(string(f.key), 64))
		}
		if b.Len() == 0 {
			return "body"
		}
		return b.String()
	}
	expectKey := false
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			j, lone := scanString(body, i)
			if expectKey && len(stack) > 0 && stack[len(stack)-1].object {
				key := body[i+1 : j]
				if bytes.IndexByte(key, '\\') >= 0 {
					var unquoted string
					_ = json.Unmarshal(body[i:j+1], &unquoted) // "\u0061" and "a" are one key
					key = []byte(unquoted)
				}
				top := &stack[len(stack)-1]
				top.key = key
				if lone {
					return true, userhook.FieldErrors{{Field: path(), Message: "this key " + unpairedSurrogate}}
				}
				dup := false
				if top.set != nil {
					_, dup = top.set[string(key)]
					top.set[string(key)] = struct{}{}
				} else {
					for _, k := range keys[top.first:] {
						dup = dup || bytes.Equal(k, key)
					}
					keys = append(keys, key)
					if len(keys)-top.first > 16 {
						top.set = make(map[string]struct{}, 2*(len(keys)-top.first))
						for _, k := range keys[top.first:] {
							top.set[string(k)] = struct{}{}
						}
						keys = keys[:top.first]
					}
				}
				if dup {
					return true, userhook.Errorf(userhook.ErrInvalid, "the key %q appears twice in one object", truncate(string(key), 64))
				}
				expectKey = false
			} else if lone {
				return true, userhook.FieldErrors{{Field: path(), Message: unpairedSurrogate}}
			}
			i = j
		case '{', '[':
			if len(stack) >= MaxJSONDepth {
				return true, userhook.Errorf(userhook.ErrInvalid, "the body nests deeper than %d levels", MaxJSONDepth)
			}
			stack = append(stack, frame{object: body[i] == '{', first: len(keys)})
			expectKey = body[i] == '{'
		case '}', ']':
			keys = keys[:stack[len(stack)-1].first]
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			top := &stack[len(stack)-1]
			expectKey = top.object
			if !top.object {
				top.index++
			}
		}
	}
	return true, nil
}

const unpairedSurrogate = "holds a \\u escape of a UTF-16 surrogate (\\ud800 to \\udfff) without its pair, " +
	"which cannot be decoded without changing the text"

// scanString returns the index of the quote that closes the string opening at body[i], and whether the
// string holds a \u escape of a UTF-16 surrogate without its pair: a high one (D800-DBFF) not followed at once
// by an escaped low one (DC00-DFFF), or a low one on its own. body is valid JSON, so every escape is complete.
func scanString(body []byte, i int) (int, bool) {
	lone := false
	for j := i + 1; j < len(body); j++ {
		switch body[j] {
		case '"':
			return j, lone
		case '\\':
			j++
			if body[j] != 'u' {
				continue
			}
			r := hex4(body[j+1:])
			j += 4
			if !utf16.IsSurrogate(r) {
				continue
			}
			if r < 0xDC00 && j+6 < len(body) && body[j+1] == '\\' && body[j+2] == 'u' {
				if low := hex4(body[j+3:]); low >= 0xDC00 && low <= 0xDFFF {
					j += 6
					continue
				}
			}
			lone = true
		}
	}
	return len(body), lone
}

// hex4 reads the four hexadecimal digits of a \u escape.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
