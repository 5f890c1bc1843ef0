// Package openapi derives connector actions from an OpenAPI 3 document, so
// that a connector's catalogue cannot drift from the API it describes, and
// validates requests and responses against the document for contract tests.
//
// Real-world documents are not always machine-exact. One, for
// instance, documents request bodies as flat dotted names ("recipient.name")
// and wraps the wire body in a root key ("credential") that only its
// examples show. The normaliser follows the examples: dotted names are
// nested unless the example uses them literally, and a body whose example
// has a single unknown root key is sent wrapped in it.
package openapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/memberflow/memberflow/connectors"
)

// Document is a loaded OpenAPI 3 document.
type Document struct {
	Title   string
	Servers []string
	ops     []*Op

	mu       sync.Mutex
	compiled map[string]*jsonschema.Schema
}

// Op is one operation of the document, normalised.
type Op struct {
	Method      string // upper case
	Path        string // template, e.g. /v1/credentials/{id}
	OperationID string
	Summary     string
	Description string
	PathParams  []Param
	QueryParams []Param
	// Body is the JSON Schema of the request body's fields (inside
	// BodyWrap, when set); nil when the operation takes no body.
	Body map[string]any
	// BodyWrap is the root key the wire body nests the fields under.
	BodyWrap string
	// Response is the JSON Schema of the success answer, and its status.
	Response       map[string]any
	ResponseStatus int
	// Responses are the JSON Schemas of every documented answer by status.
	Responses map[string]map[string]any
	// Example is a valid set of fields (params and body) from the document.
	Example map[string]any

	pathRE *regexp.Regexp
	names  []string // path parameter names, in order
}

// Param is a path or query parameter.
type Param struct {
	Name        string
	Required    bool
	Description string
	Schema      map[string]any
	Example     any
}

// Load parses an OpenAPI 3 document (JSON).
func Load(data []byte) (*Document, error) {
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	if v, _ := raw["openapi"].(string); !strings.HasPrefix(v, "3.") {
		return nil, fmt.Errorf("openapi: version %q is not 3.x", v)
	}
	comps, _ := raw["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	nz := &normalizer{components: schemas}
	d := &Document{compiled: map[string]*jsonschema.Schema{}}
	if info, ok := raw["info"].(map[string]any); ok {
		d.Title, _ = info["title"].(string)
	}
	if servers, ok := raw["servers"].([]any); ok {
		for _, s := range servers {
			if m, ok := s.(map[string]any); ok {
				if u, ok := m["url"].(string); ok {
					d.Servers = append(d.Servers, u)
				}
			}
		}
	}
	paths, _ := raw["paths"].(map[string]any)
	for _, path := range sortedKeys(paths) {
		item, _ := paths[path].(map[string]any)
		shared, _ := item["parameters"].([]any)
		for _, method := range []string{"get", "post", "put", "patch", "delete"} {
			o, ok := item[method].(map[string]any)
			if !ok {
				continue
			}
			op, err := parseOp(nz, strings.ToUpper(method), path, o, shared)
			if err != nil {
				return nil, fmt.Errorf("openapi: %s %s: %w", strings.ToUpper(method), path, err)
			}
			d.ops = append(d.ops, op)
		}
	}
	return d, nil
}

var paramInPath = regexp.MustCompile(`\{([^}/]+)\}`)

func parseOp(nz *normalizer, method, path string, o map[string]any, shared []any) (*Op, error) {
	op := &Op{Method: method, Path: path, Responses: map[string]map[string]any{}}
	op.OperationID, _ = o["operationId"].(string)
	op.Summary, _ = o["summary"].(string)
	op.Description, _ = o["description"].(string)

	// The path template is the truth for path parameters: some documents
	// forget to declare one.
	re := "^" + regexp.QuoteMeta(path) + "$"
	for _, m := range paramInPath.FindAllStringSubmatch(path, -1) {
		op.names = append(op.names, m[1])
		re = strings.Replace(re, regexp.QuoteMeta(m[0]), "([^/]+)", 1)
	}
	op.pathRE = regexp.MustCompile(re)
	declared := map[string]Param{}
	for _, p := range append(append([]any{}, shared...), asList(o["parameters"])...) {
		pm, _ := p.(map[string]any)
		name, _ := pm["name"].(string)
		in, _ := pm["in"].(string)
		prm := Param{Name: name}
		prm.Required, _ = pm["required"].(bool)
		prm.Description, _ = pm["description"].(string)
		prm.Schema = nz.schema(pm["schema"], false)
		if ex, ok := pm["example"]; ok {
			prm.Example = ex
		}
		switch in {
		case "path":
			declared[name] = prm
		case "query":
			op.QueryParams = append(op.QueryParams, prm)
		}
	}
	for _, name := range op.names {
		p, ok := declared[name]
		if !ok {
			p = Param{Name: name, Schema: map[string]any{"type": "string"}}
		}
		p.Required = true
		if p.Description == "" {
			p.Description = "Path parameter " + name + "."
		}
		op.PathParams = append(op.PathParams, p)
	}

	if rb, ok := o["requestBody"].(map[string]any); ok {
		content, _ := rb["content"].(map[string]any)
		media, _ := content["application/json"].(map[string]any)
		if media == nil {
			for _, k := range sortedKeys(content) {
				media, _ = content[k].(map[string]any)
				break
			}
		}
		if media != nil {
			example, _ := media["example"].(map[string]any)
			rawSchema, _ := media["schema"].(map[string]any)
			// Dotted names are literal when an example writes them so, at
			// any depth ({"query":{"group.id[in]":[1,2]}}) and in named
			// examples too.
			literalDots := dottedKey(example)
			if named, ok := media["examples"].(map[string]any); ok {
				for _, k := range sortedKeys(named) {
					if ex, ok := named[k].(map[string]any); ok && dottedKey(ex["value"]) {
						literalDots = true
					}
				}
			}
			body := nz.schema(rawSchema, !literalDots)
			if body["type"] == nil && body["properties"] != nil {
				body["type"] = "object"
			}
			props, _ := body["properties"].(map[string]any)
			inner := example
			if len(example) == 1 {
				for k, v := range example {
					if vm, ok := v.(map[string]any); ok && props[k] == nil && k != "" {
						op.BodyWrap, inner = k, vm
					}
				}
			}
			// Fields the example shows but the schema forgets are
			// documented by the example.
			if props != nil {
				for k, v := range inner {
					if _, ok := props[k]; !ok {
						props[k] = typeOfValue(v)
					}
				}
			}
			op.Body = body
			op.Example = map[string]any{}
			for k, v := range inner {
				op.Example[k] = v
			}
		}
	}
	if op.Example == nil {
		op.Example = map[string]any{}
	}
	if op.Body != nil && len(op.Example) == 0 {
		if ex, ok := exampleFor(op.Body, 0).(map[string]any); ok {
			op.Example = ex
		}
	}
	for _, p := range op.PathParams {
		op.Example[p.Name] = paramExample(p)
	}
	for _, p := range op.QueryParams {
		if p.Required {
			op.Example[p.Name] = paramExample(p)
		}
	}

	responses, _ := o["responses"].(map[string]any)
	for _, code := range sortedKeys(responses) {
		r, _ := responses[code].(map[string]any)
		content, _ := r["content"].(map[string]any)
		media, _ := content["application/json"].(map[string]any)
		var s map[string]any
		if media != nil && media["schema"] != nil {
			s = nz.schema(media["schema"], false)
		} else {
			s = map[string]any{}
		}
		op.Responses[code] = s
		if strings.HasPrefix(code, "2") && op.Response == nil {
			op.Response = s
			fmt.Sscanf(code, "%d", &op.ResponseStatus)
		}
	}
	if op.Response == nil {
		op.Response = map[string]any{}
		op.ResponseStatus = http.StatusOK
	}
	return op, nil
}

func paramExample(p Param) any {
	if p.Example != nil {
		return p.Example
	}
	if _, documented := p.Schema["examples"]; documented || p.Schema["enum"] != nil || p.Schema["default"] != nil {
		return exampleFor(p.Schema, 0)
	}
	switch p.Schema["type"] {
	case "integer", "number":
		return 123
	case "boolean":
		return true
	}
	// Most path ids are numeric strings or opaque strings: this fits both.
	return "123"
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// Operations returns every operation, sorted by path then method.
func (d *Document) Operations() []*Op { return d.ops }

// Find returns the operation serving a concrete method and path, with the
// path parameters' values.
func (d *Document) Find(method, path string) (*Op, map[string]string, bool) {
	method = strings.ToUpper(method)
	var best *Op
	var bestVals []string
	for _, op := range d.ops {
		if op.Method != method {
			continue
		}
		m := op.pathRE.FindStringSubmatch(path)
		if m == nil {
			continue
		}
		// Prefer the most literal template: /v1/credentials/search over
		// /v1/credentials/{id}.
		if best == nil || len(op.names) < len(best.names) {
			best, bestVals = op, m[1:]
		}
	}
	if best == nil {
		return nil, nil, false
	}
	vals := map[string]string{}
	for i, n := range best.names {
		vals[n] = bestVals[i]
	}
	return best, vals, true
}

// InputSchema is the action input: path and query parameters and the
// body's fields, in one object. Unknown fields are refused, so that a typo
// in a recipe is caught.
func (op *Op) InputSchema() map[string]any {
	props := map[string]any{}
	var required []any
	add := func(p Param) {
		s := copyMap(p.Schema)
		if p.Description != "" && s["description"] == nil {
			s["description"] = p.Description
		}
		props[p.Name] = s
		if p.Required {
			required = append(required, p.Name)
		}
	}
	for _, p := range op.PathParams {
		add(p)
	}
	for _, p := range op.QueryParams {
		add(p)
	}
	if op.Body != nil {
		bodyProps, _ := op.Body["properties"].(map[string]any)
		for _, k := range sortedKeys(bodyProps) {
			if _, taken := props[k]; taken {
				continue // a path parameter says the same (PUT /x/{id} with body id)
			}
			props[k] = bodyProps[k]
		}
		if req, ok := op.Body["required"].([]any); ok {
			for _, r := range req {
				if !contains(required, r) {
					required = append(required, r)
				}
			}
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func contains(l []any, v any) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// wireBodySchema is the schema of the body as sent.
func (op *Op) wireBodySchema() map[string]any {
	if op.BodyWrap == "" {
		return op.Body
	}
	return map[string]any{
		"type":       "object",
		"properties": map[string]any{op.BodyWrap: op.Body},
		"required":   []any{op.BodyWrap},
	}
}

func (d *Document) compile(key string, schema map[string]any) (*jsonschema.Schema, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.compiled[key]; ok {
		return s, nil
	}
	raw, err := json.Marshal(schema)
	if err != nil {
		return nil, err
	}
	s, err := connectors.CompileSchema(strings.NewReplacer("{", "", "}", "", " ", "_").Replace(key), raw)
	if err != nil {
		return nil, err
	}
	d.compiled[key] = s
	return s, nil
}

// ValidateRequest checks a request against the document: a documented
// path, the required query parameters, and a body valid for the schema.
func (d *Document) ValidateRequest(method, path string, query map[string][]string, body []byte) error {
	op, _, ok := d.Find(method, path)
	if !ok {
		return fmt.Errorf("%s %s: not in the document", method, path)
	}
	var errs []string
	for _, p := range op.QueryParams {
		if p.Required && len(query[p.Name]) == 0 {
			errs = append(errs, fmt.Sprintf("query parameter %q is required", p.Name))
		}
	}
	if op.Body != nil && len(body) > 0 {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			errs = append(errs, "body is not JSON: "+err.Error())
		} else if s, err := d.compile("req "+op.Method+" "+op.Path, op.wireBodySchema()); err != nil {
			errs = append(errs, "request schema: "+err.Error())
		} else if err := s.Validate(v); err != nil {
			errs = append(errs, "body: "+err.Error())
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("%s %s: %s", method, path, strings.Join(errs, "; "))
	}
	return nil
}

// ValidateResponse checks an answer's body against the schema documented
// for its status.
func (d *Document) ValidateResponse(method, path string, status int, body []byte) error {
	op, _, ok := d.Find(method, path)
	if !ok {
		return fmt.Errorf("%s %s: not in the document", method, path)
	}
	code := fmt.Sprint(status)
	schema, ok := op.Responses[code]
	if !ok {
		schema, ok = op.Responses[code[:1]+"XX"]
	}
	if !ok {
		schema, ok = op.Responses["default"]
	}
	if !ok {
		return fmt.Errorf("%s %s: status %d is not documented", method, path, status)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%s %s: answer is not JSON: %w", method, path, err)
	}
	s, err := d.compile("res "+op.Method+" "+op.Path+" "+code, schema)
	if err != nil {
		return fmt.Errorf("%s %s: response schema: %w", method, path, err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("%s %s %d: %w", method, path, status, err)
	}
	return nil
}

// ExampleResponse builds an answer valid for the operation's success
// schema (required fields filled), for fakes and contract servers.
func (op *Op) ExampleResponse() any {
	v := exampleFor(op.Response, 0)
	if v == nil {
		return map[string]any{}
	}
	return v
}

// dottedKey reports whether v has an object key with a dot, at any depth.
func dottedKey(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if strings.Contains(k, ".") || dottedKey(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if dottedKey(e) {
				return true
			}
		}
	}
	return false
}
