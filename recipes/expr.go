package recipes

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
)

// Expr is a compiled expression. It is compiled once, at load, and is
// safe for concurrent evaluation.
type Expr struct {
	// Source is the expression text, without ${{ }}.
	Source string
	// Pos is where Source starts in the file.
	Pos     Pos
	program *vm.Program
	// fast evaluates the expression without the VM when it can
	// (fastexpr.go); nil when it never can.
	fast fastFn
	// secrets are the NAMEs of secret.NAME the expression reads.
	secrets []string
	// kind is the JSON type the typed check found ("" when unknown).
	kind string
}

// SecretNames lists the secrets the expression reads (secret.NAME).
func (e *Expr) SecretNames() []string { return e.secrets }

// Env is what expressions see: trigger, steps, vars, secret.
type Env = map[string]any

// CompileExpr compiles an expression for evaluation. Type-checking against
// the operations' schemas happens in validation, before this.
func CompileExpr(src string, pos Pos) (*Expr, error) {
	exprMu.Lock()
	defer exprMu.Unlock()
	return new(runtimeCompiler).compile(src, pos)
}

// exprMu serialises checking and compiling expressions: expr writes
// lazily computed method sets into the function types of the shared base
// configurations. Evaluation needs no lock.
var exprMu sync.Mutex

// runtimeCompiler compiles expressions for evaluation against map
// environments (runtime data is map[string]any, whatever the schemas
// say). It keeps one configuration for all the expressions of a load; it
// is not safe for concurrent use, and its callers hold exprMu.
// Programs are immutable, so that the same source, frequent across the
// recipes of a folder, is compiled once.
type runtimeCompiler struct {
	cfg      *conf.Config
	programs map[string]compiled
}

// compiled is a program and its fast form.
type compiled struct {
	program *vm.Program
	fast    fastFn
}

var runtimeBase = sync.OnceValue(func() *conf.Config {
	c := conf.CreateNew()
	// Declaring the environment a map lets the VM load trigger, steps,
	// vars and secret without reflection; undefined names stay allowed
	// because the typed check has already run.
	expr.Env(Env{})(c)
	expr.AllowUndefinedVariables()(c)
	expr.Function(getFunc, fastGet)(c)
	expr.Function(formatFunc, fastFormat)(c)
	expr.Function(stringFunc, func(params ...any) (any, error) { return PlainString(params[0]), nil })(c)
	expr.Function(modFunc, wholeMod)(c)
	expr.Patch(memberPatcher{})(c)
	c.Check()
	return c
})

// getFunc is the function field access is compiled to. Its name cannot
// be written in a recipe: the typed check, which does not know it, runs
// first.
const getFunc = "__mf_get"

// memberPatcher rewrites a.b (a plain field access) to __mf_get(a, "b"),
// which reads map[string]any without reflection: runtime data is JSON
// decoded into such maps, and expr's generic field access reflects.
type memberPatcher struct{}

func (memberPatcher) Visit(node *ast.Node) {
	// a % b on whole numbers however they were decoded (wholeMod).
	if b, ok := (*node).(*ast.BinaryNode); ok && b.Operator == "%" {
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: modFunc}, Arguments: []ast.Node{b.Left, b.Right}})
		return
	}
	// string(x) without exponents for whole numbers (PlainString).
	if b, ok := (*node).(*ast.BuiltinNode); ok && b.Name == "string" && len(b.Arguments) == 1 {
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: stringFunc}, Arguments: b.Arguments})
		return
	}
	if c, ok := (*node).(*ast.CallNode); ok {
		// x.Format(layout), common in recipes (issued_on dates), without
		// a reflective method call.
		if m, ok := c.Callee.(*ast.MemberNode); ok && m.Method && !m.Optional && len(c.Arguments) == 1 {
			if p, ok := m.Property.(*ast.StringNode); ok && p.Value == "Format" {
				ast.Patch(node, &ast.CallNode{
					Callee:    &ast.IdentifierNode{Value: formatFunc},
					Arguments: []ast.Node{m.Node, c.Arguments[0]},
				})
			}
		}
		return
	}
	m, ok := (*node).(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return
	}
	if _, ok := m.Property.(*ast.StringNode); !ok {
		return
	}
	if id, ok := m.Node.(*ast.IdentifierNode); ok && id.Value == "$env" {
		return
	}
	ast.Patch(node, &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: getFunc},
		Arguments: []ast.Node{m.Node, m.Property},
	})
}

// fastGet is a.b for maps, and expr's own field access for anything else
// (structs, time values), with the same errors.
func fastGet(params ...any) (any, error) {
	if m, ok := params[0].(map[string]any); ok {
		return m[params[1].(string)], nil
	}
	return runtime.Fetch(params[0], params[1]), nil
}

// modFunc is what a % b is compiled to.
const modFunc = "__mf_mod"

// wholeMod is a % b for whole numbers of any Go type. The typed check
// admits % on integer fields, but a field the connector gave as an int
// on a run's first attempt is a float64 once decoded from the store (a
// replay, a restart, another runner, recipe tests): expr's % refused it
// there, so the same event passed once and failed on replay.
func wholeMod(params ...any) (any, error) {
	a, okA := wholeInt(params[0])
	b, okB := wholeInt(params[1])
	if !okA || !okB {
		return nil, fmt.Errorf("invalid operation: %T %% %T (%% takes whole numbers)", params[0], params[1])
	}
	if b == 0 {
		return nil, errors.New("integer divide by zero")
	}
	return a % b, nil
}

// wholeInt is v as an int when it is a whole number.
func wholeInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case uint:
		return int(n), true
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), true
	case uint64:
		return int(n), true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) <= 1<<53 {
			return int(n), true
		}
	case float32:
		if f := float64(n); f == math.Trunc(f) && math.Abs(f) <= 1<<24 {
			return int(f), true
		}
	}
	return 0, false
}

// stringFunc is what string(x) is compiled to.
const stringFunc = "__mf_string"

// PlainString is a value as text, as expr's string() and fmt print it,
// except that a whole number is written out in digits: JSON numbers are
// decoded as float64, and %v writes 12345678 as "1.2345678e+07", which
// made an order reference "order-1.2345678e+07".
func PlainString(v any) string {
	switch n := v.(type) {
	case string:
		return n
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1e21 {
			return strconv.FormatFloat(n, 'f', -1, 64)
		}
	case float32:
		if f := float64(n); f == math.Trunc(f) && math.Abs(f) < 1e21 {
			return strconv.FormatFloat(f, 'f', -1, 32)
		}
	}
	return fmt.Sprint(v)
}

// formatFunc is what x.Format(layout) is compiled to.
const formatFunc = "__mf_format"

// fastFormat is t.Format(layout) for a time, and the reflective method
// call expr would make for anything else.
func fastFormat(params ...any) (any, error) {
	if t, ok := params[0].(time.Time); ok {
		if layout, ok := params[1].(string); ok {
			return t.Format(layout), nil
		}
	}
	m := reflect.ValueOf(params[0]).MethodByName("Format")
	if !m.IsValid() {
		return nil, fmt.Errorf("type %T has no method Format", params[0])
	}
	if m.Type().NumIn() != 1 || !reflect.ValueOf(params[1]).IsValid() || !reflect.TypeOf(params[1]).AssignableTo(m.Type().In(0)) {
		return nil, fmt.Errorf("cannot call %T.Format with %T", params[0], params[1])
	}
	out := m.Call([]reflect.Value{reflect.ValueOf(params[1])})
	if len(out) == 0 {
		return nil, nil
	}
	return out[0].Interface(), nil
}

func (rc *runtimeCompiler) compile(src string, pos Pos) (*Expr, error) {
	if c, ok := rc.programs[src]; ok {
		return &Expr{Source: src, Pos: pos, program: c.program, fast: c.fast}, nil
	}
	if rc.cfg == nil {
		// A copy of a shared base: its function tables are only read, and
		// the nature cache, written while checking, is this compiler's own.
		rc.cfg = new(conf.Config)
		*rc.cfg = *runtimeBase()
		rc.cfg.NtCache = nature.Cache{}
		rc.programs = map[string]compiled{}
	}
	tree, err := checker.ParseCheck(src, rc.cfg)
	if err != nil {
		return nil, err
	}
	if err := optimizer.Optimize(&tree.Node, rc.cfg); err != nil {
		return nil, err
	}
	p, err := compiler.Compile(tree, rc.cfg)
	if err != nil {
		return nil, err
	}
	c := compiled{program: p}
	if rc.cfg.ShortCircuit {
		c.fast = fastCompile(tree.Node)
	}
	rc.programs[src] = c
	return &Expr{Source: src, Pos: pos, program: p, fast: c.fast}, nil
}

// vms recycles virtual machines: a VM's stack is reset by each run, and
// allocating one per evaluation costs as much as a short expression.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

// Eval evaluates the expression against env.
func (e *Expr) Eval(env Env) (any, error) {
	if e.fast != nil {
		if v, ok := e.fast(env); ok {
			return v, nil
		}
	}
	return e.run(env)
}

// run evaluates the expression with the VM.
func (e *Expr) run(env Env) (any, error) {
	m := vms.Get().(*vm.VM)
	out, err := m.Run(e.program, env)
	vms.Put(m)
	if err != nil {
		return nil, fmt.Errorf("%s:%d:%d: evaluating %q: %w", e.Pos.File, e.Pos.Line, e.Pos.Column, e.Source, err)
	}
	return out, nil
}

// EvalBool evaluates a condition; a non-boolean result is an error.
func (e *Expr) EvalBool(env Env) (bool, error) {
	v, err := e.Eval(env)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s:%d:%d: condition %q is %T, not a boolean", e.Pos.File, e.Pos.Line, e.Pos.Column, e.Source, v)
	}
	return b, nil
}

// Template is a value (map, list, scalar) whose strings may hold ${{ }}
// expressions. A string that is only `${{ x }}` takes x's type; text
// around expressions interpolates into a string.
type Template struct {
	root tnode
}

type tnode interface {
	eval(env Env) (any, error)
	walk(func(*Expr))
}

type tconst struct{ v any }
type texpr struct{ e *Expr }
type tconcat struct{ parts []tnode }
type tmap struct {
	keys []string
	vals []tnode
}
type tlist struct{ items []tnode }

func (n tconst) eval(Env) (any, error) { return n.v, nil }
func (n tconst) walk(func(*Expr))      {}
func (n texpr) eval(env Env) (any, error) {
	return n.e.Eval(env)
}
func (n texpr) walk(f func(*Expr)) { f(n.e) }
func (n tconcat) eval(env Env) (any, error) {
	var b strings.Builder
	for _, p := range n.parts {
		v, err := p.eval(env)
		if err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case nil:
		case string:
			b.WriteString(v)
		default:
			b.WriteString(PlainString(v))
		}
	}
	return b.String(), nil
}
func (n tconcat) walk(f func(*Expr)) {
	for _, p := range n.parts {
		p.walk(f)
	}
}
func (n tmap) eval(env Env) (any, error) {
	out := make(map[string]any, len(n.keys))
	for i, k := range n.keys {
		v, err := n.vals[i].eval(env)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}
func (n tmap) walk(f func(*Expr)) {
	for _, v := range n.vals {
		v.walk(f)
	}
}
func (n tlist) eval(env Env) (any, error) {
	out := make([]any, len(n.items))
	for i, it := range n.items {
		v, err := it.eval(env)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}
func (n tlist) walk(f func(*Expr)) {
	for _, it := range n.items {
		it.walk(f)
	}
}

// Eval renders the template against env.
func (t *Template) Eval(env Env) (any, error) {
	if t == nil || t.root == nil {
		return nil, nil
	}
	return t.root.eval(env)
}

// EvalMap renders a template whose root is a mapping.
func (t *Template) EvalMap(env Env) (map[string]any, error) {
	v, err := t.Eval(env)
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("template is %T, not a mapping", v)
	}
	return m, nil
}

// Expressions lists the template's expressions in document order.
func (t *Template) Expressions() []*Expr {
	var out []*Expr
	if t != nil && t.root != nil {
		t.root.walk(func(e *Expr) { out = append(out, e) })
	}
	return out
}

// CompileTemplate compiles a decoded value (maps, lists, scalars) whose
// strings may hold ${{ }}. pos is used for every expression; the loader,
// which knows each scalar's position, builds templates node by node
// instead.
func CompileTemplate(v any, pos Pos) (*Template, error) {
	n, err := compileValue(v, pos)
	if err != nil {
		return nil, err
	}
	return &Template{root: n}, nil
}

func compileValue(v any, pos Pos) (tnode, error) {
	switch v := v.(type) {
	case string:
		return compileString(v, pos)
	case map[string]any:
		m := tmap{}
		for _, k := range sortedKeys(v) {
			n, err := compileValue(v[k], pos)
			if err != nil {
				return nil, err
			}
			m.keys = append(m.keys, k)
			m.vals = append(m.vals, n)
		}
		return m, nil
	case []any:
		l := tlist{}
		for _, it := range v {
			n, err := compileValue(it, pos)
			if err != nil {
				return nil, err
			}
			l.items = append(l.items, n)
		}
		return l, nil
	default:
		return tconst{v}, nil
	}
}

// compileString splits s on ${{ }} markers.
func compileString(s string, pos Pos) (tnode, error) {
	segs, err := SplitInterpolation(s)
	if err != nil {
		return nil, err
	}
	if len(segs) == 1 && !segs[0].Expr {
		return tconst{s}, nil
	}
	var parts []tnode
	for _, sg := range segs {
		if !sg.Expr {
			parts = append(parts, tconst{sg.Text})
			continue
		}
		e, err := CompileExpr(sg.Text, pos)
		if err != nil {
			return nil, err
		}
		parts = append(parts, texpr{e})
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return tconcat{parts}, nil
}

// Segment is a piece of an interpolated string.
type Segment struct {
	Text string
	Expr bool
	// Offset is the byte offset of Text within the whole string.
	Offset int
}

// InterpolationError is a malformed ${{ }} in a string.
type InterpolationError struct {
	// Offset is the byte offset of the ${{ in the string.
	Offset int
	Msg    string
}

func (e *InterpolationError) Error() string {
	return fmt.Sprintf("%s at offset %d", e.Msg, e.Offset)
}

// SplitInterpolation splits s into literal text and ${{ }} expressions.
// An unterminated or empty ${{ }} is an *InterpolationError.
func SplitInterpolation(s string) ([]Segment, error) {
	var segs []Segment
	i := 0
	for {
		j := strings.Index(s[i:], "${{")
		if j < 0 {
			if i < len(s) || len(segs) == 0 {
				segs = append(segs, Segment{Text: s[i:], Offset: i})
			}
			return segs, nil
		}
		if j > 0 {
			segs = append(segs, Segment{Text: s[i : i+j], Offset: i})
		}
		start := i + j + 3
		k := strings.Index(s[start:], "}}")
		if k < 0 {
			return nil, &InterpolationError{Offset: i + j, Msg: "unterminated ${{: close it with }}"}
		}
		raw := s[start : start+k]
		trimmed := strings.TrimSpace(raw)
		lead := len(raw) - len(strings.TrimLeft(raw, " \t\n"))
		if trimmed == "" {
			return nil, &InterpolationError{Offset: i + j, Msg: "empty ${{ }}"}
		}
		segs = append(segs, Segment{Text: trimmed, Expr: true, Offset: start + lead})
		i = start + k + 2
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// EvalKey renders one key of a template whose root is a mapping: ok is
// false when the template is no mapping or has no such key. The other
// keys are not evaluated, so env needs only what that key reads.
func (t *Template) EvalKey(key string, env Env) (v any, ok bool, err error) {
	if t == nil {
		return nil, false, nil
	}
	m, isMap := t.root.(tmap)
	if !isMap {
		return nil, false, nil
	}
	for i, k := range m.keys {
		if k == key {
			v, err := m.vals[i].eval(env)
			return v, true, err
		}
	}
	return nil, false, nil
}
