package userhook_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
)

func TestError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("read body: %w", &userhook.Error{Code: userhook.ErrInvalid, Message: "the body could not be read",
		Err: io.ErrUnexpectedEOF})

	assert.ErrorIs(t, err, userhook.ErrInvalid, "its category")
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "its cause")
	assert.NotErrorIs(t, err, userhook.ErrNotFound)
	var ue *userhook.Error
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, "the body could not be read", ue.Message)
	assert.Equal(t, "read body: invalid: the body could not be read: unexpected EOF", err.Error(), "logs see all of it")

	assert.EqualError(t, userhook.Errorf(userhook.ErrNotFound, "no user %q", "u1"), `not found: no user "u1"`)
	assert.EqualError(t, &userhook.Error{Code: userhook.ErrConflict}, "conflict")
}

func TestFieldErrors(t *testing.T) {
	t.Parallel()
	var fe userhook.FieldErrors
	assert.NoError(t, fe.Err())
	fe.Add("email", "Invalid email format")
	fe.Add("user_id", "user_id is required")
	err := fmt.Errorf("decode: %w", fe.Err())
	assert.ErrorIs(t, err, userhook.ErrInvalid)
	var got userhook.FieldErrors
	require.ErrorAs(t, err, &got)
	assert.Len(t, got, 2)
	assert.EqualError(t, fe, "invalid: email: Invalid email format; user_id: user_id is required")
	assert.False(t, errors.Is(fe, userhook.ErrConflict))
}
