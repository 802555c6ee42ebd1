package transport

import (
	"bytes"
	"encoding/json"
	"errors"
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

func FuzzCheckJSON(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2,"c":3}]}}`, `{"a":"\u0061","\u0061":1}`,
		`[[[[]]]]`, `{"x":"}{\"","y":[","]}`, "{\"a\":\"\xff\"}", `{"a":1,"b":2`, manyKeys(20)} {
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
		if want := duplicateOrDeep(body); want != (err != nil) {
			t.Fatalf("checkJSON says %v, the reference says refuse=%v, for %q", err, want, body)
		}
	})
}
