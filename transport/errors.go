package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook"
)

// ErrorBody is the body of every error response (API.md, seed 000).
type ErrorBody struct {
	Error     string                `json:"error"`
	Message   string                `json:"message"`
	Code      int                   `json:"code"`
	Details   []userhook.FieldError `json:"details,omitempty"`
	RequestID string                `json:"requestId"`
}

// category is how an error category is answered: its status, and the message when the error says none.
type category struct {
	code    error
	status  int
	message string
}

// categories is the one table from error categories to statuses and default messages, read by name
// (categoryOf). A bare category that matches several rows is answered by the first.
var categories = []category{
	{userhook.ErrInvalid, http.StatusBadRequest, "The request contains invalid parameters or malformed data"},
	{userhook.ErrUnauthorized, http.StatusUnauthorized, "Authentication is required"},
	{userhook.ErrForbidden, http.StatusForbidden, "This API key's role does not allow this request"},
	{userhook.ErrNotFound, http.StatusNotFound, "The resource was not found"},
	{userhook.ErrConflict, http.StatusConflict, "The request conflicts with the current state"},
	{userhook.ErrTooLarge, http.StatusRequestEntityTooLarge, "The request body is larger than 1 MiB"},
	{userhook.ErrRateLimited, http.StatusTooManyRequests, "Too many requests"},
	{userhook.ErrUnavailable, http.StatusServiceUnavailable, "The service is temporarily unavailable"},
}

// categoryOf returns the row of a category by name; the zero row (status 0: a 500) for any other error.
func categoryOf(code error) category {
	for _, c := range categories {
		if c.code == code {
			return c
		}
	}
	return category{}
}

const internalMessage = "An unexpected error occurred on the server"

// unsupportedMedia is answered 415; it names the media types the route accepts.
type unsupportedMedia struct{ accepted []string }

func (e *unsupportedMedia) Error() string {
	return "Content-Type must be " + strings.Join(e.accepted, " or ")
}

// errorHandler renders every error of every route in the documented shape. Only unexpected errors are
// logged, with the request id; their text never reaches the client.
// statusClientClosed is what a request whose client went away is recorded with.
const statusClientClosed = 499

func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
			// The client went away before the answer: nothing failed on our side and nobody reads a body.
			// 499 (nginx's "client closed request") keeps it apart from 500 in the access log and metrics.
			c.Response().WriteHeader(statusClientClosed)
			return
		}
		body := ErrorBody{RequestID: requestID(c)}
		var fe userhook.FieldErrors
		var he *echo.HTTPError
		switch {
		case errors.As(err, &fe):
			body.Code, body.Message, body.Details = http.StatusBadRequest, categoryOf(userhook.ErrInvalid).message, fe
		case errors.As(err, new(*unsupportedMedia)):
			body.Code, body.Message = http.StatusUnsupportedMediaType, err.Error()
		case errors.As(err, &he):
			body.Code = he.Code
			body.Message = http.StatusText(he.Code)
			if m, ok := he.Message.(string); ok && he.Code < 500 {
				body.Message = m
			}
			if he.Code == http.StatusNotFound {
				// Both are the client's: cut, so a made-up method or path of any size is not echoed whole.
				body.Message = "No route matches " + logMethod(c.Request().Method) + " " + truncate(c.Request().URL.Path, 200)
			}
			if he.Code == http.StatusRequestEntityTooLarge {
				body.Message = categoryOf(userhook.ErrTooLarge).message
			}
		default:
			body.Code, body.Message = clientStatus(err)
		}
		if body.Code == 0 || body.Code >= 500 && body.Code != http.StatusServiceUnavailable {
			log.ErrorContext(c.Request().Context(), "request failed", "request_id", body.RequestID,
				"method", logMethod(c.Request().Method), "route", c.Path(), "error", truncate(err.Error(), 1024))
			body.Code, body.Message = http.StatusInternalServerError, internalMessage
		}
		body.Error = http.StatusText(body.Code)
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(body.Code)
			return
		}
		_ = c.JSON(body.Code, body)
	}
}

// clientStatus is the status and message of an error of ours: the category and message of the *userhook.Error
// it holds (never the text of its cause), or the category's default message for a bare category. It is 0 for
// any other error.
func clientStatus(err error) (int, string) {
	var ue *userhook.Error
	if errors.As(err, &ue) {
		c := categoryOf(ue.Code)
		if ue.Message == "" {
			return c.status, c.message
		}
		// Messages are written in lower case, to read well inside Error(); on the wire they are sentences.
		r, n := utf8.DecodeRuneInString(ue.Message)
		return c.status, string(unicode.ToUpper(r)) + ue.Message[n:]
	}
	for _, c := range categories {
		if errors.Is(err, c.code) {
			return c.status, c.message
		}
	}
	return 0, ""
}
