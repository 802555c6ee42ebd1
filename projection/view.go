package projection

import (
	"time"

	"github.com/userhook/userhook/aggregate"
)

// UserView is a user as the API and webhook deliveries show it.
type UserView struct {
	UserID        string         `json:"userId"`
	Email         string         `json:"email"`
	EmailVerified bool           `json:"emailVerified"`
	Name          string         `json:"name"`
	Status        string         `json:"status"`
	Profile       map[string]any `json:"profile"`
	CreatedAt     *time.Time     `json:"createdAt"`
	UpdatedAt     *time.Time     `json:"updatedAt"`
	Version       int64          `json:"version"`
}

// View renders a user; a user known only from a deletion has no createdAt.
func View(u aggregate.User) UserView {
	profile := u.Profile
	if profile == nil {
		profile = map[string]any{}
	}
	status := u.Status
	if status == "" {
		status = aggregate.StatusActive
	}
	return UserView{
		UserID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified, Name: u.Name, Status: string(status),
		Profile: profile, CreatedAt: timePtr(u.CreatedAt), UpdatedAt: timePtr(u.UpdatedAt), Version: u.Version,
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
