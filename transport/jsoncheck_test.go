package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/userhook/userhook"
)

func TestCheckJSON(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1)
	okDeep := strings.Repeat(`{"a":`, MaxJSONDepth) + "1" + strings.Repeat("}", MaxJSONDepth)
	for _, good := range []string{`{}`, `[]`, `{"a":1,"b":{"a":2}}`, `[{"a":1},{"a":2}]`, `{"a":[1,{"b":2,"c":3}],"d":"x"}`, okDeep, `{"é":"ü"}`, `not json`} {
		assert.NoError(t, checkJSON([]byte(good)), good)
	}
	for name, bad := range map[string]string{
		"duplicate key":         `{"a":1,"a":2}`,
		"duplicate nested key":  `{"x":{"a":1,"b":2,"a":3}}`,
		"duplicate after array": `{"a":[1,2],"a":3}`,
		"too deep":              deep,
		"not UTF-8":             "{\"a\":\"\xff\"}",
	} {
		err := checkJSON([]byte(bad))
		assert.ErrorIs(t, err, userhook.ErrInvalid, name)
	}
}

func TestCheckJSONRefusesUnpairedSurrogatesNamingTheField(t *testing.T) {
	t.Parallel()
	for _, good := range []string{`"\ud83d\ude00"`, `{"a":"x\uD83D\uDE00y"}`, `{"a":"\\ud800"}`, `{"a":"\\\\ud800"}`, `["\u00e9\uffff"]`, `{"\ud83d\ude00":1}`} {
		assert.NoError(t, checkJSON([]byte(good)), good)
	}
	for bad, field := range map[string]string{
		`"\ud800"`: "body",
		`{"detail":{"data":{"user_id":"pg\ud800"}}}`: "detail.data.user_id",
		`{"a":"\udbff"}`:                                "a",
		`{"a":"\udc00x"}`:                               "a",
		`{"a":"\ud800\u0041"}`:                          "a",
		`{"a":"\ud800\ud800\udc00"}`:                    "a",
		`{"a":"\\\ud800"}`:                              "a",
		`{"a":"ok","b":"\ud800"}`:                       "b",
		`[{"a":1},{"data":{"name":"\udfff"}}]`:          "[1].data.name",
		`{"events":["user.created","x","\ud800"]}`:      "events[2]",
		`{"a":[[1,2],["\udc00"]]}`:                      "a[1][0]",
		`{"data":{"\ud800":1}}`:                         "data.\ufffd",
		`{"` + strings.Repeat("k", 100) + `":"\ud800"}`: strings.Repeat("k", 64),
	} {
		err := checkJSON([]byte(bad))
		var fe userhook.FieldErrors
		if assert.ErrorAs(t, err, &fe, bad) && assert.Len(t, fe, 1, bad) {
			assert.Equal(t, field, fe[0].Field, bad)
			assert.Contains(t, fe[0].Message, "surrogate", bad)
		}
		assert.ErrorIs(t, err, userhook.ErrInvalid, bad)
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":` + strconv.Itoa(i))
	}
	return b.String()
}

func TestCheckJSONAcceptsBigObjectsAndStringsWithBrackets(t *testing.T) {
	t.Parallel()
	assert.NoError(t, checkJSON([]byte(`{`+manyKeys(5000)+`}`)))
	assert.NoError(t, checkJSON([]byte(`{"a":"{[\"x\",","b":"]}"}`)))
}

// duplicateOrDeep is the slow reference of checkJSON, on encoding/json's tokens.
func duplicateOrDeep(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if k, isKey := tok.(string); isKey && len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].key {
			n := len(stack)
			if stack[n-1].keys[k] {
				return true
			}
			stack[n-1].keys[k] = true
			stack[n-1].key = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= MaxJSONDepth {
				return true
			}
			stack = append(stack, frame{object: tok == json.Delim('{'), keys: map[string]bool{}, key: tok == json.Delim('{')})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].key = true
		}
	}
}

// jsonEscape is one escape of a JSON string: \u and four hex digits, or a backslash and one character.
var jsonEscape = regexp.MustCompile(`\\(?:u[0-9a-fA-F]{4}|.)`)

// hasUnpairedSurrogate is the slow reference of checkJSON's surrogate rule, on a regular expression over every
// escape of a valid JSON body (every backslash of one is in a string and starts an escape): a high surrogate
// escape must be followed at once by a low one, and a low one must follow a high one.
func hasUnpairedSurrogate(body []byte) bool {
	escapes := jsonEscape.FindAllIndex(body, -1)
	kind := func(k int) rune {
		s := string(body[escapes[k][0]:escapes[k][1]])
		if len(s) != 6 {
			return 0
		}
		r, _ := strconv.ParseUint(s[2:], 16, 32)
		return rune(r)
	}
	for k := 0; k < len(escapes); k++ {
		r := kind(k)
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			if k+1 < len(escapes) && escapes[k+1][0] == escapes[k][1] && kind(k+1) >= 0xDC00 && kind(k+1) <= 0xDFFF {
				k++
				continue
			}
			return true
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		}
	}
	return false
}

func FuzzCheckJSON(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2,"c":3}]}}`, `{"a":"\u0061","\u0061":1}`,
		`[[[[]]]]`, `{"x":"}{\"","y":[","]}`, "{\"a\":\"\xff\"}", `{"a":1,"b":2`, manyKeys(20),
		`{"a":"\ud800"}`, `{"\udbff":1,"\ud800":2}`, `["\ud83d\ude00","\\ud800"]`, `{"a":"\ud800\ud800\udc00"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := checkJSON(body)
		if err != nil && !errors.Is(err, userhook.ErrInvalid) {
			t.Fatalf("a refusal is a 400: %v", err)
		}
		if !utf8.Valid(body) {
			if err == nil {
				t.Fatal("invalid UTF-8 accepted")
			}
			return
		}
		if !json.Valid(body) {
			if err != nil {
				t.Fatalf("not JSON is left to the decoder, got %v", err)
			}
			return
		}
		lone := hasUnpairedSurrogate(body)
		if want := lone || duplicateOrDeep(body); want != (err != nil) {
			t.Fatalf("checkJSON says %v, the reference says refuse=%v, for %q", err, want, body)
		}
		var fe userhook.FieldErrors
		if errors.As(err, &fe) != (lone && err != nil && strings.Contains(err.Error(), "surrogate")) {
			t.Fatalf("an unpaired surrogate, and only that, is a field fault: %v, for %q", err, body)
		}
	})
}
