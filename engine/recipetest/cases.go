package recipetest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/memberflow/memberflow/internal/suggest"
	"github.com/memberflow/memberflow/recipes"
)

// Case is one recipe test: a trigger event, the canned answers of the
// services, and what the run must send and end as.
type Case struct {
	Name string
	Pos  recipes.Pos
	// Event is the trigger's data: `trigger` in the recipe's expressions.
	Event   map[string]any
	EventID string
	Subject string
	// Responses answer the run's requests, in order (see Canned).
	Responses []*Canned
	Expect    Expect
}

// Canned is a canned answer. A request takes the first unused canned
// answer with its connection, method and path (and query, when given).
type Canned struct {
	Connection string
	Method     string
	Path       string
	// Query, when set, must be a subset of the request's query.
	Query  map[string]string
	Status int
	Header map[string]string
	// Body is sent as is; JSON unless the test gave raw_body.
	Body   []byte
	IsJSON bool
	// Repeat answers any number of requests, none included.
	Repeat bool
	Pos    recipes.Pos
}

func (c *Canned) String() string {
	s := c.Connection + " " + c.Method + " " + c.Path
	if len(c.Query) > 0 {
		s += "?" + encodeQuery(c.Query)
	}
	return s
}

// Expect is what a case checks after its run.
type Expect struct {
	// Outcome is succeeded (default), skipped or dead.
	Outcome    string
	OutcomePos recipes.Pos
	// Error, when set, must occur in a dead run's error.
	Error    string
	ErrorPos recipes.Pos
	// Requests must have been sent in this order (other requests may come
	// between them).
	Requests []*ExpectedRequest
	// NoOtherWrites fails the case on a write no expected request matches.
	NoOtherWrites    bool
	NoOtherWritesPos recipes.Pos
	// Files are the JSON lines local-file connections must have written,
	// by path relative to the connection's folder (see baseDir).
	Files []*ExpectedFile
}

// ExpectedFile is a file of JSON lines a case expects, each line a subset.
type ExpectedFile struct {
	Path  string
	Lines *yaml.Node // a sequence
	File  string
	Pos   recipes.Pos
}

// ExpectedRequest is an outbound request a case expects.
type ExpectedRequest struct {
	Connection string // optional
	Method     string
	Path       string
	Query      map[string]string
	// Body is a subset of the request's JSON body; nil checks no body.
	Body *yaml.Node
	File string
	Pos  recipes.Pos
}

func (e *ExpectedRequest) String() string {
	s := e.Method + " " + e.Path
	if len(e.Query) > 0 {
		s += "?" + encodeQuery(e.Query)
	}
	if e.Connection != "" {
		s += " (" + e.Connection + ")"
	}
	return s
}

func encodeQuery(q map[string]string) string {
	v := url.Values{}
	for k, x := range q {
		v.Set(k, x)
	}
	return v.Encode()
}

// Outcomes a case may expect.
var outcomes = []string{"succeeded", "skipped", "dead", "suppressed"}

// parser reads test cases from YAML nodes and collects every problem with
// its position.
type parser struct {
	file     string
	problems []Failure
}

func (p *parser) pos(n *yaml.Node) recipes.Pos {
	return recipes.Pos{File: p.file, Line: n.Line, Column: n.Column}
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.problems = append(p.problems, Failure{Pos: p.pos(n), Message: fmt.Sprintf(format, args...)})
}

// readTestFile parses a *.test.yaml file: either a list of cases or a
// mapping with `tests:` (and optionally `recipe:`, the recipe file
// relative to the test file). It returns the recipe it names ("" for the
// default) and the cases.
func readTestFile(path string) (recipe string, cases []*Case, problems []Failure) {
	p := &parser{file: path}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, []Failure{{Pos: recipes.Pos{File: path, Line: 1, Column: 1}, Message: fmt.Sprintf("cannot read the test file: %v", err)}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", nil, []Failure{{Pos: recipes.Pos{File: path, Line: yamlErrorLine(err), Column: 1}, Message: fmt.Sprintf("the test file is not valid YAML: %v", err)}}
	}
	if len(doc.Content) == 0 {
		return "", nil, []Failure{{Pos: recipes.Pos{File: path, Line: 1, Column: 1}, Message: "the test file is empty"}}
	}
	root := doc.Content[0]
	var list *yaml.Node
	switch root.Kind {
	case yaml.SequenceNode:
		list = root
	case yaml.MappingNode:
		for _, kv := range p.pairs(root, "test file", []string{"recipe", "tests"}) {
			switch kv[0].Value {
			case "recipe":
				recipe = p.str(kv[1], "recipe")
				if recipe != "" && !filepath.IsAbs(recipe) {
					recipe = filepath.Join(filepath.Dir(path), recipe)
				}
			case "tests":
				list = kv[1]
			}
		}
		if list == nil {
			p.errorf(root, "the test file has no tests: add `tests:` with a list of cases")
		}
	default:
		p.errorf(root, "a test file is a list of cases or a mapping with `tests:`")
	}
	if list != nil {
		cases = p.cases(list)
	}
	return recipe, cases, p.problems
}

// readRecipeTests parses the `tests:` section of a recipe file; the loader
// has checked the rest of the file.
func readRecipeTests(path string) ([]*Case, []Failure) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	p := &parser{file: path}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "tests" {
			return p.cases(root.Content[i+1]), p.problems
		}
	}
	return nil, nil
}

// isRecipeDoc reports whether a YAML file is a recipe rather than a
// shared connections file: it has a trigger or steps.
func isRecipeDoc(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return true // the loader reports it
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return true
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i].Value; k == "trigger" || k == "steps" {
			return true
		}
	}
	return false
}

func yamlErrorLine(err error) int {
	// yaml.v3 says "yaml: line N: ..."
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		rest := msg[i+5:]
		if j := strings.IndexByte(rest, ':'); j > 0 {
			if n, err := strconv.Atoi(rest[:j]); err == nil {
				return n
			}
		}
	}
	return 1
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// pairs returns a mapping's key/value pairs, reporting unknown keys (with
// a suggestion) and repeated ones.
func (p *parser) pairs(n *yaml.Node, what string, known []string) [][2]*yaml.Node {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return nil
	}
	seen := map[string]bool{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if seen[k.Value] {
			p.errorf(k, "%s: %q is given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		if !contains(known, k.Value) {
			hint := ""
			if best := suggest.Closest(k.Value, known); best != "" {
				hint = fmt.Sprintf("; did you mean %q?", best)
			}
			p.errorf(k, "%s: unknown key %q%s (known: %s)", what, k.Value, hint, strings.Join(known, ", "))
			continue
		}
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s must be a string", what)
		return ""
	}
	return n.Value
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		p.errorf(n, "%s must be true or false", what)
	}
	return b
}

func (p *parser) stringMap(n *yaml.Node, what string) map[string]string {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping of names to values", what)
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		v := resolveAlias(n.Content[i+1])
		if v.Kind != yaml.ScalarNode {
			p.errorf(v, "%s.%s must be a scalar", what, n.Content[i].Value)
			continue
		}
		out[n.Content[i].Value] = v.Value
	}
	return out
}

// jsonValue decodes a node to plain JSON values (float64 numbers, string
// keys), as a decoded request body has them.
func (p *parser) jsonValue(n *yaml.Node, what string) (any, bool) {
	var v any
	if err := decodePlain(n, &v); err != nil {
		p.errorf(n, "%s: %v", what, err)
		return nil, false
	}
	b, err := json.Marshal(normalizeYAML(v))
	if err != nil {
		p.errorf(n, "%s cannot be JSON: %v", what, err)
		return nil, false
	}
	var out any
	json.Unmarshal(b, &out)
	return out, true
}

// decodePlain decodes n as the recipe loader reads YAML: a date written
// unquoted (2026-03-16) stays the text it is, as it does in a recipe and
// in any API's JSON; yaml.v3 alone makes it a time, which then compared
// equal to "2026-03-16T00:00:00Z" and unequal to "2026-03-16".
func decodePlain(n *yaml.Node, v any) error {
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!timestamp" {
			n.Tag = "!!str"
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return n.Decode(v)
}

// normalizeYAML turns the map[any]any yaml may produce into JSON-able maps.
func normalizeYAML(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeYAML(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = normalizeYAML(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = normalizeYAML(e)
		}
		return v
	}
	return v
}

// splitPath takes a query written in the path ("/users/?locationId=x").
func (p *parser) splitPath(n *yaml.Node, what string, query map[string]string) (string, map[string]string) {
	raw := p.str(n, what)
	path, rawQuery, hasQuery := strings.Cut(raw, "?")
	if !strings.HasPrefix(path, "/") {
		p.errorf(n, "%s %q must start with /", what, raw)
	}
	if hasQuery {
		vals, err := url.ParseQuery(rawQuery)
		if err != nil {
			p.errorf(n, "%s: bad query %q: %v", what, rawQuery, err)
		}
		if query == nil {
			query = map[string]string{}
		}
		for k := range vals {
			query[k] = vals.Get(k)
		}
	}
	return path, query
}

// methods are HTTP's, and SMTP for the emails a notify connection sends
// (see startSMTP).
var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "SMTP"}

func (p *parser) method(n *yaml.Node) string {
	m := strings.ToUpper(p.str(n, "method"))
	if m != "" && !contains(methods, m) {
		p.errorf(n, "method %q is not an HTTP method nor SMTP (%s)", n.Value, strings.Join(methods, ", "))
	}
	return m
}

func (p *parser) cases(list *yaml.Node) []*Case {
	list = resolveAlias(list)
	if list.Kind != yaml.SequenceNode {
		p.errorf(list, "tests must be a list of cases")
		return nil
	}
	var out []*Case
	names := map[string]recipes.Pos{}
	for i, n := range list.Content {
		c := p.testCase(resolveAlias(n), i)
		if c == nil {
			continue
		}
		if first, dup := names[c.Name]; dup {
			p.errorf(n, "test %q is also defined at line %d", c.Name, first.Line)
			continue
		}
		names[c.Name] = c.Pos
		out = append(out, c)
	}
	return out
}

var caseKeys = []string{"name", "event", "event_id", "subject", "responses", "expect"}

func (p *parser) testCase(n *yaml.Node, index int) *Case {
	c := &Case{Pos: p.pos(n), EventID: fmt.Sprintf("test-event-%d", index+1)}
	before := len(p.problems)
	var hasEvent bool
	for _, kv := range p.pairs(n, "test case", caseKeys) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "name":
			c.Name = p.str(v, "name")
		case "event":
			val, ok := p.jsonValue(v, "event")
			m, isMap := val.(map[string]any)
			if ok && !isMap {
				p.errorf(v, "event must be a mapping: the trigger's data")
			}
			c.Event, hasEvent = m, isMap
		case "event_id":
			c.EventID = p.str(v, "event_id")
		case "subject":
			c.Subject = p.str(v, "subject")
		case "responses":
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "responses must be a list")
				continue
			}
			for _, r := range v.Content {
				if cr := p.canned(resolveAlias(r)); cr != nil {
					c.Responses = append(c.Responses, cr)
				}
			}
		case "expect":
			p.expect(v, &c.Expect)
		}
	}
	if n.Kind == yaml.MappingNode {
		if c.Name == "" {
			p.errorf(n, "test case %d has no name", index+1)
		}
		if !hasEvent && len(p.problems) == before {
			p.errorf(n, "test %q has no event: give the trigger's data as `event:`", c.Name)
		}
	}
	if c.Expect.Outcome == "" {
		c.Expect.Outcome, c.Expect.OutcomePos = "succeeded", c.Pos
	}
	if len(p.problems) > before {
		return nil
	}
	return c
}

var cannedKeys = []string{"connection", "method", "path", "query", "status", "headers", "body", "raw_body", "repeat"}

func (p *parser) canned(n *yaml.Node) *Canned {
	c := &Canned{Pos: p.pos(n), Status: 200}
	var hasBody, hasRaw bool
	for _, kv := range p.pairs(n, "response", cannedKeys) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "connection":
			c.Connection = p.str(v, "connection")
		case "method":
			c.Method = p.method(v)
		case "path":
			c.Path, c.Query = p.splitPath(v, "path", c.Query)
		case "query":
			c.Query = p.mergeQuery(c.Query, v)
		case "status":
			if err := v.Decode(&c.Status); err != nil || c.Status < 100 || c.Status > 599 {
				p.errorf(v, "status must be an HTTP status code (100 to 599)")
			}
		case "headers":
			c.Header = p.stringMap(v, "headers")
		case "body":
			val, ok := p.jsonValue(v, "body")
			if ok {
				c.Body, _ = json.Marshal(val)
				c.IsJSON, hasBody = true, true
			}
		case "raw_body":
			c.Body, hasRaw = []byte(p.str(v, "raw_body")), true
		case "repeat":
			c.Repeat = p.boolean(v, "repeat")
		}
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var missing []string
	for _, f := range []struct{ name, val string }{{"connection", c.Connection}, {"method", c.Method}, {"path", c.Path}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		p.errorf(n, "response: %s missing: a canned response is matched by connection, method and path", strings.Join(missing, ", "))
		return nil
	}
	if hasBody && hasRaw {
		p.errorf(n, "response: give body or raw_body, not both")
	}
	return c
}

var expectKeys = []string{"outcome", "error", "requests", "no_other_writes", "files"}

func (p *parser) expect(n *yaml.Node, e *Expect) {
	for _, kv := range p.pairs(n, "expect", expectKeys) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "outcome":
			e.Outcome, e.OutcomePos = p.str(v, "outcome"), p.pos(v)
			if e.Outcome != "" && !contains(outcomes, e.Outcome) {
				hint := ""
				if best := suggest.Closest(e.Outcome, outcomes); best != "" {
					hint = fmt.Sprintf("; did you mean %q?", best)
				}
				p.errorf(v, "outcome %q is not one of %s%s", e.Outcome, strings.Join(outcomes, ", "), hint)
			}
		case "error":
			e.Error, e.ErrorPos = p.str(v, "error"), p.pos(v)
		case "no_other_writes":
			e.NoOtherWrites, e.NoOtherWritesPos = p.boolean(v, "no_other_writes"), p.pos(v)
		case "files":
			if v.Kind != yaml.MappingNode {
				p.errorf(v, "files must map each path to its expected lines")
				continue
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				lines := resolveAlias(v.Content[i+1])
				if lines.Kind != yaml.SequenceNode {
					p.errorf(lines, "files.%s must be a list of the expected lines", v.Content[i].Value)
					continue
				}
				e.Files = append(e.Files, &ExpectedFile{Path: v.Content[i].Value, Lines: lines, File: p.file, Pos: p.pos(v.Content[i])})
			}
		case "requests":
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "requests must be a list")
				continue
			}
			for _, r := range v.Content {
				if er := p.expectedRequest(resolveAlias(r)); er != nil {
					e.Requests = append(e.Requests, er)
				}
			}
		}
	}
}

// mergeQuery adds a `query:` mapping to what the path's own query gave.
func (p *parser) mergeQuery(q map[string]string, v *yaml.Node) map[string]string {
	if q == nil {
		q = map[string]string{}
	}
	for k, x := range p.stringMap(v, "query") {
		q[k] = x
	}
	return q
}

var requestKeys = []string{"connection", "method", "path", "query", "body"}

func (p *parser) expectedRequest(n *yaml.Node) *ExpectedRequest {
	r := &ExpectedRequest{File: p.file, Pos: p.pos(n)}
	for _, kv := range p.pairs(n, "expected request", requestKeys) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "connection":
			r.Connection = p.str(v, "connection")
		case "method":
			r.Method = p.method(v)
		case "path":
			r.Path, r.Query = p.splitPath(v, "path", r.Query)
		case "query":
			r.Query = p.mergeQuery(r.Query, v)
		case "body":
			r.Body = v
		}
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	if r.Method == "" || r.Path == "" {
		p.errorf(n, "expected request: method and path are required")
		return nil
	}
	return r
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
