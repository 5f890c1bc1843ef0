package recipes

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fastEnvs are environments of the kinds the engine builds (decoded
// JSON, vars from YAML) and of kinds the fast path must decline.
func fastEnvs() []Env {
	member := map[string]any{
		"id": "m-1", "firstName": "Ann", "lastName": "Lee", "email": "Ann@Example.COM",
		"eligible": true, "score": 85.0, "planId": "gold", "eligibilityDate": "2026-01-02",
		"nested": map[string]any{"status": "active", "n": 3.0}, "tags": []any{"a", 1.0},
		"nan": math.NaN(), "zero": 0.0, "empty": "", "null": nil, "neg": -2.5,
	}
	return []Env{
		{"trigger": member, "vars": map[string]any{"groupId": 100001, "min": 70, "minF": 70.5, "plan": "gold"}, "steps": map[string]any{}},
		{"trigger": map[string]any{"eligible": false, "score": 69.0, "email": "x@y.z"}, "vars": map[string]any{"min": 70}},
		{"trigger": map[string]any{"eligible": "yes", "score": "85", "email": 5.0, "nested": "flat", "firstName": nil}, "vars": nil},
		{"trigger": map[string]any{"score": 70, "when": time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), "ptr": new(int), "i64": int64(3)}},
		{"trigger": nil},
		{},
	}
}

var fastExprs = []string{
	`trigger.eligible && trigger.score >= 70`,
	`trigger.eligible and trigger.score > vars.min`,
	`trigger.eligible || trigger.score < 70`,
	`not trigger.eligible`, `!trigger.eligible`,
	`trigger.firstName + " " + trigger.lastName`,
	`lower(trigger.email)`, `upper(trigger.email)`,
	`trigger.id`, `trigger.nested.status`, `trigger.nested.n <= 3`, `trigger.nested`, `trigger.tags`,
	`vars.groupId`, `vars.minF >= trigger.score`, `vars.min == 70`, `vars.min + 1`, `vars.min + 0.5`,
	`trigger.score == 85`, `trigger.score != 85`, `trigger.score == vars.min`,
	`trigger.planId == vars.plan`, `trigger.planId != "gold"`, `trigger.planId < "h"`, `trigger.planId >= "gold"`,
	`trigger.null == nil`, `trigger.missing == nil`, `trigger.missing != nil`, `trigger.id == nil`,
	`trigger.eligible == true`, `trigger.eligible == "true"`, `trigger.score == "85"`, `nil == nil`,
	`trigger.nan == trigger.nan`, `trigger.nan < 1`, `trigger.nan >= trigger.nan`,
	`trigger.zero + trigger.neg`, `trigger.score + trigger.score`, `trigger.empty + trigger.id`,
	`trigger.missing.deeper`, `trigger.id.deeper`, `trigger.nested.missing.x`,
	`trigger.eligible && trigger.missing`, `trigger.missing && true`, `trigger.eligible || trigger.missing`,
	`1 + 2`, `"a" + "b"`, `70 >= 69.5`, `true`, `nil`, `42`, `4.5`, `"text"`,
	`trigger.score >= 70 ? "high" : "low"`, `trigger.score % 2`, `string(trigger.score)`,
	`len(trigger.id)`, `trigger["id"]`, `trigger?.id`, `$env.trigger.id`, `trigger.tags[0]`,
	`trigger.when.Format("2006")`, `trigger.ptr`, `trigger.i64 + 1`, `trigger.i64 == 3`,
	`-trigger.score`, `trigger.score - 1`, `trigger.score * 2`, `trigger.id in ["m-1"]`,
}

// TestFastEvalAgreesWithVM: whenever the fast path answers, the VM gives
// the same value of the same type, and no error; where the VM fails the
// fast path declines, so Eval's errors are the VM's.
func TestFastEvalAgreesWithVM(t *testing.T) {
	taken := 0
	for _, src := range fastExprs {
		e, err := CompileExpr(src, Pos{File: "r.yaml", Line: 3, Column: 7})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for i, env := range fastEnvs() {
			checkFast(t, e, env, fmt.Sprintf("%s, env %d", src, i))
			if e.fast != nil {
				if _, ok := e.fast(env); ok {
					taken++
				}
			}
		}
	}
	if taken < len(fastExprs) {
		t.Errorf("the fast path answered %d evaluations: it should answer most", taken)
	}
	// The file job's expressions all go the fast way on its records.
	for _, src := range []string{`trigger.eligible && trigger.score >= 70`, `trigger.firstName + " " + trigger.lastName`, `lower(trigger.email)`, `trigger.id`, `vars.groupId`} {
		e, _ := CompileExpr(src, Pos{})
		if e.fast == nil {
			t.Errorf("%s: no fast form", src)
		} else if _, ok := e.fast(fastEnvs()[0]); !ok {
			t.Errorf("%s: the fast form declined a plain record", src)
		}
	}
}

// TestFastEvalAgreesWithVMOnRandomValues runs the comparisons and sums
// over random pairs of values of every kind.
func TestFastEvalAgreesWithVMOnRandomValues(t *testing.T) {
	values := []any{nil, true, false, "", "a", "b", 0, 1, -1, 2, 0.0, 1.0, -1.0, 1.5, math.NaN(), math.Inf(1), math.MaxInt,
		int64(1), float32(1), map[string]any{}, []any{}, map[string]any{"a": 1.0}}
	var exprs []*Expr
	for _, op := range []string{"==", "!=", "<", "<=", ">", ">=", "+", "&&", "||"} {
		e, err := CompileExpr("trigger.a "+op+" trigger.b", Pos{})
		if err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, e)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		env := Env{"trigger": map[string]any{"a": values[rng.IntN(len(values))], "b": values[rng.IntN(len(values))]}}
		e := exprs[rng.IntN(len(exprs))]
		checkFast(t, e, env, fmt.Sprintf("%s with %#v", e.Source, env["trigger"]))
	}
}

func checkFast(t *testing.T, e *Expr, env Env, what string) {
	t.Helper()
	want, wantErr := e.run(env)
	got, gotErr := e.Eval(env)
	if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
		t.Errorf("%s: error %v, the VM's %v", what, gotErr, wantErr)
		return
	}
	if !sameValue(got, want) {
		t.Errorf("%s: %#v (%T), the VM's %#v (%T)", what, got, got, want, want)
	}
	if wantErr != nil && strings.Contains(wantErr.Error(), "r.yaml") && !strings.HasPrefix(gotErr.Error(), "r.yaml:3:7:") {
		t.Errorf("%s: error %v does not point at the expression", what, gotErr)
	}
}

// sameValue is reflect.DeepEqual, with NaN equal to NaN.
func sameValue(a, b any) bool {
	if x, ok := a.(float64); ok {
		if y, ok := b.(float64); ok && math.IsNaN(x) && math.IsNaN(y) {
			return true
		}
	}
	return reflect.TypeOf(a) == reflect.TypeOf(b) && reflect.DeepEqual(a, b)
}

// BenchmarkExprFastVsVM: the file job's expressions on one record, by the
// fast path (Eval) and by the VM alone (its cost before the fast path).
func BenchmarkExprFastVsVM(b *testing.B) {
	env := fastEnvs()[0]
	for _, src := range []string{`trigger.eligible && trigger.score >= 70`, `trigger.firstName + " " + trigger.lastName`, `lower(trigger.email)`, `trigger.id`} {
		e, err := CompileExpr(src, Pos{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run("fast/"+src, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Eval(env); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("vm/"+src, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.run(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
