package transport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/userhook/userhook"
)

// MaxJSONDepth bounds how deeply a request body may nest objects and arrays.
const MaxJSONDepth = 64

// checkJSON refuses what encoding/json would accept silently but a caller cannot have meant: bytes that are
// not UTF-8 (which the decoder would turn into U+FFFD), an object with the same key twice (the decoder would
// keep the last), and nesting deeper than MaxJSONDepth. A body that is not JSON at all is left to the decoder,
// which says so in its own words.
//
// It is one pass over the bytes of a body json.Valid accepted, so the structure is known to be well formed:
// strings are skipped as a whole, brackets push and pop, and a string right after '{' or ',' in an object is a
// key.
func checkJSON(body []byte) error {
	if !utf8.Valid(body) {
		return fmt.Errorf("%w: the body is not valid UTF-8", userhook.ErrInvalid)
	}
	if !json.Valid(body) {
		return nil
	}
	type frame struct {
		object bool
		keys   [][]byte            // a linear search while an object has few keys (no copies),
		set    map[string]struct{} // a map once it has many
	}
	var stack []frame
	expectKey := false
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			j := i + 1
			for escaped := false; j < len(body); j++ {
				if escaped {
					escaped = false
				} else if body[j] == '\\' {
					escaped = true
				} else if body[j] == '"' {
					break
				}
			}
			if expectKey && len(stack) > 0 && stack[len(stack)-1].object {
				key := body[i+1 : j]
				if bytes.IndexByte(key, '\\') >= 0 {
					var unquoted string
					_ = json.Unmarshal(body[i:j+1], &unquoted) // "\u0061" and "a" are one key
					key = []byte(unquoted)
				}
				top := &stack[len(stack)-1]
				dup := false
				if top.set != nil {
					_, dup = top.set[string(key)]
					top.set[string(key)] = struct{}{}
				} else {
					for _, k := range top.keys {
						dup = dup || bytes.Equal(k, key)
					}
					top.keys = append(top.keys, key)
					if len(top.keys) > 16 {
						top.set = make(map[string]struct{}, 2*len(top.keys))
						for _, k := range top.keys {
							top.set[string(k)] = struct{}{}
						}
						top.keys = nil
					}
				}
				if dup {
					return fmt.Errorf("%w: the key %q appears twice in one object", userhook.ErrInvalid, truncate(string(key), 64))
				}
				expectKey = false
			}
			i = j
		case '{', '[':
			if len(stack) >= MaxJSONDepth {
				return fmt.Errorf("%w: the body nests deeper than %d levels", userhook.ErrInvalid, MaxJSONDepth)
			}
			stack = append(stack, frame{object: body[i] == '{'})
			expectKey = body[i] == '{'
		case '}', ']':
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
		}
	}
	return nil
}
