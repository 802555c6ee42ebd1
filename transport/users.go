package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
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

// DecodePostUsers parses and validates a POST /users body, reporting every field fault at once.
func DecodePostUsers(body []byte) (aggregate.Ensure, error) {
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
		return aggregate.Ensure{}, err
	}
	var fe userhook.FieldErrors
	d := req.Detail.Data
	var cmd aggregate.Ensure
	if d.UserName == nil {
		fe.Add("email", "Email is required (detail.data.user_name)")
	} else if msg := aggregate.CheckEmail(*d.UserName); msg != "" {
		fe.Add("email", msg)
	} else {
		cmd.Email = *d.UserName
	}
	if d.UserID == nil {
		fe.Add("user_id", "user_id is required (detail.data.user_id)")
	} else if msg := aggregate.CheckUserID(*d.UserID); msg != "" {
		fe.Add("user_id", msg)
	} else {
		cmd.UserID = *d.UserID
	}
	return cmd, fe.Err()
}

func (s *Server) postUsers(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	cmd, err := DecodePostUsers(body)
	if err != nil {
		return err
	}
	res, err := s.deps.Users.Execute(c.Request().Context(), cmd, aggregate.Options{
		Metadata: map[string]string{"request_id": requestID(c), "source": "POST /users"},
	})
	if err != nil {
		return err
	}
	for _, e := range res.Events {
		s.deps.Metrics.Appended(e.Type)
	}
	c.Response().Header().Set("X-Event-Position", strconv.FormatInt(res.Position(), 10))
	return c.JSON(http.StatusOK, postUsersResponse{Success: true, UserID: res.User.ID, Email: res.User.Email})
}

// decodeJSON unmarshals one JSON value, refusing trailing data; type faults name the field.
func decodeJSON(body []byte, v any) error {
	if len(body) == 0 {
		return fmt.Errorf("%w: the body is empty; a JSON object is expected", userhook.ErrInvalid)
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
			return fmt.Errorf("%w: the body must be a JSON object", userhook.ErrInvalid)
		}
		return fmt.Errorf("%w: the body is not valid JSON", userhook.ErrInvalid)
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
