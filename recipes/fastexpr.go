package recipes

import (
	"reflect"
	"strings"

	"github.com/expr-lang/expr/ast"
)

// Fast evaluation. Most expressions of a recipe are a field of the event
// (trigger.id), a comparison (trigger.score >= 70), a condition joining
// such comparisons, a concatenation or lower(x): the VM runs each with a
// function call per field access (memberPatcher's __mf_get), and its
// argument buffer, which costs more than the work. fastCompile turns
// such a checked tree into Go closures that do the same work directly.
//
// A closure answers only when the values are of the kinds it knows
// (maps of decoded JSON, strings, bools, float64 and int): for anything
// else, and for every case in which the VM would fail, it declines
// (ok false) and Eval runs the VM, which gives its own result or error.
// Expressions have no side effects, so running the VM after a closure
// declined is the same as running it alone.
// TestFastEvalAgreesWithVM checks the closures against the VM.

// fastFn evaluates a node; ok is false when it declines.
type fastFn func(env Env) (v any, ok bool)

// fastCompile returns the closure of a checked (and patched) tree, or
// nil when the tree holds a node it does not take.
func fastCompile(node ast.Node) fastFn {
	f := fastNode(node)
	if f == nil {
		return nil
	}
	return func(env Env) (any, bool) {
		v, ok := f(env)
		if !ok {
			return nil, false
		}
		// The VM's result goes through deref: only kinds that are no
		// pointer are returned as they are.
		switch v.(type) {
		case nil, bool, string, float64, int, map[string]any, []any:
			return v, true
		}
		return nil, false
	}
}

func fastNode(node ast.Node) fastFn {
	switch n := node.(type) {
	case *ast.NilNode:
		return func(Env) (any, bool) { return nil, true }
	case *ast.BoolNode:
		return fastConst(n.Value)
	case *ast.StringNode:
		return fastConst(n.Value)
	case *ast.IntegerNode:
		// The checker may have typed the literal otherwise (a float
		// beside a float); the compiler then pushes that type.
		if t := n.Type(); t != nil && t.Kind() != reflect.Int {
			return nil
		}
		return fastConst(n.Value)
	case *ast.FloatNode:
		if t := n.Type(); t != nil && t.Kind() != reflect.Float64 {
			return nil
		}
		return fastConst(n.Value)
	case *ast.IdentifierNode:
		if n.Value == "$env" || strings.HasPrefix(n.Value, "#") {
			return nil
		}
		name := n.Value
		return func(env Env) (any, bool) { return env[name], true }
	case *ast.CallNode:
		return fastMember(n)
	case *ast.BuiltinNode:
		return fastCase(n)
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		x := fastNode(n.Node)
		if x == nil {
			return nil
		}
		return func(env Env) (any, bool) {
			v, ok := x(env)
			b, isBool := v.(bool)
			if !ok || !isBool {
				return nil, false
			}
			return !b, true
		}
	case *ast.BinaryNode:
		return fastBinary(n)
	}
	return nil
}

// fastConst is a literal, boxed once rather than at each evaluation.
func fastConst(v any) fastFn {
	return func(Env) (any, bool) { return v, true }
}

// fastMember takes a.b, as memberPatcher wrote it: __mf_get(a, "b").
func fastMember(n *ast.CallNode) fastFn {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || id.Value != getFunc || len(n.Arguments) != 2 {
		return nil
	}
	prop, ok := n.Arguments[1].(*ast.StringNode)
	if !ok {
		return nil
	}
	base := fastNode(n.Arguments[0])
	if base == nil {
		return nil
	}
	key := prop.Value
	return func(env Env) (any, bool) {
		v, ok := base(env)
		m, isMap := v.(map[string]any)
		if !ok || !isMap {
			return nil, false // fastGet reflects on anything else
		}
		return m[key], true
	}
}

// fastCase takes the builtins lower(x) and upper(x) of a string.
func fastCase(n *ast.BuiltinNode) fastFn {
	if (n.Name != "lower" && n.Name != "upper") || len(n.Arguments) != 1 {
		return nil
	}
	x := fastNode(n.Arguments[0])
	if x == nil {
		return nil
	}
	conv := strings.ToLower
	if n.Name == "upper" {
		conv = strings.ToUpper
	}
	return func(env Env) (any, bool) {
		v, ok := x(env)
		s, isString := v.(string)
		if !ok || !isString {
			return nil, false
		}
		return conv(s), true
	}
}

func fastBinary(n *ast.BinaryNode) fastFn {
	if n.Operator == "+" {
		return fastSum(n)
	}
	l, r := fastNode(n.Left), fastNode(n.Right)
	if l == nil || r == nil {
		return nil
	}
	switch n.Operator {
	case "&&", "and", "||", "or":
		// Short-circuit, as the VM jumps: the left must be a bool, the
		// right is the result as it is.
		stopOn := n.Operator == "||" || n.Operator == "or"
		return func(env Env) (any, bool) {
			v, ok := l(env)
			b, isBool := v.(bool)
			if !ok || !isBool {
				return nil, false
			}
			if b == stopOn {
				return b, true
			}
			return r(env)
		}
	case "==", "!=":
		neq := n.Operator == "!="
		return func(env Env) (any, bool) {
			a, ok := l(env)
			if !ok {
				return nil, false
			}
			b, ok := r(env)
			if !ok {
				return nil, false
			}
			eq, ok := fastEqual(a, b)
			if !ok {
				return nil, false
			}
			return eq != neq, true
		}
	case "<", "<=", ">", ">=":
		op := n.Operator
		return func(env Env) (any, bool) {
			a, ok := l(env)
			if !ok {
				return nil, false
			}
			b, ok := r(env)
			if !ok {
				return nil, false
			}
			return fastCompare(op, a, b)
		}
	}
	return nil
}

// fastSum takes a chain a + b + c (left-associative): strings are
// joined in one allocation, anything else is added pair by pair from
// the left, as the VM adds.
func fastSum(n *ast.BinaryNode) fastFn {
	var terms []fastFn
	var collect func(node ast.Node) bool
	collect = func(node ast.Node) bool {
		if b, ok := node.(*ast.BinaryNode); ok && b.Operator == "+" {
			return collect(b.Left) && collect(b.Right)
		}
		f := fastNode(node)
		terms = append(terms, f)
		return f != nil
	}
	if !collect(n) {
		return nil
	}
	return func(env Env) (any, bool) {
		var stack [8]any
		vals := stack[:0]
		size, strs := 0, true
		for _, t := range terms {
			v, ok := t(env)
			if !ok {
				return nil, false
			}
			s, isString := v.(string)
			strs = strs && isString
			size += len(s)
			vals = append(vals, v)
		}
		if strs {
			var b strings.Builder
			b.Grow(size)
			for _, v := range vals {
				b.WriteString(v.(string))
			}
			return b.String(), true
		}
		sum := vals[0]
		for _, v := range vals[1:] {
			var ok bool
			if sum, ok = fastAdd(sum, v); !ok {
				return nil, false
			}
		}
		return sum, true
	}
}

// fastNumbers gives a and b as float64 when both are numbers of the
// kinds taken (float64, int) and not both int; ints is set when both are
// int.
func fastNumbers(a, b any) (x, y float64, ix, iy int, ints, ok bool) {
	switch a := a.(type) {
	case int:
		switch b := b.(type) {
		case int:
			return 0, 0, a, b, true, true
		case float64:
			return float64(a), b, 0, 0, false, true
		}
	case float64:
		switch b := b.(type) {
		case int:
			return a, float64(b), 0, 0, false, true
		case float64:
			return a, b, 0, 0, false, true
		}
	}
	return 0, 0, 0, 0, false, false
}

// fastEqual is runtime.Equal for the kinds taken.
func fastEqual(a, b any) (eq, ok bool) {
	if x, y, ix, iy, ints, isNum := fastNumbers(a, b); isNum {
		if ints {
			return ix == iy, true
		}
		return x == y, true
	}
	switch a := a.(type) {
	case nil:
		switch b.(type) {
		case nil:
			return true, true
		case string, bool, float64, int:
			return false, true
		}
	case string:
		switch b := b.(type) {
		case string:
			return a == b, true
		case nil, bool:
			return false, true
		}
	case bool:
		switch b := b.(type) {
		case bool:
			return a == b, true
		case nil, string:
			return false, true
		}
	case float64, int:
		switch b.(type) {
		case nil, string, bool:
			return false, true
		}
	}
	return false, false
}

// fastCompare is runtime.Less and its siblings for the kinds taken.
func fastCompare(op string, a, b any) (any, bool) {
	if x, y, ix, iy, ints, ok := fastNumbers(a, b); ok {
		if ints {
			return ordered(op, ix, iy), true
		}
		return ordered(op, x, y), true
	}
	sa, okA := a.(string)
	sb, okB := b.(string)
	if !okA || !okB {
		return nil, false
	}
	return ordered(op, sa, sb), true
}

// ordered is a op b, for <, <=, > and >=; NaN compares false, as in Go.
func ordered[T int | float64 | string](op string, a, b T) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	default:
		return a >= b
	}
}

// fastAdd is runtime.Add for the kinds taken.
func fastAdd(a, b any) (any, bool) {
	if x, y, ix, iy, ints, ok := fastNumbers(a, b); ok {
		if ints {
			return ix + iy, true
		}
		return x + y, true
	}
	sa, okA := a.(string)
	sb, okB := b.(string)
	if !okA || !okB {
		return nil, false
	}
	return sa + sb, true
}
