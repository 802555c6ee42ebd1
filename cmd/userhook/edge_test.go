package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawResponse is an answer read off a raw TCP connection.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// rawRequest writes request bytes as they are to a new connection and reads one response: for what an HTTP
// client would refuse to send (a method of 500 KB, say).
func (s *testServer) rawRequest(request string) rawResponse {
	s.t.Helper()
	conn, err := net.Dial("tcp", s.Main.Addr())
	require.NoError(s.t, err)
	defer conn.Close()
	require.NoError(s.t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	// The server may answer before it read everything (and close); a short write is no failure here.
	go func() { _, _ = io.WriteString(conn, request) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// requestSeries are the lines of userhook_http_requests_total in a /metrics text.
func requestSeries(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "userhook_http_requests_total{") {
			out = append(out, line)
		}
	}
	return out
}

// TestEdgeOddMethodsLeaveMetricsAndLogsBounded sends 10,000 requests with made-up methods, and a few with
// 500 KB method names, and checks that neither the metrics nor the log grew with them: labels come from a closed
// set and log fields are truncated (issue 12, defect 1).
func TestEdgeOddMethodsLeaveMetricsAndLogsBounded(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()

	const n, workers = 10000, 4
	paths := []string{"/users", "/healthz", "/no/such/route", "/api/webhooks/x"}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				method := fmt.Sprintf("ODD%d", i)
				if i%2 == 1 {
					method = "get" + strconv.Itoa(i) // case matters: "get" is not GET
				}
				req, err := http.NewRequest(method, s.URL+paths[i%len(paths)], nil)
				if err == nil {
					var resp *http.Response
					if resp, err = client.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	huge := strings.Repeat("A", 500<<10)
	for i, path := range []string{"/users", "/no/such/route", "/healthz"} {
		r := s.rawRequest(huge + strconv.Itoa(i) + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		assert.GreaterOrEqual(t, r.Status, 400, "a 500 KB method is refused")
		assert.Less(t, len(r.Body), 4096, "the answer does not echo the method")
	}

	text := string(s.do(http.MethodGet, "/metrics", "").Body)
	series := requestSeries(text)
	t.Logf("userhook_http_requests_total has %d series after %d odd methods; /metrics is %d bytes", len(series), n, len(text))
	assert.LessOrEqual(t, len(series), 24, "a small fixed number of series")
	assert.Less(t, len(text), 256<<10, "/metrics stays small")
	methods := regexp.MustCompile(`method="([^"]*)"`)
	for _, line := range series {
		m := methods.FindStringSubmatch(line)
		require.NotNil(t, m, line)
		if !assert.Contains(t, []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "other"}, m[1], "%.200s", line) {
			break
		}
	}
	assert.Regexp(t, `userhook_http_requests_total\{code="405",method="other",route="/users"\} [1-9]`, text)
	assert.Regexp(t, `userhook_http_requests_total\{code="404",method="other",route="unmatched"\} [1-9]`, text)

	for _, line := range strings.Split(s.logs.String(), "\n") {
		if !assert.Less(t, len(line), 4096, "no log line carries a client's huge string: %.200s", line) {
			break
		}
	}
}

// TestEdgeLoneSurrogatesAreRefused checks that a JSON string with an unpaired UTF-16 surrogate escape, which
// encoding/json would turn into U+FFFD (so that "pg\ud800" and "pg\udbff" became one user), is refused with
// 400 naming the field, on every JSON body (issue 12, defect 2).
func TestEdgeLoneSurrogatesAreRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	user := func(id, email string) string {
		return `{"detail":{"data":{"user_name":"` + email + `","user_id":"` + id + `"}}}`
	}
	post := func(body string) response { return s.authed(http.MethodPost, "/users", body, ingestKey) }

	first := post(user(`pg\ud800`, "first@example.com"))
	body := assertErrorBody(t, first, http.StatusBadRequest)
	assert.Equal(t, []string{"user_id"}, detailFields(t, body))
	second := post(user(`pg\udbff`, "second@example.com"))
	body = assertErrorBody(t, second, http.StatusBadRequest)
	assert.Equal(t, []string{"user_id"}, detailFields(t, body))
	body = assertErrorBody(t, post(user(`pg\udc00x`, "third@example.com")), http.StatusBadRequest)
	assert.Equal(t, []string{"user_id"}, detailFields(t, body), "a lone low surrogate")
	body = assertErrorBody(t, post(user(`pg\ud800\u0041`, "third@example.com")), http.StatusBadRequest)
	assert.Equal(t, []string{"user_id"}, detailFields(t, body), "a high surrogate followed by no low one")
	body = assertErrorBody(t, post(`{"detail":{"data":{"user_name":"a@example.com","user_id":"pg1","note":"\udfff"}}}`), http.StatusBadRequest)
	assert.Equal(t, []string{"detail.data.note"}, detailFields(t, body), "a field the route does not name itself keeps its path")
	assert.Equal(t, 0, s.allEvents(), "nothing was stored")

	paired := post(user(`pg\ud83d\ude00`, "pair@example.com"))
	require.Equal(t, http.StatusOK, paired.Status, "a surrogate pair is a character: body %s", paired.Body)
	assert.Equal(t, "pg\U0001F600", paired.JSON(t)["userId"])
	escapedBackslash := post(user(`pg\\ud800`, "backslash@example.com"))
	require.Equal(t, http.StatusOK, escapedBackslash.Status, "an escaped backslash followed by ud800 is text: body %s", escapedBackslash.Body)
	assert.Equal(t, `pg\ud800`, escapedBackslash.JSON(t)["userId"])

	const structured, batch = "application/cloudevents+json", "application/cloudevents-batch+json"
	ce := func(id, subject, data string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"s","type":"user.created","subject":"` + subject + `","data":` + data + `}`
	}
	for _, tc := range []struct{ name, body, contentType, field string }{
		{"subject", ce("e1", `u\ud800`, `{"email":"a@example.com"}`), structured, "subject"},
		{"data.name", ce("e2", "u2", `{"name":"a\udbffb"}`), structured, "data.name"},
		{"batch", `[` + ce("e3", "u3", `{}`) + `,` + ce("e4", "u4", `{"name":"x\udc01"}`) + `]`, batch, "[1].data.name"},
		{"a key", ce("e5", "u5", `{"\ud800":1}`), structured, "data.\ufffd"},
	} {
		r := s.authed(http.MethodPost, "/events", tc.body, ingestKey, "Content-Type", tc.contentType)
		body := assertErrorBody(t, r, http.StatusBadRequest)
		assert.Equal(t, []string{tc.field}, detailFields(t, body), tc.name)
	}
	r := s.authed(http.MethodPost, "/api/webhooks", `{"name":"hook\ud800","url":"https://example.com/h","events":["all"]}`, adminKey)
	body = assertErrorBody(t, r, http.StatusBadRequest)
	assert.Equal(t, []string{"name"}, detailFields(t, body))
	r = s.authed(http.MethodPost, "/api/webhooks", `{"name":"h","url":"https://example.com/h","events":["user.created","\udc00"]}`, adminKey)
	body = assertErrorBody(t, r, http.StatusBadRequest)
	assert.Equal(t, []string{"events[1]"}, detailFields(t, body))
	assert.Equal(t, 2, s.allEvents(), "only the surrogate pair and the escaped backslash were stored")
}

// TestEdgeMalformedQueryIsRefused checks that a query string url.ParseQuery cannot parse is a 400 naming the
// parameter, not a query read as if the malformed part were absent (issue 12, defect 3).
func TestEdgeMalformedQueryIsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	require.Equal(t, http.StatusOK, s.postUser("auth0|q1", "q1@example.com").Status)
	s.waitProjected()

	for _, tc := range []struct{ path, key, field string }{
		{"/users?status=%%", readKey, "status"},
		{"/users?stauts=%%", readKey, "stauts"},
		{"/users?email=q1%40example.com&limit=%zz", readKey, "limit"},
		{"/users?%zz=1", readKey, "%zz"},
		{"/users?status=active;limit=2", readKey, "status"},
		{"/users/auth0%7Cq1?minPosition=%", readKey, "minPosition"},
		{"/users/auth0%7Cq1/events?x=%G0", readKey, "x"},
		{"/api/events?from=%%31", readKey, "from"},
		{"/api/webhooks/wh_x/deliveries?status=%%", adminKey, "status"},
	} {
		r := s.authed(http.MethodGet, tc.path, "", tc.key)
		body := assertErrorBody(t, r, http.StatusBadRequest)
		assert.Contains(t, detailFields(t, body), tc.field, tc.path)
	}

	huge := s.read("/users?email=" + strings.Repeat("%%", 20000))
	assertErrorBody(t, huge, http.StatusBadRequest)
	assert.Less(t, len(huge.Body), 2048, "the answer does not echo the query")
	many := s.read("/users?" + strings.Repeat("%zz=1&", 5000))
	assertErrorBody(t, many, http.StatusBadRequest)
	assert.Less(t, len(many.Body), 4096, "nor every fault of it")
	for _, path := range []string{"/users", "/api/webhooks/wh_x/deliveries"} {
		long := s.authed(http.MethodGet, path+"?"+strings.Repeat("x", 4000)+"=1&"+strings.Repeat("y=1&z", 2000)+"=1", "", adminKey)
		assertErrorBody(t, long, http.StatusBadRequest)
		assert.Less(t, len(long.Body), 2048, "%s: long or many unknown parameter names are not echoed", path)
	}

	ok := s.read("/users?email=q1%40example.com")
	require.Equal(t, http.StatusOK, ok.Status, "body: %s", ok.Body)
	assert.Len(t, ok.JSON(t)["users"], 1)
}

// TestEdgeLargeHeadersAnswerJSON checks that headers past the documented limit are answered 431 in the
// documented error shape, by the server's middleware rather than by Go's plain text (issue 12, defect 4).
func TestEdgeLargeHeadersAnswerJSON(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	pad := strings.Repeat("p", 10<<10)
	var headers []string
	for i := 0; i < 10; i++ {
		headers = append(headers, fmt.Sprintf("X-Pad-%d", i), pad)
	}
	r := s.do(http.MethodGet, "/healthz", "", headers...)
	body := assertErrorBody(t, r, http.StatusRequestHeaderFieldsTooLarge)
	assert.Contains(t, body["message"], "64 KiB")
	assert.Equal(t, "application/json", strings.Split(r.Header.Get("Content-Type"), ";")[0])

	r = s.do(http.MethodPost, "/users", `{}`, append(headers, "Content-Type", "application/json")...)
	assertErrorBody(t, r, http.StatusRequestHeaderFieldsTooLarge)

	raw := s.rawRequest(strings.Repeat("A", 500<<10) + " /users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, raw.Status, "body: %.200s", raw.Body)
	assert.Contains(t, string(raw.Body), `"code":431`)
	assert.NotEmpty(t, raw.Header.Get("X-Request-Id"))

	assert.Equal(t, http.StatusOK, s.do(http.MethodGet, "/healthz", "", headers[:6]...).Status, "30 KB of headers pass")
}
