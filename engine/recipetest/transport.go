package recipetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/memberflow/memberflow/connectors"
)

// Exchange is one request a run sent, and what answered it.
type Exchange struct {
	Connection string `json:"connection"`
	Method     string `json:"method"`
	// Path is relative to the connection's base URL.
	Path  string     `json:"path"`
	Query url.Values `json:"query,omitempty"`
	// Body is the decoded JSON body, or the raw text when it is not JSON.
	Body any `json:"body,omitempty"`
	// Write is false for GET and HEAD and for the routes of the
	// connector's read-only actions (a search sent as POST).
	Write  bool    `json:"write"`
	Canned *Canned `json:"-"`
	// expected is set when an expected request matched this exchange.
	expected bool
}

func (x *Exchange) String() string {
	s := x.Method + " " + x.Path
	if len(x.Query) > 0 {
		s += "?" + x.Query.Encode()
	}
	return s + " (" + x.Connection + ")"
}

// cannedService answers every connection of one case from its canned
// responses, and records what was sent. Nothing leaves the process.
type cannedService struct {
	mu        sync.Mutex
	responses []*Canned
	used      map[*Canned]int
	log       []*Exchange
}

func newCannedService(responses []*Canned) *cannedService {
	return &cannedService{responses: responses, used: map[*Canned]int{}}
}

// route is a method and an OpenAPI path template.
type route struct {
	method   string
	segments []string
}

func (r route) matches(method, path string) bool {
	return r.method == method && segmentsMatch(r.segments, splitSegments(path))
}

// readRoutes are the HTTP bindings of a connector's read-only actions:
// requests to them change nothing whatever their method.
func readRoutes(spec *connectors.Spec) []route {
	var out []route
	for _, a := range spec.Actions {
		if a.ReadOnly && a.HTTP != nil {
			out = append(out, route{method: strings.ToUpper(a.HTTP.Method), segments: splitSegments(a.HTTP.Path)})
		}
	}
	return out
}

func splitSegments(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

// segmentsMatch compares paths segment by segment: "*" and "{name}" in the
// pattern match any one segment.
func segmentsMatch(pattern, path []string) bool {
	if len(pattern) != len(path) {
		return false
	}
	for i, s := range pattern {
		if s == "*" || (strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}")) {
			continue
		}
		if s != path[i] {
			return false
		}
	}
	return true
}

func pathMatches(pattern, path string) bool {
	if strings.TrimSuffix(pattern, "/") == strings.TrimSuffix(path, "/") {
		return true
	}
	return segmentsMatch(splitSegments(pattern), splitSegments(path))
}

func queryMatches(want map[string]string, got url.Values) bool {
	for k, v := range want {
		if vals, ok := got[k]; !ok || !contains(vals, v) {
			return false
		}
	}
	return true
}

// transport is the RoundTripper of one connection.
type transport struct {
	svc        *cannedService
	connection string
	basePath   string
	reads      []route
}

func (s *cannedService) transport(connection, baseURL string, spec *connectors.Spec) http.RoundTripper {
	basePath := ""
	if u, err := url.Parse(baseURL); err == nil {
		basePath = strings.TrimSuffix(u.Path, "/")
	}
	return &transport{svc: s, connection: connection, basePath: basePath, reads: readRoutes(spec)}
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var raw []byte
	if req.Body != nil {
		var err error
		raw, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("recipe test: reading the request body: %w", err)
		}
	}
	path := strings.TrimPrefix(req.URL.Path, t.basePath)
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	x := &Exchange{Connection: t.connection, Method: req.Method, Path: path, Query: req.URL.Query(), Write: true}
	if len(x.Query) == 0 {
		x.Query = nil
	}
	if len(raw) > 0 {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			x.Body = v
		} else {
			x.Body = string(raw)
		}
	}
	if req.Method == http.MethodGet || req.Method == http.MethodHead {
		x.Write = false
	}
	for _, r := range t.reads {
		if r.matches(req.Method, path) {
			x.Write = false
		}
	}

	s := t.svc
	s.mu.Lock()
	for _, c := range s.responses {
		if (s.used[c] > 0 && !c.Repeat) || c.Connection != t.connection || c.Method != req.Method ||
			!pathMatches(c.Path, path) || !queryMatches(c.Query, req.URL.Query()) {
			continue
		}
		s.used[c]++
		x.Canned = c
		break
	}
	s.log = append(s.log, x)
	s.mu.Unlock()

	resp := &http.Response{
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{},
		Request: req,
	}
	var body []byte
	if c := x.Canned; c != nil {
		resp.StatusCode, body = c.Status, c.Body
		if c.IsJSON {
			resp.Header.Set("Content-Type", "application/json")
		} else if len(body) > 0 {
			resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
		}
		for k, v := range c.Header {
			resp.Header.Set(k, v)
		}
	} else {
		// A client error, so that neither the client nor the engine
		// retries it; the case fails on the unmatched request anyway.
		resp.StatusCode = http.StatusBadRequest
		resp.Header.Set("Content-Type", "application/json")
		body, _ = json.Marshal(map[string]any{"statusCode": 400, "message": "memberflow test: no canned response for " + x.String()})
	}
	resp.Status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	resp.ContentLength = int64(len(body))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// exchanges returns what was sent, in order.
func (s *cannedService) exchanges() []*Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Exchange(nil), s.log...)
}

// unused returns the canned responses no request took.
func (s *cannedService) unused() []*Canned {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Canned
	for _, c := range s.responses {
		if s.used[c] == 0 && !c.Repeat {
			out = append(out, c)
		}
	}
	return out
}

func (s *cannedService) describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.responses) == 0 {
		return "the case has no canned responses"
	}
	var b strings.Builder
	b.WriteString("canned responses:")
	for _, c := range s.responses {
		state := "unused"
		if n := s.used[c]; n > 0 {
			state = fmt.Sprintf("used %d×", n)
		}
		if c.Repeat {
			state += ", repeat"
		}
		fmt.Fprintf(&b, "\n  %s:%d: %s → %d (%s)", c.Pos.File, c.Pos.Line, c, c.Status, state)
	}
	return b.String()
}
