package openapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

// Options tell Actions how to name and run the document's operations.
type Options struct {
	// Names maps "METHOD /path" to an action name; operations not listed
	// are named from their operationId or summary.
	Names map[string]string
	// Skip leaves out operations (e.g. the OAuth token endpoint, which the
	// runtime calls itself).
	Skip func(op *Op) bool
	// ReadOnly marks POST operations that only read; paths ending in
	// /search are read-only already.
	ReadOnly map[string]bool
	// Client returns the API client of an opened connection.
	Client func(conn connectors.Conn) (*apiclient.Client, error)
}

// Actions derives one action per operation: its input is the operation's
// parameters and body fields, its output the success answer's schema, its
// example the document's.
func (d *Document) Actions(opts Options) ([]*connectors.ActionSpec, error) {
	if opts.Client == nil {
		return nil, fmt.Errorf("openapi: Options.Client is nil")
	}
	var out []*connectors.ActionSpec
	seen := map[string]string{}
	for _, op := range d.ops {
		if opts.Skip != nil && opts.Skip(op) {
			continue
		}
		key := op.Method + " " + op.Path
		name := opts.Names[key]
		if name == "" {
			name = ActionName(op)
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("openapi: %s and %s are both named %q: add one to Options.Names", prev, key, name)
		}
		seen[name] = key
		in, err := json.Marshal(op.InputSchema())
		if err != nil {
			return nil, err
		}
		res, err := json.Marshal(op.Response)
		if err != nil {
			return nil, err
		}
		example, err := repairExample(op.Example, op.InputSchema(), name)
		if err != nil {
			return nil, err
		}
		summary := strings.TrimSpace(op.Summary)
		if summary == "" {
			summary = op.Method + " " + op.Path
		}
		readOnly := op.Method == http.MethodGet || opts.ReadOnly[key] || (op.Method == http.MethodPost && strings.HasSuffix(op.Path, "/search"))
		out = append(out, &connectors.ActionSpec{
			Operation: connectors.Operation{
				Name:        name,
				Summary:     summary,
				Description: op.Description,
				Input:       in,
				Output:      res,
				Example:     example,
				HTTP:        &connectors.HTTPBinding{Method: op.Method, Path: op.Path},
			},
			ReadOnly:    readOnly,
			Idempotent:  readOnly || op.Method == http.MethodPut || op.Method == http.MethodDelete,
			Idempotency: idempotencyOf(op.Method, readOnly),
			Run:         runner(op, readOnly, opts.Client),
		})
	}
	return out, nil
}

// runner builds the request from the input and decodes the answer.
func runner(op *Op, readOnly bool, client func(connectors.Conn) (*apiclient.Client, error)) func(context.Context, connectors.Conn, map[string]any) (*connectors.Result, error) {
	return func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, error) {
		c, err := client(conn)
		if err != nil {
			return nil, err
		}
		req, err := op.Request(in)
		if err != nil {
			return nil, err
		}
		req.ReadOnly = readOnly
		var out any
		if _, err := c.JSON(ctx, req, &out); err != nil {
			return nil, err
		}
		return &connectors.Result{Output: out}, nil
	}
}

// Request builds the API request for an input: path parameters filled in,
// query parameters, and the remaining fields as the (wrapped) body.
func (op *Op) Request(in map[string]any) (apiclient.Request, error) {
	path := op.Path
	used := map[string]bool{}
	for _, p := range op.PathParams {
		v, ok := in[p.Name]
		if !ok || v == nil || fmt.Sprint(v) == "" {
			return apiclient.Request{}, fmt.Errorf("%s %s: path parameter %q is required", op.Method, op.Path, p.Name)
		}
		path = strings.Replace(path, "{"+p.Name+"}", url.PathEscape(scalar(v)), 1)
		used[p.Name] = true
	}
	query := url.Values{}
	for _, p := range op.QueryParams {
		if v, ok := in[p.Name]; ok && v != nil {
			addQuery(query, p.Name, v)
			used[p.Name] = true
		}
	}
	req := apiclient.Request{Method: op.Method, Path: path, Query: query}
	if op.Body != nil {
		body := map[string]any{}
		required := map[string]bool{}
		if req, ok := op.Body["required"].([]any); ok {
			for _, r := range req {
				if rs, ok := r.(string); ok {
					required[rs] = true
				}
			}
		}
		bodyProps, _ := op.Body["properties"].(map[string]any)
		for k, v := range in {
			// A path parameter the body also requires (PUT /x/{id} with a
			// body id) goes in both places.
			if !used[k] {
				body[k] = v
			} else if required[k] {
				body[k] = coerce(bodyProps[k], v)
			}
		}
		// A GET documented with a body (a listing of groups) sends
		// it as documented: a JSON body, not query parameters.
		switch {
		case op.BodyWrap != "":
			req.Body = map[string]any{op.BodyWrap: body}
		default:
			req.Body = body
		}
	}
	return req, nil
}

func addQuery(q url.Values, name string, v any) {
	if list, ok := v.([]any); ok {
		for _, it := range list {
			q.Add(name, scalar(it))
		}
		return
	}
	q.Set(name, scalar(v))
}

func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		if v == float64(int64(v)) {
			return fmt.Sprintf("%d", int64(v))
		}
	}
	return fmt.Sprint(v)
}

var (
	nonWord  = regexp.MustCompile(`[^a-z0-9]+`)
	articles = regexp.MustCompile(`(^|_)(a|an|the)(_|$)`)
)

// ActionName names an operation: a readable operationId ("search-users" →
// search_users), else the summary ("Create a New Credential" →
// create_new_credential, "Search for Credentials (v2)" →
// search_for_credentials_v2).
func ActionName(op *Op) string {
	src := op.OperationID
	if src == "" || strings.Contains(src, " ") {
		src = op.Summary
	}
	if src == "" {
		src = strings.ToLower(op.Method) + " " + op.Path
	}
	n := nonWord.ReplaceAllString(strings.ToLower(src), "_")
	for articles.MatchString(n) {
		n = articles.ReplaceAllString(n, "$1")
	}
	n = strings.Trim(strings.ReplaceAll(n, "__", "_"), "_")
	if n == "" || n[0] < 'a' || n[0] > 'z' {
		n = "op_" + n
	}
	return n
}

// repairExample makes the document's example valid for the action's input
// schema. Documents contradict themselves (examples send
// "description": null where the schema says string, and omit fields an
// update requires); a field that does not validate is replaced by one
// built from its schema, and missing required fields are added.
func repairExample(example, schema map[string]any, name string) (map[string]any, error) {
	props, _ := schema["properties"].(map[string]any)
	out := map[string]any{}
	for k, v := range example {
		ps, ok := props[k].(map[string]any)
		if !ok {
			continue
		}
		if validFor(name+"/"+k, ps, v) {
			out[k] = v
		} else if fixed := exampleFor(ps, 0); fixed != nil {
			out[k] = fixed
		}
	}
	if req, ok := schema["required"].([]any); ok {
		for _, r := range req {
			k, _ := r.(string)
			if _, ok := out[k]; ok {
				continue
			}
			if ps, ok := props[k].(map[string]any); ok {
				out[k] = exampleFor(ps, 0)
			}
		}
	}
	return out, nil
}

func validFor(name string, schema map[string]any, v any) bool {
	// Round-trip so that Go ints become JSON numbers as the validator wants.
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	var doc any
	if json.Unmarshal(b, &doc) != nil {
		return false
	}
	if ok, decided := quickValid(schema, doc); decided {
		return ok
	}
	raw, err := json.Marshal(schema)
	if err != nil {
		return false
	}
	s, err := connectors.CompileSchema(name, raw)
	if err != nil {
		return false
	}
	return s.Validate(doc) == nil
}

// coerce converts a path parameter's string to the number a body field of
// the same name wants.
func coerce(schema any, v any) any {
	s, _ := schema.(map[string]any)
	str, ok := v.(string)
	if !ok || s == nil {
		return v
	}
	switch s["type"] {
	case "number", "integer":
		var f float64
		if _, err := fmt.Sscanf(str, "%g", &f); err == nil {
			return f
		}
	}
	return v
}

// idempotencyOf says why a generated write may be re-sent: a PUT sets the
// record it names, a DELETE removes it. Other writes need a Settle.
func idempotencyOf(method string, readOnly bool) *connectors.Idempotency {
	switch {
	case readOnly:
		return nil
	case method == http.MethodPut:
		return &connectors.Idempotency{Kind: connectors.ResendSets}
	case method == http.MethodDelete:
		return &connectors.Idempotency{Kind: connectors.ResendDeletes}
	}
	return nil
}

// annotations are keywords that never make a value invalid. Not format:
// the compiler asserts the formats it knows.
var annotations = map[string]bool{
	"description": true, "title": true, "example": true, "examples": true, "default": true,
	"deprecated": true, "readOnly": true, "writeOnly": true, "nullable": true,
	"$comment": true,
}

// quickValid decides whether v is valid for a schema made only of a type,
// an enum of strings and annotations, the schema of most example fields,
// without compiling it: Spec builds every action's example at start, and
// compiling a JSON Schema (its meta-validation included) costs about a
// millisecond each. decided is false for anything else.
func quickValid(schema map[string]any, v any) (valid, decided bool) {
	var types []any
	var enum []any
	for k, kv := range schema {
		switch {
		case annotations[k]:
		case k == "type":
			switch t := kv.(type) {
			case string:
				types = []any{t}
			case []any:
				types = t
			default:
				return false, false
			}
		case k == "enum":
			list, ok := kv.([]any)
			if !ok {
				return false, false
			}
			enum = list
		default:
			return false, false
		}
	}
	if enum != nil {
		s, isString := v.(string)
		if !isString {
			return false, false
		}
		found := false
		for _, e := range enum {
			found = found || e == s
		}
		if !found {
			return false, true
		}
	}
	if types == nil {
		return true, true
	}
	for _, t := range types {
		name, _ := t.(string)
		switch name {
		case "string":
			_, ok := v.(string)
			valid = valid || ok
		case "boolean":
			_, ok := v.(bool)
			valid = valid || ok
		case "null":
			valid = valid || v == nil
		case "number":
			_, ok := v.(float64)
			valid = valid || ok
		case "integer":
			f, ok := v.(float64)
			valid = valid || ok && f == math.Trunc(f) && !math.IsInf(f, 0)
		case "object":
			_, ok := v.(map[string]any)
			valid = valid || ok
		case "array":
			_, ok := v.([]any)
			valid = valid || ok
		default:
			return false, false
		}
	}
	return valid, true
}
