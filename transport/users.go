package transport

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/ingest"
)

// postUsersRequest is the body Auth0's post-login and post-registration Actions send (seed 000).
type postUsersRequest struct {
	Detail struct {
		Data struct {
			UserName *string `json:"user_name"`
			UserID   *string `json:"user_id"`
		} `json:"data"`
	} `json:"detail"`
}

type postUsersResponse struct {
	Success bool   `json:"success"`
	UserID  string `json:"userId"`
	Email   string `json:"email"`
}

// postUsersFields names the body's fields as faults report them.
var postUsersFields = map[string]string{
	"detail": "detail", "detail.data": "detail.data", "detail.data.user_name": "email", "detail.data.user_id": "user_id",
}

// DecodePostUsers parses and validates a POST /users body into the ensure it asks for, reporting every field
// fault at once. The event has no provider event id: the Action sends the same body at every login, and
// applying it again changes nothing.
func DecodePostUsers(body []byte) (ingest.Event, error) {
	var req postUsersRequest
	if err := decodeJSON(body, &req); err != nil {
		var fe userhook.FieldErrors
		if errors.As(err, &fe) {
			for i := range fe {
				if name, ok := postUsersFields[fe[i].Field]; ok {
					fe[i].Field = name
				}
			}
		}
		return ingest.Event{}, err
	}
	var fe userhook.FieldErrors
	d := req.Detail.Data
	e := ingest.Event{Kind: ingest.KindEnsured}
	if d.UserName == nil {
		fe.Add("email", "Email is required (detail.data.user_name)")
	} else if msg := aggregate.CheckEmail(*d.UserName); msg != "" {
		fe.Add("email", msg)
	} else {
		e.Attributes.Email = d.UserName
	}
	if d.UserID == nil {
		fe.Add("user_id", "user_id is required (detail.data.user_id)")
	} else if msg := aggregate.CheckUserID(*d.UserID); msg != "" {
		fe.Add("user_id", msg)
	} else {
		e.UserID = *d.UserID
	}
	if err := fe.Err(); err != nil {
		return ingest.Event{}, err
	}
	return e, nil
}

func (s *Server) postUsers(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	e, err := DecodePostUsers(body)
	if err != nil {
		return err
	}
	e.Metadata = map[string]string{"request_id": requestID(c), "source": "POST /users"}
	r, err := s.ingest.Apply(c.Request().Context(), "/users", e)
	if err != nil {
		return err
	}
	// Applied or ignored for no change, the user is now as the body says: the answer is the same.
	c.Response().Header().Set("X-Event-Position", strconv.FormatInt(r.UserPosition, 10))
	return c.JSON(http.StatusOK, postUsersResponse{Success: true, UserID: r.UserID, Email: *e.Attributes.Email})
}

// decodeJSON unmarshals one JSON value, refusing trailing data; type faults name the field.
func decodeJSON(body []byte, v any) error {
	if len(body) == 0 {
		return userhook.Errorf(userhook.ErrInvalid, "the body is empty; a JSON object is expected")
	}
	if err := checkJSON(body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return userhook.FieldErrors{{Field: te.Field, Message: "must be a " + jsonKind(te.Type.Kind().String())}}
		}
		if errors.As(err, &te) {
			return userhook.Errorf(userhook.ErrInvalid, "the body must be a JSON object")
		}
		return userhook.Errorf(userhook.ErrInvalid, "the body is not valid JSON")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "struct", "map":
		return "JSON object"
	case "slice", "array":
		return "JSON array"
	case "bool":
		return "boolean"
	}
	return "number"
}
