package projection

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
)

// payloadSeeds are payloads json.Marshal writes and payloads it does not: decodeFast takes the first and
// either refuses the others or reads them as aggregate.Decode does.
var payloadSeeds = []string{
	``,
	`null`,
	`{}`,
	` { "email" : "a@example.com" , "name" : "A" } `,
	`{"email":"u1@example.com","name":"User","profile":{"plan":"free"}}`,
	`{"email":"u1@example.com","emailVerified":true,"name":"User","profile":{"plan":"pro","seats":8}}`,
	`{"email":"u1@example.com","emailVerified":false}`,
	`{"email":"u1@example.com","emailVerified":null,"name":null,"profile":null}`,
	`{"email":"u1-9@example.com","previous":"u1-8@example.com"}`,
	`{"email":"u1-9@example.com","previous":null}`,
	`{"name":"User 2","profile":{"plan":"pro","seats":2}}`,
	`{"name":"User 2"}`,
	`{"profile":{}}`,
	`{"profile":null}`,
	`{"name":null,"profile":null}`,
	`{"name":"Zoë","email":"zoë@example.com"}`,
	`{"name":"bad \xff utf-8"}`,
	`{"name":"esc\u00e9ped","email":"a\"b@example.com"}`,
	`{"Email":"case@example.com","NAME":"Case"}`,
	`{"email":"first@example.com","email":"second@example.com"}`,
	`{"profile":{"a":1},"profile":{"b":2}}`,
	`{"email":"a@example.com","unknown":[1,{"x":null}]}`,
	`{"profile":{"nested":{"a":[1,2.5,-3e2,true,false,null,"x\\y"]},"n":1e3,"s":"q\"uote","u":"\u2028"}}`,
	`{"profile":{"big":1e400}}`,
	`{"profile":{"tiny":1e-400}}`,
	`{"profile":{"long":123456789012345678901234567890}}`,
	`{"profile":{"k":"v","k":"w"}}`,
	`{"profile":{"bad \xff key":"bad \xff value"}}`,
	`{"profile":[1,2]}`,
	`{"profile":"text"}`,
	`{"email":5}`,
	`{"emailVerified":"yes"}`,
	`{"name":"x"`,
	`{"name":"x"} trailing`,
	`[]`,
	`"text"`,
	`{"profile":{"a":01}}`,
	`{"profile":{"a":-}}`,
	`{"profile":{"a":1.}}`,
	`{"profile":{"a":tru}}`,
	`{"profile":{"a":"\x01"}}`,
	`{"profile":{"a":"\q"}}`,
	`{"profile":{"a":"\u12"}}`,
	`{"profile":{"a":1,}}`,
}

// TestDecodeFastAgreesWithDecode: whatever decodeFast takes, aggregate.Decode decodes to the same payload.
func TestDecodeFastAgreesWithDecode(t *testing.T) {
	t.Parallel()
	for _, typ := range aggregate.StoredTypes() {
		for _, data := range payloadSeeds {
			checkDecodeFast(t, typ, []byte(data))
		}
	}
	var p payload
	assert.True(t, decodeFast(aggregate.TypeUserRegistered, []byte(payloadSeeds[5]), &p), "what json.Marshal writes is read here")
	assert.False(t, decodeFast("user.unknown.v1", []byte(`{}`), &p), "an unknown type is aggregate.Decode's to refuse")
}

func FuzzDecodeFast(f *testing.F) {
	for i, data := range payloadSeeds {
		f.Add(i, []byte(data))
	}
	types := aggregate.StoredTypes()
	f.Fuzz(func(t *testing.T, typ int, data []byte) {
		checkDecodeFast(t, types[max(typ, -typ)%len(types)], data)
	})
}

func checkDecodeFast(t *testing.T, typ string, data []byte) {
	t.Helper()
	var fast payload
	if !decodeFast(typ, data, &fast) {
		return
	}
	var slow payload
	require.NoError(t, slow.decode(eventstore.Event{Type: typ, Data: data}), "%s %q", typ, data)
	if fast.raw != nil {
		var dec profileDecoder
		m, err := dec.profile(fast.raw)
		require.NoError(t, err, "%s %q", typ, data)
		var direct map[string]any
		require.NoError(t, json.Unmarshal(fast.raw, &direct))
		assert.Equal(t, direct, m, "%s %q: the profile decoder decodes as json.Unmarshal", typ, data)
		fast.profile, fast.raw = m, nil
	}
	assert.Equal(t, slow, fast, "%s %q", typ, data)
}

// TestProfileDecoderAgreesWithUnmarshal: the profile decoder decodes every object as json.Unmarshal does.
func TestProfileDecoderAgreesWithUnmarshal(t *testing.T) {
	t.Parallel()
	var dec profileDecoder
	for _, raw := range []string{
		`{}`, ` {"plan":"pro","seats":8} `, `{"a":null,"b":true,"c":false,"d":-0.5e-3,"e":""}`, `{"k":1,"k":2}`,
		`{"nested":{"a":[1]}}`, `{"esc":"\u00e9\n"}`, `{"bad":"\xff"}`, `{"n":1e400}`, `{"a":1,}`, `[]`, `{"a":1} x`,
	} {
		var want map[string]any
		wantErr := json.Unmarshal([]byte(raw), &want)
		got, err := dec.profile([]byte(raw))
		if wantErr != nil {
			assert.Error(t, err, raw)
			continue
		}
		require.NoError(t, err, raw)
		assert.Equal(t, want, got, raw)
		assert.NotNil(t, got, raw)
	}
}
