package transport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/userhook/userhook/apikey"
)

// openAPIMethods are the operations a path item can hold, in OpenAPI's lower case.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// publicRoutes are the routes API.md lets through without credentials.
var publicRoutes = []string{"GET /healthz", "HEAD /healthz", "GET /readyz", "HEAD /readyz", "GET /metrics", "GET /openapi.yaml"}

// describedServer is a server whose routes are all registered; nothing but the router is exercised.
func describedServer(t *testing.T) *Server {
	t.Helper()
	jwt, err := NewJWTVerifier(context.Background(), JWTConfig{Secret: []byte("openapi-test-secret-0123456789abcdef")})
	require.NoError(t, err)
	return NewServer(Deps{Auth: &Authenticator{JWT: jwt, Keys: apikey.NewKeyring(nil, nil)}})
}

// openAPIDoc parses the embedded description into plain maps, slices and scalars with string keys.
func openAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	var raw any
	require.NoError(t, yaml.Unmarshal(OpenAPI, &raw), "openapi.yaml is not valid YAML")
	doc, ok := plain(raw).(map[string]any)
	require.True(t, ok, "openapi.yaml is not a mapping")
	return doc
}

// plain turns every mapping into map[string]any (a YAML key such as an unquoted 200 decodes as an int).
func plain(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = plain(x)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = plain(x)
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = plain(x)
		}
		return v
	}
	return v
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// registeredRoutes lists NewServer's routes as "METHOD /path/{param}"; Echo's internal entries (its
// route-not-found handlers, any method that is not HTTP's) are left out.
func registeredRoutes(s *Server) map[string]bool {
	out := map[string]bool{}
	for _, r := range s.Echo().Routes() {
		if !slices.Contains(openAPIMethods, strings.ToLower(r.Method)) {
			continue
		}
		out[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	return out
}

// operation is one method of one path of the description.
type operation struct {
	route string // "GET /users/{id}"
	path  string
	item  map[string]any
	op    map[string]any
}

func operations(t *testing.T, doc map[string]any) []operation {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	require.True(t, ok, "paths is not a mapping")
	var out []operation
	for path, v := range paths {
		item, ok := v.(map[string]any)
		require.True(t, ok, "paths[%q] is not a mapping", path)
		for _, m := range openAPIMethods {
			if v, ok := item[m]; ok {
				op, ok := v.(map[string]any)
				require.True(t, ok, "%s %s is not a mapping", m, path)
				out = append(out, operation{route: strings.ToUpper(m) + " " + path, path: path, item: item, op: op})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].route < out[j].route })
	return out
}

// resolve follows a local reference ("#/components/schemas/Error"), or says why it cannot.
func resolve(doc map[string]any, ref string) (any, error) {
	pointer, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("%q is not a reference inside this document", ref)
	}
	var node any = doc
	if pointer == "" {
		return node, nil
	}
	for _, token := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		token = strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
		switch n := node.(type) {
		case map[string]any:
			next, ok := n[token]
			if !ok {
				return nil, fmt.Errorf("%q: no %q", ref, token)
			}
			node = next
		case []any:
			i, err := strconv.Atoi(token)
			if err != nil || i < 0 || i >= len(n) {
				return nil, fmt.Errorf("%q: no element %q", ref, token)
			}
			node = n[i]
		default:
			return nil, fmt.Errorf("%q: %q is inside a scalar", ref, token)
		}
	}
	return node, nil
}

// deref returns the mapping v stands for, following $ref (a Reference Object) as often as it takes.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	for range 10 {
		m, ok := v.(map[string]any)
		require.True(t, ok, "%v is not a mapping", v)
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		next, err := resolve(doc, ref)
		require.NoError(t, err)
		v = next
	}
	t.Fatalf("a chain of $ref does not end: %v", v)
	return nil
}

func TestOpenAPIVersion(t *testing.T) {
	t.Parallel()
	doc := openAPIDoc(t)
	assert.Equal(t, "3.1.0", doc["openapi"])
	info, _ := doc["info"].(map[string]any)
	assert.NotEmpty(t, info["title"], "info.title")
	assert.NotEmpty(t, info["version"], "info.version")
}

// The description and NewServer name the same routes: every registered route is described, and every
// described route is registered.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	doc := openAPIDoc(t)
	registered := registeredRoutes(describedServer(t))
	require.NotEmpty(t, registered)
	described := map[string]bool{}
	for _, op := range operations(t, doc) {
		described[op.route] = true
	}
	var undescribed, unregistered []string
	for r := range registered {
		if !described[r] {
			undescribed = append(undescribed, r)
		}
	}
	for r := range described {
		if !registered[r] {
			unregistered = append(unregistered, r)
		}
	}
	sort.Strings(undescribed)
	sort.Strings(unregistered)
	if len(undescribed) > 0 || len(unregistered) > 0 {
		t.Errorf("openapi.yaml and NewServer disagree:\n  registered but not described in openapi.yaml: %v\n"+
			"  described in openapi.yaml but not registered: %v", undescribed, unregistered)
	}
}

// Every operation answers some 2xx, every response carries X-Request-Id, and every error response has the
// Error body (but /readyz's 503, which is its own readiness body).
func TestOpenAPIResponses(t *testing.T) {
	t.Parallel()
	doc := openAPIDoc(t)
	twoXX := regexp.MustCompile(`^(2[0-9][0-9]|2XX)$`)
	status := regexp.MustCompile(`^([1-5][0-9][0-9]|[1-5]XX|default)$`)
	for _, op := range operations(t, doc) {
		responses, ok := op.op["responses"].(map[string]any)
		if !assert.True(t, ok, "%s has no responses", op.route) {
			continue
		}
		success := false
		for code, v := range responses {
			assert.Regexp(t, status, code, "%s: response key", op.route)
			success = success || twoXX.MatchString(code)
			resp := deref(t, doc, v)
			headers, _ := resp["headers"].(map[string]any)
			assert.Contains(t, headers, "X-Request-Id", "%s %s: every response carries X-Request-Id", op.route, code)
			if code < "400" || op.route == "GET /readyz" && code == "503" || strings.HasPrefix(op.route, "HEAD ") {
				continue // readiness has its own body, and HEAD answers none
			}
			content, _ := resp["content"].(map[string]any)
			media, _ := content["application/json"].(map[string]any)
			schema, _ := media["schema"].(map[string]any)
			assert.Equal(t, "#/components/schemas/Error", schema["$ref"], "%s %s: an error has the Error body", op.route, code)
		}
		assert.True(t, success, "%s has no 2xx response", op.route)
	}
}

// Every path parameter of a path template is declared in the path, and every declared one is in the template.
func TestOpenAPIPathParameters(t *testing.T) {
	t.Parallel()
	doc := openAPIDoc(t)
	template := regexp.MustCompile(`\{([^}]+)\}`)
	for _, op := range operations(t, doc) {
		var want []string
		for _, m := range template.FindAllStringSubmatch(op.path, -1) {
			want = append(want, m[1])
		}
		var declared []string
		for _, list := range []any{op.item["parameters"], op.op["parameters"]} {
			params, _ := list.([]any)
			for _, p := range params {
				param := deref(t, doc, p)
				if param["in"] == "path" {
					assert.Equal(t, true, param["required"], "%s: path parameter %v is required", op.route, param["name"])
					declared = append(declared, fmt.Sprint(param["name"]))
				}
			}
		}
		sort.Strings(want)
		sort.Strings(declared)
		assert.Equal(t, want, declared, "%s: path parameters", op.route)
	}
}

// API.md: /healthz, /readyz, /metrics and /openapi.yaml need nothing; every other route needs credentials.
func TestOpenAPISecurity(t *testing.T) {
	t.Parallel()
	doc := openAPIDoc(t)
	global, _ := doc["security"].([]any)
	require.NotEmpty(t, global, "the default is the JWT and API key pair")
	schemes, _ := deref(t, doc, doc["components"])["securitySchemes"].(map[string]any)
	for _, op := range operations(t, doc) {
		security, set := op.op["security"].([]any)
		if !set {
			security = global
		}
		if slices.Contains(publicRoutes, op.route) {
			assert.True(t, set && len(security) == 0, "%s needs no authentication: security: []", op.route)
			continue
		}
		assert.NotEmpty(t, security, "%s needs credentials", op.route)
		for _, req := range security {
			for name := range deref(t, doc, req) {
				assert.Contains(t, schemes, name, "%s: security scheme %q", op.route, name)
			}
		}
	}
}

// Every $ref in the description points at something in it.
func TestOpenAPIReferencesResolve(t *testing.T) {
	t.Parallel()
	doc := openAPIDoc(t)
	var broken []string
	refs := 0
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"]; ok {
				refs++
				s, isString := ref.(string)
				if !isString {
					broken = append(broken, fmt.Sprintf("%s: $ref is not a string", at))
				} else if _, err := resolve(doc, s); err != nil {
					broken = append(broken, fmt.Sprintf("%s: %v", at, err))
				}
			}
			for k, x := range v {
				walk(at+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"), x)
			}
		case []any:
			for i, x := range v {
				walk(at+"/"+strconv.Itoa(i), x)
			}
		}
	}
	walk("#", doc)
	sort.Strings(broken)
	assert.Empty(t, broken, "unresolved references")
	assert.NotZero(t, refs)
}

// GET /openapi.yaml serves the file itself, to anyone.
func TestOpenAPIServedWithoutAuthentication(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(describedServer(t).Handler())
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/openapi.yaml")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	require.Equal(t, http.StatusOK, resp.StatusCode, "no credentials are needed: %s", body)
	assert.Contains(t, resp.Header.Get("Content-Type"), "yaml")
	assert.NotEmpty(t, resp.Header.Get("X-Request-Id"))
	onDisk, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	assert.Equal(t, onDisk, body, "the served description is openapi.yaml")
}
