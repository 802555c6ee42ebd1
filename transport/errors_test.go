package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/iotest"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
)

// internalText stands for what a cause may say: an address, a driver's message. It must never be answered.
const internalText = "read tcp 10.0.0.7:5432: connection reset by peer"

// TestReadErrorRendersOnlyOurMessage: a body that fails while it is read is a 400 that says so, and nothing of
// the reader's error.
func TestReadErrorRendersOnlyOurMessage(t *testing.T) {
	t.Parallel()
	s := describedServer(t)
	req := httptest.NewRequest(http.MethodPost, "/events", iotest.ErrReader(errors.New(internalText)))
	req.Header.Set("Content-Type", MediaCloudEvent)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)

	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	var body ErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, "The body could not be read", body.Message)
	assert.NotContains(t, rec.Body.String(), "connection reset")
	assert.NotContains(t, rec.Body.String(), "10.0.0.7")
}

// TestErrorTable renders errors of every kind: the status comes from the category, the message from the
// *userhook.Error alone (or the category's default), never from the text of a cause or a wrapper.
func TestErrorTable(t *testing.T) {
	t.Parallel()
	cause := errors.New(internalText)
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		message string
	}{
		{"a message of ours, wrapped with context, around a cause",
			fmt.Errorf("create webhook: %w", &userhook.Error{Code: userhook.ErrConflict, Message: "the webhook changed meanwhile", Err: cause}),
			http.StatusConflict, "The webhook changed meanwhile"},
		{"a category without a message", &userhook.Error{Code: userhook.ErrForbidden, Err: cause},
			http.StatusForbidden, "This API key's role does not allow this request"},
		{"a bare category", userhook.ErrTooLarge, http.StatusRequestEntityTooLarge, "The request body is larger than 1 MiB"},
		{"a category wrapped with fmt's %w says only the default",
			fmt.Errorf("%w: %s", userhook.ErrInvalid, internalText),
			http.StatusBadRequest, "The request contains invalid parameters or malformed data"},
		{"an unknown user", fmt.Errorf("restore: %w", aggregate.ErrUnknownUser), http.StatusNotFound, "The user was never registered"},
		{"a stale change", aggregate.ErrStale, http.StatusConflict, "The change is older than the user's last change"},
		{"a deleted user", aggregate.ErrUserDeleted, http.StatusConflict, "The user is deleted"},
		{"unavailable says why", userhook.Errorf(userhook.ErrUnavailable, "the read model is behind"),
			http.StatusServiceUnavailable, "The read model is behind"},
		{"field faults", fmt.Errorf("decode: %w", userhook.FieldErrors{{Field: "email", Message: "Invalid email format"}}),
			http.StatusBadRequest, "The request contains invalid parameters or malformed data"},
		{"a code that is no category", &userhook.Error{Code: cause, Message: "odd"},
			http.StatusInternalServerError, internalMessage},
		{"an unexpected error", fmt.Errorf("store: %w", cause), http.StatusInternalServerError, internalMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), rec)
			errorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))(tc.err, c)

			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			var body ErrorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tc.status, body.Code)
			assert.Equal(t, http.StatusText(tc.status), body.Error)
			assert.Equal(t, tc.message, body.Message)
			assert.NotContains(t, rec.Body.String(), "connection reset")
		})
	}
}

func TestCategoryOfIsByName(t *testing.T) {
	t.Parallel()
	for _, c := range categories {
		assert.Equal(t, c, categoryOf(c.code))
	}
	assert.Zero(t, categoryOf(errors.New("invalid")), "a category is its value, not its text")
}
