// Package userhook holds what every layer of the receiver shares: the error categories that the HTTP layer
// maps to statuses, the error that carries a category and a message for the client, and the typed list of
// field faults reported with a 400.
//
// The packages: eventstore (the append-only store), aggregate (UserAggregate and its command service),
// ingest (provider events to commands, with their documented results), projection (read model, replay),
// transport (HTTP), and cmd/userhook (configuration and wiring).
package userhook

import (
	"errors"
	"fmt"
	"strings"
)

// The error categories. A specific error carries one of them as the Code of an *Error, for example
// userhook.Errorf(userhook.ErrInvalid, "user_id is required"), and transport maps each to a status.
var (
	ErrInvalid      = errors.New("invalid")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrUnavailable  = errors.New("unavailable")
	ErrTooLarge     = errors.New("too large")
	ErrRateLimited  = errors.New("rate limited")
)

// Error is an error a client is told about: a category, and a message written for the client. The cause,
// when there is one, is for logs and errors.Is alone; its text never reaches the client, so a wrapped
// internal (an I/O error, a driver's message) cannot leak through the message. (wtf's Error{Code, Message}.)
type Error struct {
	// Code is the category: ErrInvalid, ErrNotFound, ... It decides the status.
	Code error
	// Message says what is wrong, for the client, in lower case (transport starts it with a capital).
	// Empty: the category's default message.
	Message string
	// Err is the cause, if any; never shown to the client.
	Err error
}

// Errorf returns an *Error of category code whose client message is formatted from format and args.
func Errorf(code error, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error is the category, the message and the cause, for logs.
func (e *Error) Error() string {
	parts := make([]string, 0, 3)
	if e.Code != nil {
		parts = append(parts, e.Code.Error())
	}
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	return strings.Join(parts, ": ")
}

// Unwrap returns the cause, so errors.Is and errors.As see through to it.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, category) true for the error's own category.
func (e *Error) Is(target error) bool { return e.Code != nil && target == e.Code }

// FieldError is one fault of one input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// FieldErrors is every fault of one input, reported together; it matches ErrInvalid.
type FieldErrors []FieldError

// Add appends a fault.
func (fe *FieldErrors) Add(field, message string) { *fe = append(*fe, FieldError{field, message}) }

// Err returns the list as an error, or nil when it is empty.
func (fe FieldErrors) Err() error {
	if len(fe) == 0 {
		return nil
	}
	return fe
}

// Error lists every fault, field by field.
func (fe FieldErrors) Error() string {
	parts := make([]string, len(fe))
	for i, f := range fe {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (fe FieldErrors) Is(target error) bool { return target == ErrInvalid }
