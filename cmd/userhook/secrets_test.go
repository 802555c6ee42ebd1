package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/standardwebhooks"
)

// TestSecretsNeverInLogs runs the whole program with a JWT secret, API keys, an inbound webhook secret and an
// outbound webhook secret in play — good requests, refused ones, signed events, deliveries, an API key created
// through the CLI — and finds none of them, nor any token or signature, in the log.
func TestSecretsNeverInLogs(t *testing.T) {
	t.Parallel()
	inbound, inboundKey := webhookSecret(t)
	cfg := testConfig(t)
	cfg.WebhookSecrets = inbound
	cfg.WebhookAllowPrivate = true
	cfg.DeliveryBackoff = "10ms"
	s := startServer(t, cfg)
	var sigs []string
	var received atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusInternalServerError) // retried, then failed: every path of the sender logs
	}))
	defer receiver.Close()

	r := s.authed(http.MethodPost, "/api/webhooks", `{"name":"logs","url":"`+receiver.URL+`","events":["all"]}`, adminKey)
	require.Equal(t, http.StatusCreated, r.Status)
	var created struct {
		Data struct{ Secrets []string } `json:"data"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &created))
	outbound := created.Data.Secrets[0]

	tok := token(t)
	require.Equal(t, http.StatusOK, s.postUser("auth0|logs", "logs@example.com").Status)
	assert.Equal(t, http.StatusUnauthorized, s.do(http.MethodPost, "/users", `{}`, "Authorization", "Bearer "+tok, "X-API-Key", "wrong-"+ingestKey).Status)
	assert.Equal(t, http.StatusUnauthorized, s.do(http.MethodPost, "/users", `{}`, "Authorization", "Bearer "+tok+"x", "X-API-Key", ingestKey).Status)
	body := `{"specversion":"1.0","id":"logs-1","source":"s","type":"user.updated","subject":"auth0|logs","data":{"name":"Logs"}}`
	now := time.Now()
	sig := standardwebhooks.Sign("msg_logs", now, []byte(body), inboundKey)
	sigs = append(sigs, sig)
	r = s.do(http.MethodPost, "/events", body, "Content-Type", "application/cloudevents+json",
		"webhook-id", "msg_logs", "webhook-timestamp", strconv.FormatInt(now.Unix(), 10), "webhook-signature", sig)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	bad := s.do(http.MethodPost, "/events", body, "Content-Type", "application/cloudevents+json",
		"webhook-id", "msg_logs", "webhook-timestamp", strconv.FormatInt(now.Unix(), 10), "webhook-signature", "v1,"+base64.StdEncoding.EncodeToString([]byte("forged")))
	assert.Equal(t, http.StatusUnauthorized, bad.Status)
	require.Eventually(t, func() bool { return received.Load() >= 4 }, 10*time.Second, 10*time.Millisecond, "deliveries attempted and retried")

	var out, errOut strings.Builder
	require.NoError(t, run(t.Context(), []string{"apikey", "create", "--name", "logs", "--role", "read", "--database", cfg.Database}, func(string) string { return "" }, &out, &errOut))
	created2 := strings.TrimSpace(out.String())

	logs := s.logs.String() + errOut.String()
	require.Contains(t, logs, `"msg":"request"`, "the log was captured")
	require.Contains(t, logs, `"msg":"delivery attempt"`)
	secrets := map[string]string{
		"JWT secret": testSecret, "bearer token": tok, "ingest key": ingestKey, "read key": readKey, "admin key": adminKey,
		"inbound webhook secret": inbound, "inbound key (base64)": strings.TrimPrefix(inbound, "whsec_"),
		"outbound webhook secret": outbound, "outbound key (base64)": strings.TrimPrefix(outbound, "whsec_"),
		"created API key": created2,
	}
	for i, sg := range sigs {
		secrets["signature "+strconv.Itoa(i)] = strings.TrimPrefix(sg, "v1,")
	}
	for name, value := range secrets {
		require.NotEmpty(t, value, name)
		assert.NotContains(t, logs, value, "the %s is not in the log", name)
	}
}
