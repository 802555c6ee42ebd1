// Package userhook holds what every layer of the receiver shares: the error categories that the HTTP layer
// maps to statuses, and the typed list of field faults reported with a 400.
//
// The packages: eventstore (the append-only store), aggregate (UserAggregate and its command service),
// projection (relay, read model, replay), transport (HTTP), and cmd/userhook (configuration and wiring).
package userhook

import (
	"errors"
	"strings"
)

// The error categories. Specific errors wrap one of them, for example
// fmt.Errorf("%w: user_id is required", userhook.ErrInvalid), and transport maps each to a status.
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
