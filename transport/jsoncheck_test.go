package transport

import (
	"strconv"
	"strings"
	"testing"

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
