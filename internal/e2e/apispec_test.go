package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// The capture test: every request the demo makes, every action's example
// and every trigger's first poll go through a recorder in front of the
// sandbox, and each request and answer is validated against the services'
// official OpenAPI documents (testdata/api-specs, copies of
// ../shared/api-specs) with kin-openapi, plus the checks a schema
// validator does not make: no query parameter and no documented header
// the operation does not declare, no credentials sent where the document
// asks for none.

// officialDocs are the official documents of each sandboxed service.
// Accelevents publishes none, so its traffic is checked by the
// connector's own contract tests only.
var officialDocs = map[string][]string{
	"memberships": {"ghl-users-openapi.json", "ghl-oauth-openapi.json"},
	"accredible":  {"accredible-openapi.json"},
}

// allowance is one documented exception: a request or answer the official
// document refuses on purpose (our design) or wrongly (its own error).
type allowance struct {
	service string
	// route is "METHOD /template", or "METHOD /prefix*" for a family of
	// undocumented routes.
	route string
	// contains is a fragment of the validation error it excuses; "" excuses
	// the route being absent from the document.
	contains string
	why      string
}

// allowed is the whole allow-list. Each entry says why; anything else the
// documents refuse fails the test.
var allowed = []allowance{
	// Design: the Memberships API is GoHighLevel's Users API plus
	// membership fields and payments, which GoHighLevel does not have (see
	// connectors/memberships/README.md). Their routes are ours.
	{"memberships", "GET /payments*", "", "payments are our design, not GoHighLevel's"},
	{"memberships", "POST /payments*", "", "payments are our design, not GoHighLevel's"},
	{"memberships", "PUT /payments*", "", "payments are our design, not GoHighLevel's"},
	{"memberships", "DELETE /payments*", "", "payments are our design, not GoHighLevel's"},

	// The documents' own errors.
	{"accredible", "GET /v1/all_credentials", `recipient/id": value must be a number`,
		"the listing documents recipient.id as a number, while create documents it as the string id of " +
			"your organisation's choosing (\"PK-17993\"): the sandbox answers what was sent"},
	{"accredible", "POST /v1/departments/search", `Error at "/departments": value must be an object`,
		"a search answers a list; the document's schema (and example) show one department object"},
	{"accredible", "PUT /v1/team_members/{id}", `permissions/groups": Value is not nullable`,
		"update_team_member's example is the document's own, which sends groups: null where its schema allows no null"},
}

func (a allowance) matches(service, method, template, msg string) bool {
	if a.service != service {
		return false
	}
	m, p, _ := strings.Cut(a.route, " ")
	if m != method {
		return false
	}
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		if !strings.HasPrefix(template, prefix) {
			return false
		}
	} else if p != template {
		return false
	}
	return a.contains == "" || strings.Contains(msg, a.contains)
}

// exchange is one recorded request and its answer.
type exchange struct {
	service, origin string
	req             *http.Request // path without the service prefix
	body            []byte
	status          int
	resHeader       http.Header
	resBody         []byte
}

// recorder serves the sandbox and keeps a copy of every exchange.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	// origin labels the exchanges recorded from now on.
	origin string
	got    []exchange
}

func (rc *recorder) setOrigin(o string) {
	rc.mu.Lock()
	rc.origin = o
	rc.mu.Unlock()
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	rc.next.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())

	name, rest := strings.TrimPrefix(r.URL.Path, "/"), "/"
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name, rest = name[:i], name[i:]
	}
	if strings.HasPrefix(name, "_") {
		return // the sandbox's own endpoints
	}
	clone := r.Clone(context.Background())
	clone.URL.Path, clone.URL.RawPath = rest, ""
	clone.RequestURI = ""
	rc.mu.Lock()
	rc.got = append(rc.got, exchange{service: name, origin: rc.origin, req: clone, body: body,
		status: rec.Code, resHeader: rec.Header().Clone(), resBody: rec.Body.Bytes()})
	rc.mu.Unlock()
}

// specDoc is one loaded official document with its router.
type specDoc struct {
	name   string
	doc    *openapi3.T
	router routers.Router
	// headers are the header parameters the document declares anywhere
	// (Version): sending one to an operation that does not declare it is
	// a defect.
	headers map[string]bool
	// secured is set when some operation declares security: then one that
	// declares none must be sent no credentials.
	secured bool
}

func loadSpecs(t *testing.T) map[string][]*specDoc {
	t.Helper()
	out := map[string][]*specDoc{}
	for service, files := range officialDocs {
		for _, f := range files {
			// The GHL documents refer to ../common/common-schemas.json,
			// which GoHighLevel does not publish beside them (the spec's
			// own error): testdata/common holds our stand-in.
			path := filepath.Join("testdata", "api-specs", f)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if data, err = repairBodies(data); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			loader := openapi3.NewLoader()
			loader.IsExternalRefsAllowed = true
			doc, err := loader.LoadFromDataWithPath(data, &url.URL{Path: filepath.ToSlash(path)})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			// Route on the path alone: the recorder strips the host.
			doc.Servers = openapi3.Servers{{URL: "/"}}
			router, err := gorillamux.NewRouter(doc)
			if err != nil {
				t.Fatalf("%s: router: %v", f, err)
			}
			sd := &specDoc{name: f, doc: doc, router: router, headers: map[string]bool{}}
			for _, item := range doc.Paths.Map() {
				for _, op := range item.Operations() {
					for _, p := range op.Parameters {
						if p.Value != nil && p.Value.In == openapi3.ParameterInHeader {
							sd.headers[http.CanonicalHeaderKey(p.Value.Name)] = true
						}
					}
					if op.Security != nil && len(*op.Security) > 0 {
						sd.secured = true
					}
				}
			}
			out[service] = append(out[service], sd)
		}
	}
	return out
}

// repairBodies corrects the one systematic error of Accredible's
// document, as its own examples show the wire shape: request bodies are
// documented as flat dotted names ("recipient.name") under no root key,
// while the examples (and the real API) send {"credential":{"recipient":
// {"name":...}}}. Each request body whose example nests its fields under a
// single key the schema does not know is wrapped in that key, and dotted
// names are nested, unless the example itself uses them literally. The
// rest of the document is left as published; connectors/openapi applies
// the same reading.
func repairBodies(data []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	comps, _ := doc["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	resolve := func(s map[string]any) map[string]any {
		if ref, ok := s["$ref"].(string); ok {
			if name, ok := strings.CutPrefix(ref, "#/components/schemas/"); ok {
				if target, ok := schemas[name].(map[string]any); ok {
					return deepCopy(target)
				}
			}
		}
		return s
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, item := range paths {
		for _, o := range item.(map[string]any) {
			op, _ := o.(map[string]any)
			rb, _ := op["requestBody"].(map[string]any)
			content, _ := rb["content"].(map[string]any)
			media, _ := content["application/json"].(map[string]any)
			if media == nil {
				continue
			}
			schema, _ := media["schema"].(map[string]any)
			if schema == nil {
				continue
			}
			schema = resolve(schema)
			example, _ := media["example"].(map[string]any)
			literal := false
			for k := range example {
				literal = literal || strings.Contains(k, ".")
			}
			if !literal {
				nestDotted(schema)
			}
			props, _ := schema["properties"].(map[string]any)
			if len(example) == 1 {
				for k, v := range example {
					if _, known := props[k]; !known {
						if _, isObject := v.(map[string]any); isObject {
							schema = map[string]any{"type": "object", "required": []any{k},
								"properties": map[string]any{k: schema}}
						}
					}
				}
			}
			media["schema"] = schema
		}
	}
	return json.Marshal(doc)
}

// nestDotted turns properties "a.b" into a: {properties: {b}}, carrying
// "required" along.
func nestDotted(s map[string]any) {
	props, _ := s["properties"].(map[string]any)
	required := map[string]bool{}
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			required[fmt.Sprint(r)] = true
		}
	}
	var keep []any
	for name := range required {
		if !strings.Contains(name, ".") {
			keep = append(keep, name)
		}
	}
	for name, v := range props {
		head, tail, ok := strings.Cut(name, ".")
		if !ok {
			continue
		}
		delete(props, name)
		parent, _ := props[head].(map[string]any)
		if parent == nil || parent["properties"] == nil {
			parent = map[string]any{"type": "object", "properties": map[string]any{}}
			props[head] = parent
		}
		parent["properties"].(map[string]any)[tail] = v
		if required[name] {
			preq, _ := parent["required"].([]any)
			parent["required"] = append(preq, tail)
			if !slices.Contains(keep, any(head)) {
				keep = append(keep, head)
			}
		}
	}
	for _, v := range props {
		if m, ok := v.(map[string]any); ok && m["properties"] != nil {
			nestDotted(m)
		}
	}
	if len(keep) > 0 {
		sort.Slice(keep, func(i, j int) bool { return fmt.Sprint(keep[i]) < fmt.Sprint(keep[j]) })
		s["required"] = keep
	} else {
		delete(s, "required")
	}
}

func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// TestSpecsAreTheOfficialOnes keeps testdata/api-specs equal to the
// shared official documents when those are beside the repository.
func TestSpecsAreTheOfficialOnes(t *testing.T) {
	// shared/ is beside the repository (CI's clone) or beside the folder
	// of worktrees.
	candidates := []string{os.Getenv("MEMBERFLOW_SHARED_SPECS"),
		filepath.Join("..", "..", "..", "shared", "api-specs"), filepath.Join("..", "..", "..", "..", "shared", "api-specs")}
	shared := ""
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			shared = c
			break
		}
	}
	if shared == "" {
		t.Skip("no official documents beside the repository to compare with")
	}
	for _, files := range officialDocs {
		for _, f := range files {
			a, err := os.ReadFile(filepath.Join("testdata", "api-specs", f))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(shared, f))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("testdata/api-specs/%s differs from %s: copy it again", f, filepath.Join(shared, f))
			}
		}
	}
}

// problem is one refusal by a document.
type problem struct {
	service, origin, method, template, msg string
	response                               bool
}

func (p problem) String() string {
	what := "request"
	if p.response {
		what = "answer"
	}
	return fmt.Sprintf("%s %s %s %s (from %s): %s", p.service, what, p.method, p.template, p.origin, p.msg)
}

// checkExchange validates one exchange against the service's documents.
func checkExchange(ctx context.Context, docs []*specDoc, ex exchange) []problem {
	var route *routers.Route
	var params map[string]string
	var doc *specDoc
	for _, d := range docs {
		if r, p, err := d.router.FindRoute(ex.req); err == nil {
			route, params, doc = r, p, d
			break
		}
	}
	mk := func(template, msg string, response bool) problem {
		return problem{service: ex.service, origin: ex.origin, method: ex.req.Method, template: template, msg: msg, response: response}
	}
	if route == nil {
		return []problem{mk(ex.req.URL.Path, "", false)}
	}
	var out []problem
	op := route.Operation
	declared := map[string]*openapi3.Parameter{}
	for _, p := range append(append(openapi3.Parameters{}, route.PathItem.Parameters...), op.Parameters...) {
		if p.Value != nil {
			declared[p.Value.In+":"+strings.ToLower(p.Value.Name)] = p.Value
		}
	}
	for name := range ex.req.URL.Query() {
		if declared["query:"+strings.ToLower(name)] == nil {
			out = append(out, mk(route.Path, fmt.Sprintf("query parameter %q is not documented", name), false))
		}
	}
	for h := range doc.headers {
		if ex.req.Header.Get(h) != "" && declared["header:"+strings.ToLower(h)] == nil {
			out = append(out, mk(route.Path, fmt.Sprintf("header %q is sent but this operation does not declare it", h), false))
		}
	}
	if doc.secured && (op.Security == nil || len(*op.Security) == 0) && ex.req.Header.Get("Authorization") != "" {
		out = append(out, mk(route.Path, "an Authorization header is sent to an operation that documents no security", false))
	}

	req := ex.req.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(ex.body))
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: checkAuth}}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		for _, msg := range flatten(err) {
			out = append(out, mk(route.Path, msg, false))
		}
	}
	// A 429 carries no body (Accredible documents a bare 429); every
	// other answer must match the schema of its status.
	if ex.status == http.StatusTooManyRequests {
		return out
	}
	res := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: ex.status, Header: ex.resHeader,
		Options: &openapi3filter.Options{MultiError: true, IncludeResponseStatus: ex.status < 400}}
	res.SetBodyBytes(ex.resBody)
	if err := openapi3filter.ValidateResponse(ctx, res); err != nil {
		for _, msg := range flatten(err) {
			out = append(out, mk(route.Path, fmt.Sprintf("HTTP %d: %s", ex.status, msg), true))
		}
	}
	return out
}

// checkAuth checks that a secured operation gets credentials of the
// documented kind.
func checkAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		if !strings.HasPrefix(h, "Bearer ") {
			return fmt.Errorf("want Authorization: Bearer ..., got %q", redact(h))
		}
	case s.Type == "apiKey" && s.In == "header":
		if in.RequestValidationInput.Request.Header.Get(s.Name) == "" {
			return fmt.Errorf("header %s is missing", s.Name)
		}
	}
	return nil
}

func redact(h string) string {
	if scheme, _, ok := strings.Cut(h, " "); ok {
		return scheme + " …"
	}
	if h == "" {
		return ""
	}
	return "…"
}

// flatten splits a kin-openapi multi-error into one line per problem.
func flatten(err error) []string {
	var me openapi3.MultiError
	if ok := asMulti(err, &me); ok {
		var out []string
		for _, e := range me {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []string{strings.Join(strings.Fields(err.Error()), " ")}
}

func asMulti(err error, me *openapi3.MultiError) bool {
	switch e := err.(type) {
	case openapi3.MultiError:
		*me = e
		return true
	case *openapi3filter.RequestError:
		if m, ok := e.Err.(openapi3.MultiError); ok {
			*me = m
			return true
		}
	case *openapi3filter.ResponseError:
		if m, ok := e.Err.(openapi3.MultiError); ok {
			*me = m
			return true
		}
	}
	return false
}

var arrayIndex = regexp.MustCompile(`/[0-9]+/`)

// captureAll runs the demo, every action's example and every trigger's
// first poll through the recorder and returns what it saw.
func captureAll(t *testing.T) []exchange {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{Members: 60, Seed: 11, RateLimit: &sandboxkit.Limit{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	rc := &recorder{next: sb.Handler()}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	urlFor := func(service string) string { return srv.URL + "/" + service }

	rc.setOrigin("demo")
	eng := newEngineAt(t, sb.Services(), urlFor, t.TempDir())
	runUntilQuiet(t, eng)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, name := range sb.Services() {
		spec, ok := connectors.Default.Lookup(name)
		if !ok {
			t.Fatalf("the sandbox serves %q, which no connector is", name)
		}
		cfg := connectors.ConnectionConfig{Name: "capture", BaseURL: urlFor(name), Auth: sandbox.DemoAuth(name),
			Options: sandbox.DemoOptions(name), RateLimit: &connectors.RateLimit{}}
		conn, err := spec.Open(cfg)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		for _, a := range spec.Actions {
			rc.setOrigin(name + "." + a.Name + " example")
			// The example's answer does not matter here (its ids may not
			// exist in the sandbox): its requests do.
			_, _ = a.Run(ctx, conn, cloneExample(a.Example))
		}
		for _, tr := range spec.Triggers {
			if tr.Poll == nil {
				continue
			}
			rc.setOrigin(name + "." + tr.Name + " poll")
			_, _ = tr.Poll(ctx, conn, connectors.PollRequest{Params: cloneExample(tr.Example), Start: connectors.StartBeginning,
				Prior: noPrior{}, Now: time.Now()})
		}
	}
	// Every request reached a route of its service: none fell through to
	// the catch-all that answers an endpoint the sandbox does not serve.
	for name, st := range sb.Stats().Services {
		for route, n := range st.Requests {
			if _, path, _ := strings.Cut(route, " "); path == "/" || route == "/" {
				t.Errorf("%s: %d requests answered by the catch-all route %q: an operation the sandbox does not serve", name, n, route)
			}
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]exchange(nil), rc.got...)
}

type noPrior struct{}

func (noPrior) Lookup(context.Context, []string) (map[string]string, error) { return nil, nil }

func cloneExample(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestRequestsAndAnswersMatchTheOfficialDocuments(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: runs the demo")
	}
	specs := loadSpecs(t)
	exchanges := captureAll(t)
	ctx := context.Background()
	checked := map[string]int{}
	used := make([]bool, len(allowed))
	var failures []string
	seen := map[string]bool{}
	for _, ex := range exchanges {
		docs := specs[ex.service]
		if docs == nil {
			continue
		}
		checked[ex.service]++
		for _, p := range checkExchange(ctx, docs, ex) {
			excused := false
			for i, a := range allowed {
				if a.matches(p.service, p.method, p.template, p.msg) {
					used[i], excused = true, true
					break
				}
			}
			if excused {
				continue
			}
			msg := p.String()
			if p.msg == "" {
				msg = fmt.Sprintf("%s %s %s (from %s): not in the official document", p.service, p.method, p.template, p.origin)
			}
			// One line per distinct problem: the demo repeats itself, and
			// a listing repeats one problem per item.
			key := p.service + p.method + p.template + arrayIndex.ReplaceAllString(p.msg, "/*/")
			if !seen[key] {
				seen[key] = true
				failures = append(failures, msg)
			}
		}
	}
	for svc := range officialDocs {
		if checked[svc] == 0 {
			t.Errorf("no %s traffic was captured", svc)
		}
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
	for i, a := range allowed {
		if !used[i] {
			t.Errorf("allow-list entry %s %s %q excused nothing: remove it", a.service, a.route, a.contains)
		}
	}
	t.Logf("validated %v exchanges against the official documents", checked)
}
