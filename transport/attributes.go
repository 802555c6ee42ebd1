package transport

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
)

// attributes reads the user attributes of an event's data object: email, email_verified and name; everything else
// but user_id is the profile. Any provider's JSON user object can be read so.
func attributes(object map[string]json.RawMessage, path string, fe *userhook.FieldErrors) aggregate.Attributes {
	var a aggregate.Attributes
	var profile map[string]any
	keys := make([]string, 0, len(object))
	for k := range object {
		keys = append(keys, k)
	}
	sort.Strings(keys) // faults come in a stable order
	for _, k := range keys {
		raw := object[k]
		if string(raw) == "null" {
			continue // a null attribute says nothing
		}
		switch k {
		case "email":
			email, ok := jsonString(raw)
			if !ok {
				fe.Add(path+".email", "must be a string")
				continue
			}
			if msg := aggregate.CheckEmail(email); msg != "" {
				fe.Add(path+".email", msg)
				continue
			}
			a.Email = &email
		case "email_verified":
			var v bool
			if err := json.Unmarshal(raw, &v); err != nil {
				fe.Add(path+".email_verified", "must be a boolean")
				continue
			}
			a.EmailVerified = &v
		case "name":
			name, ok := jsonString(raw)
			if !ok {
				fe.Add(path+".name", "must be a string")
				continue
			}
			if strings.ContainsRune(name, 0) || len(name) > 1024 {
				fe.Add(path+".name", "must be at most 1024 bytes, without NUL characters")
				continue
			}
			a.Name = &name
		case "user_id":
		default:
			var v any
			if len(raw) > 0 && raw[0] == '"' {
				s, ok := jsonString(raw)
				if !ok {
					continue
				}
				v = s
			} else if err := json.Unmarshal(raw, &v); err != nil {
				continue
			}
			if profile == nil {
				profile = make(map[string]any, len(keys))
			}
			profile[k] = v
		}
	}
	if len(profile) > 0 {
		a.Profile = profile
	}
	return a
}
