package transport

import (
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/delivery"
)

// webhookBody is a webhook as the API shows it; secrets are masked except where they were just set.
type webhookBody struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	URL            string    `json:"url"`
	Events         []string  `json:"events"`
	Enabled        bool      `json:"enabled"`
	ContentType    string    `json:"contentType"`
	Secrets        []string  `json:"secrets"`
	DisabledReason string    `json:"disabledReason,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

func toWebhookBody(w delivery.Webhook, showSecrets bool) webhookBody {
	secrets := make([]string, len(w.Secrets))
	for i, s := range w.Secrets {
		secrets[i] = s
		if !showSecrets {
			secrets[i] = delivery.Mask(s)
		}
	}
	return webhookBody{ID: w.ID, Name: w.Name, URL: w.URL, Events: w.Events, Enabled: w.Enabled, ContentType: w.ContentType,
		Secrets: secrets, DisabledReason: w.DisabledReason, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
}

type deliveryBody struct {
	ID             string     `json:"id"`
	WebhookID      string     `json:"webhookId"`
	EventID        string     `json:"eventId"`
	EventType      string     `json:"eventType"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	ResponseStatus *int       `json:"responseStatus"`
	ResponseBody   string     `json:"responseBody,omitempty"`
	Error          string     `json:"error"`
	CreatedAt      time.Time  `json:"createdAt"`
	LastAttemptAt  *time.Time `json:"lastAttemptAt"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt"`
}

func toDeliveryBody(d delivery.Delivery) deliveryBody {
	b := deliveryBody{ID: d.ID, WebhookID: d.WebhookID, EventID: d.EventID, EventType: d.EventType, Status: d.Status,
		Attempts: d.Attempts, ResponseBody: d.ResponseBody, Error: d.Error, CreatedAt: d.CreatedAt}
	if d.ResponseStatus != 0 {
		b.ResponseStatus = &d.ResponseStatus
	}
	if !d.LastAttemptAt.IsZero() {
		b.LastAttemptAt = &d.LastAttemptAt
	}
	if !d.NextAttemptAt.IsZero() && d.Status == delivery.StatusPending {
		b.NextAttemptAt = &d.NextAttemptAt
	}
	return b
}

// webhookRequest is the body of POST and PATCH; a nil field was not sent.
type webhookRequest struct {
	Name        *string   `json:"name"`
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Enabled     *bool     `json:"enabled"`
	ContentType *string   `json:"contentType"`
	Secrets     *[]string `json:"secrets"`
}

// decodeWebhookRequest reads a POST or PATCH body field by field, so that unknown fields (a misspelt setting
// is not silently ignored) and fields of the wrong type are all reported at once.
func decodeWebhookRequest(body []byte) (webhookRequest, userhook.FieldErrors, error) {
	var req webhookRequest
	fe, err := decodeFields(body, map[string]fieldTarget{
		"name": {&req.Name, "a string"}, "url": {&req.URL, "a string"}, "events": {&req.Events, "an array of strings"},
		"enabled": {&req.Enabled, "a boolean"}, "contentType": {&req.ContentType, "a string"}, "secrets": {&req.Secrets, "an array of strings"},
	})
	return req, fe, err
}

// validateWebhook merges the decoding faults with the settings' own, one list for every fault at once; a
// field that could not be decoded is not judged again.
func validateWebhook(w delivery.Webhook, decoding userhook.FieldErrors, guard delivery.Guard) error {
	all := append(userhook.FieldErrors(nil), decoding...)
	bad := map[string]bool{}
	for _, f := range decoding {
		bad[f.Field] = true
	}
	var settings userhook.FieldErrors
	if errors.As(delivery.Validate(w, guard), &settings) {
		for _, f := range settings {
			if !bad[strings.SplitN(f.Field, "[", 2)[0]] {
				all = append(all, f)
			}
		}
	}
	return all.Err()
}

func (s *Server) webhookID(c echo.Context) string { return c.Param("id") }

func (s *Server) createWebhook(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	req, decoding, err := decodeWebhookRequest(body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	now := time.Now().UTC()
	w := delivery.Webhook{ID: delivery.NewID("wh_"), Enabled: true, ContentType: "application/json", CreatedAt: now, UpdatedAt: now}
	applyWebhookRequest(&w, req)
	if err := validateWebhook(w, decoding, s.deps.WebhookGuard); err != nil {
		return err
	}
	if len(w.Secrets) == 0 {
		w.Secrets = []string{delivery.NewSecret()}
	}
	if w.FromPosition, err = s.deps.Events.LastPosition(ctx); err != nil {
		return err
	}
	if err := s.deps.Webhooks.CreateWebhook(ctx, w); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"data": toWebhookBody(w, true)})
}

func applyWebhookRequest(w *delivery.Webhook, req webhookRequest) {
	if req.Name != nil {
		w.Name = strings.TrimSpace(*req.Name)
	}
	if req.URL != nil {
		w.URL = strings.TrimSpace(*req.URL)
	}
	if req.Events != nil {
		w.Events = *req.Events
	}
	if req.Enabled != nil {
		w.Enabled = *req.Enabled
		if w.Enabled {
			w.DisabledReason, w.FailingSince = "", time.Time{}
		}
	}
	if req.ContentType != nil {
		w.ContentType = *req.ContentType
	}
	if req.Secrets != nil {
		w.Secrets = *req.Secrets
	}
}

func (s *Server) listWebhooks(c echo.Context) error {
	hooks, err := s.deps.Webhooks.Webhooks(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]webhookBody, len(hooks))
	for i, w := range hooks {
		out[i] = toWebhookBody(w, false)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

func (s *Server) getWebhook(c echo.Context) error {
	w, err := s.deps.Webhooks.Webhook(c.Request().Context(), s.webhookID(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": toWebhookBody(w, false)})
}

func (s *Server) patchWebhook(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	req, decoding, err := decodeWebhookRequest(body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	w, err := s.deps.Webhooks.Webhook(ctx, s.webhookID(c))
	if err != nil {
		return err
	}
	before := w
	applyWebhookRequest(&w, req)
	if err := validateWebhook(w, decoding, s.deps.WebhookGuard); err != nil {
		return err
	}
	if len(w.Secrets) == 0 {
		w.Secrets = []string{delivery.NewSecret()}
	}
	// A webhook whose target changed (url, events, enabled) applies from the next event on; a rename or a new
	// secret leaves alone what is already on its way to it.
	if w.URL != before.URL || !slices.Equal(w.Events, before.Events) || w.Enabled != before.Enabled {
		if w.FromPosition, err = s.deps.Events.LastPosition(ctx); err != nil {
			return err
		}
	}
	w.UpdatedAt = time.Now().UTC()
	if err := s.deps.Webhooks.UpdateWebhook(ctx, w); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": toWebhookBody(w, req.Secrets != nil)})
}

func (s *Server) deleteWebhook(c echo.Context) error {
	id := s.webhookID(c)
	if err := s.deps.Webhooks.DeleteWebhook(c.Request().Context(), id); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{"id": id, "deleted": true}})
}

func (s *Server) listDeliveries(c echo.Context) error {
	ctx := c.Request().Context()
	var fe userhook.FieldErrors
	unknownParams(c, map[string]bool{"status": true, "limit": true, "cursor": true}, &fe)
	f := delivery.Filter{WebhookID: s.webhookID(c), Status: c.QueryParam("status")}
	f.Limit = limitParam(c, &fe)
	switch f.Status {
	case "", delivery.StatusPending, delivery.StatusSucceeded, delivery.StatusFailed:
	default:
		fe.Add("status", "must be pending, succeeded or failed")
	}
	if cur := c.QueryParam("cursor"); cur != "" {
		b, err := base64.RawURLEncoding.DecodeString(cur)
		n, perr := strconv.ParseInt(string(b), 10, 64)
		if err != nil || perr != nil || n <= 0 {
			fe.Add("cursor", "is not a cursor this API returned")
		}
		f.Before = n
	}
	if err := fe.Err(); err != nil {
		return err
	}
	if _, err := s.deps.Webhooks.Webhook(ctx, f.WebhookID); err != nil {
		return err
	}
	want := f.Limit
	f.Limit++
	list, err := s.deps.Webhooks.Deliveries(ctx, f)
	if err != nil {
		return err
	}
	var next *string
	if len(list) > want {
		list = list[:want]
		cur := base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(list[want-1].Position, 10)))
		next = &cur
	}
	out := make([]deliveryBody, len(list))
	for i, d := range list {
		out[i] = toDeliveryBody(d)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out, "nextCursor": next})
}

func (s *Server) retryDelivery(c echo.Context) error {
	ctx := c.Request().Context()
	// The manual attempt takes the delivery's lease like any sender, so it never goes out twice at once.
	d, ok, err := s.deps.Webhooks.ClaimOne(ctx, c.Param("deliveryId"), time.Now().UTC(), 2*delivery.Timeout)
	if err != nil {
		return err
	}
	if !ok {
		c.Response().Header().Set("Retry-After", "10")
		return userhook.Errorf(userhook.ErrConflict, "the delivery is being sent right now; retry in a few seconds")
	}
	d, err = s.deps.Sender.Attempt(ctx, d, true)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": toDeliveryBody(d)})
}
