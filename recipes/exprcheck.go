package recipes

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/memberflow/memberflow/internal/suggest"
)

// scope is what an expression may refer to at one place of a recipe.
type scope struct {
	// where names the place for messages ("trigger.with").
	where   string
	trigger *ftype // nil: trigger data is not available here
	vars    *ftype // nil: vars are not available
	steps   []stepOut
	// later are the steps after this place, by id, for a clearer message
	// than "unknown field"; self is the current step's id.
	later map[string]int
	self  string
	// secrets is true where secret.NAME may be used: a connection's auth
	// and webhook settings. Elsewhere a secret would end up in a request
	// body, the journal and the audit trail.
	secrets bool
	env     types.Map
	// cfg and boolCfg are the typed check configurations, made on first
	// use and reused for every expression of the scope: making one costs
	// more than checking a short expression.
	cfg, boolCfg *conf.Config
}

// config returns the typed check configuration of the scope.
func (sc *scope) config(asBool bool) *conf.Config {
	p := &sc.cfg
	if asBool {
		p = &sc.boolCfg
	}
	if *p == nil {
		// A copy of a checked base shares its read-only function tables;
		// the nature cache is written during checks, so each has its own.
		c := new(conf.Config)
		*c = *baseConfig()
		c.NtCache = nature.Cache{}
		expr.Env(sc.env)(c)
		if asBool {
			expr.AsBool()(c)
		}
		*p = c
	}
	return *p
}

var baseConfig = sync.OnceValue(func() *conf.Config {
	c := conf.CreateNew()
	c.Check()
	return c
})

type stepOut struct {
	id  string
	out *ftype
}

var secretType = mapType(nil, scalarType(types.String))

// build computes the typed environment.
func (sc *scope) build() *scope {
	env := types.Map{}
	if sc.secrets {
		env["secret"] = secretType.expr
	}
	if sc.trigger != nil {
		env["trigger"] = sc.trigger.expr
	}
	if sc.vars != nil {
		env["vars"] = sc.vars.expr
	}
	if sc.stepsType() != nil {
		env["steps"] = sc.stepsType().expr
	}
	sc.env = env
	return sc
}

func (sc *scope) stepsType() *ftype {
	if sc.later == nil && sc.steps == nil {
		return nil
	}
	fields := make(map[string]*ftype, len(sc.steps))
	for _, s := range sc.steps {
		fields[s.id] = s.out
	}
	return mapType(fields, nil)
}

func (sc *scope) root(name string) *ftype {
	switch name {
	case "trigger":
		return sc.trigger
	case "vars":
		return sc.vars
	case "secret":
		return secretType
	case "steps":
		return sc.stepsType()
	}
	return nil
}

func (sc *scope) rootNames() []string {
	var names []string
	for _, n := range []string{"trigger", "steps", "vars", "secret"} {
		if _, ok := sc.env[n]; ok {
			names = append(names, n)
		}
	}
	return names
}

// compileAt type-checks and compiles src, which starts at byte off of the
// scalar n's value. Problems are reported at their exact position; the
// result is nil when there were any.
func (s *source) compileAt(n *yaml.Node, src string, off int, sc *scope, asBool bool) *Expr {
	// expr's checker and compiler fill caches inside the shared base
	// configurations' function types as they go: two loads at once (a
	// runner and its console, two runners in one test binary) would race.
	exprMu.Lock()
	defer exprMu.Unlock()
	tree, err := checker.ParseCheck(src, sc.config(asBool))
	if err != nil {
		at, msg := explainExprError(src, err, sc, asBool)
		s.errorAt(s.scalarPos(n, off+at), "%s: %s", sc.where, msg)
		return nil
	}
	hasSecret := strings.Contains(src, "secret")
	if hasSecret {
		if bad, at := dynamicSecret(src); bad {
			s.errorAt(s.scalarPos(n, off+at), "%s: write secrets as secret.NAME: the names must be known before the run", sc.where)
			return nil
		}
	}
	e, err := s.rt.compile(src, s.scalarPos(n, off))
	if err != nil {
		// The typed compile accepted it; the untyped one cannot refuse.
		s.errorAt(s.scalarPos(n, off), "%s: %v", sc.where, err)
		return nil
	}
	if hasSecret {
		e.secrets = secretNames(src)
	}
	e.kind = jsonKind(tree.Node.Type())
	return e
}

// explainExprError turns an expr error into a byte offset within src and
// a message with a "did you mean" where one helps.
func explainExprError(src string, err error, sc *scope, asBool bool) (int, string) {
	at, msg := 0, err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		at, msg = runeToByte(src, fe.From), fe.Message
	}
	switch {
	case strings.HasPrefix(msg, "unknown name "):
		name := strings.TrimPrefix(msg, "unknown name ")
		if name == "secret" {
			return at, "secrets are for a connection's auth and webhook settings only: here a secret would be sent in a request and kept in the journal"
		}
		if alt := closest(name, sc.rootNames()); alt != "" {
			return at, fmt.Sprintf("unknown name %s; did you mean %s?", name, alt)
		}
		if sc.root(name) == nil && isRootName(name) {
			return at, fmt.Sprintf("%s is not available here", name)
		}
		return at, fmt.Sprintf("unknown name %s (available: %s)", name, strings.Join(sc.rootNames(), ", "))
	case strings.HasPrefix(msg, "unknown field "):
		field := strings.TrimPrefix(msg, "unknown field ")
		path, t := memberBase(src, fe.From, sc)
		if path == "steps" {
			if field == sc.self {
				return at, fmt.Sprintf("step %q cannot use its own output", field)
			}
			if line, ok := sc.later[field]; ok {
				return at, fmt.Sprintf("step %q runs later (line %d): only earlier steps' outputs can be used here", field, line)
			}
			hint := ""
			if t != nil {
				if alt := closest(field, t.names()); alt != "" {
					hint = fmt.Sprintf("; did you mean %q?", alt)
				}
			}
			return at, fmt.Sprintf("unknown step %q%s", field, hint)
		}
		if path == "" {
			return at, fmt.Sprintf("unknown field %s", field)
		}
		if t != nil {
			if alt := closest(field, t.names()); alt != "" {
				return at, fmt.Sprintf("%s has no field %s; did you mean %s?", path, field, alt)
			}
			if names := t.names(); len(names) <= 12 {
				return at, fmt.Sprintf("%s has no field %s (it has: %s)", path, field, strings.Join(names, ", "))
			}
		}
		return at, fmt.Sprintf("%s has no field %s", path, field)
	case asBool && strings.HasPrefix(msg, "expected bool, but got "):
		return at, "the condition must be a boolean, but it is " + cleanTypes(strings.TrimPrefix(msg, "expected bool, but got "))
	}
	return at, cleanTypes(msg)
}

// closest is suggest.Closest, also forgiving a different case or two
// swapped letters (emial → email), the commonest typos in field names.
func closest(s string, names []string) string {
	if alt := suggest.Closest(s, names); alt != "" {
		return alt
	}
	for _, n := range names {
		if strings.EqualFold(n, s) || swapped(n, s) {
			return n
		}
	}
	return ""
}

// swapped reports whether a and b differ by one swap of adjacent bytes.
func swapped(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	return i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
}

func isRootName(name string) bool {
	switch name {
	case "trigger", "steps", "vars", "secret":
		return true
	}
	return false
}

// memberBase finds the member access whose property starts at rune from
// and returns the dotted path of its base (when it is a plain path from a
// root name) and the base's type.
func memberBase(src string, from int, sc *scope) (string, *ftype) {
	tree, err := parser.Parse(src)
	if err != nil {
		return "", nil
	}
	var found ast.Node
	ast.Walk(&tree.Node, visitFunc(func(n *ast.Node) {
		if m, ok := (*n).(*ast.MemberNode); ok && m.Property.Location().From == from {
			found = m.Node
		}
	}))
	if found == nil {
		return "", nil
	}
	var toks []string
	var t *ftype
	var walk func(n ast.Node) bool
	walk = func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.IdentifierNode:
			toks, t = []string{n.Value}, sc.root(n.Value)
			return t != nil
		case *ast.ChainNode:
			return walk(n.Node)
		case *ast.MemberNode:
			if !walk(n.Node) {
				return false
			}
			switch p := n.Property.(type) {
			case *ast.StringNode:
				toks = append(toks, p.Value)
				next, ok := t.field(p.Value)
				t = next
				return ok
			case *ast.IntegerNode:
				toks[len(toks)-1] += fmt.Sprintf("[%d]", p.Value)
				t = t.elem
				return t != nil
			}
		}
		return false
	}
	if !walk(found) {
		return "", nil
	}
	return strings.Join(toks, "."), t
}

type visitFunc func(*ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(n) }

// secretNames lists the NAMEs of secret.NAME in src.
func secretNames(src string) []string {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	var names []string
	ast.Walk(&tree.Node, visitFunc(func(n *ast.Node) {
		if m, ok := (*n).(*ast.MemberNode); ok {
			if id, ok := m.Node.(*ast.IdentifierNode); ok && id.Value == "secret" {
				if p, ok := m.Property.(*ast.StringNode); ok {
					names = append(names, p.Value)
				}
			}
		}
	}))
	return names
}

// dynamicSecret reports a use of secret other than secret.NAME (for
// example secret[x]), whose names cannot be looked up ahead of the run.
func dynamicSecret(src string) (bool, int) {
	tree, err := parser.Parse(src)
	if err != nil {
		return false, 0
	}
	static := map[*ast.IdentifierNode]bool{}
	var all []*ast.IdentifierNode
	ast.Walk(&tree.Node, visitFunc(func(n *ast.Node) {
		switch m := (*n).(type) {
		case *ast.MemberNode:
			if id, ok := m.Node.(*ast.IdentifierNode); ok && id.Value == "secret" {
				if _, ok := m.Property.(*ast.StringNode); ok {
					static[id] = true
				}
			}
		case *ast.IdentifierNode:
			if m.Value == "secret" {
				all = append(all, m)
			}
		}
	}))
	for _, id := range all {
		if !static[id] {
			return true, runeToByte(src, id.Location().From)
		}
	}
	return false, 0
}

// jsonKind names the JSON type of a checked expression's Go type; "" when
// it is not known before the run.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return ""
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return ""
}

func runeToByte(s string, r int) int {
	if r <= 0 {
		return 0
	}
	i := 0
	for b := range s {
		if i == r {
			return b
		}
		i++
	}
	return len(s)
}

var typeNameRE = regexp.MustCompile(`(Map|Array)\{`)

// cleanTypes replaces expr's printing of typed maps (which lists every
// field, in random order) with "object", and arrays with "array".
func cleanTypes(msg string) string {
	for {
		loc := typeNameRE.FindStringIndex(msg)
		if loc == nil {
			return msg
		}
		depth, end := 0, len(msg)
		for i := loc[1] - 1; i < len(msg); i++ {
			if msg[i] == '{' {
				depth++
			} else if msg[i] == '}' {
				depth--
				if depth == 0 {
					end = i + 1
					break
				}
			}
		}
		word := "object"
		if strings.HasPrefix(msg[loc[0]:], "Array") {
			word = "array"
		}
		msg = msg[:loc[0]] + word + msg[end:]
	}
}
