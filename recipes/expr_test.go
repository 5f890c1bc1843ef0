package recipes

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/expr-lang/expr"
)

// TestRuntimeMatchesExpr checks that the compiled form used at run time
// (fast field access, map environment) gives what plain expr gives.
func TestRuntimeMatchesExpr(t *testing.T) {
	env := Env{
		"trigger": map[string]any{
			"user":  map[string]any{"id": "u1", "email": "A@EXAMPLE.COM", "planId": 2.0, "tags": []any{"x", "y"}, "roles": []any{map[string]any{"name": "admin"}}},
			"items": []any{map[string]any{"name": "a", "n": 1.0}, map[string]any{"name": "b", "n": 2.0}},
			"at":    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			"none":  nil,
		},
		"vars":   map[string]any{"groupId": 4821, "nested": map[string]any{"deep": map[string]any{"v": true}}},
		"secret": map[string]string{"TOKEN": "t"},
	}
	cases := []string{
		`trigger.user.id`,
		`lower(trigger.user.email)`,
		`trigger.user.planId + 1`,
		`trigger.user.missing`,
		`trigger.user.tags[1]`,
		`trigger.user.roles[0].name`,
		`filter(trigger.items, .n > 1)[0].name`,
		`map(trigger.items, .name)`,
		`trigger.none?.x`,
		`trigger.at.Year()`,
		`trigger.at.Format('2006-01-02')`,
		`date("2026-03-04").Format("Jan 2")`,
		`duration("90m").String()`,
		`trigger.user.id.Format('x')`, // an error in both
		`vars.nested.deep.v && vars.groupId > 4000`,
		`$env.vars.groupId`,
		`secret.TOKEN`,
		`trigger["user"]["id"]`,
		`trigger.user.id in ["u1", "u2"]`,
		`trigger.none.x`, // an error in both
		`nope.x`,         // an error in both
	}
	for _, src := range cases {
		t.Run(src, func(t *testing.T) {
			e, err := CompileExpr(src, Pos{File: "t.yaml", Line: 1, Column: 1})
			if err != nil {
				t.Fatal(err)
			}
			got, gotErr := e.Eval(env)
			want, wantErr := expr.Eval(src, map[string]any(env))
			if (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("error %v, plain expr: %v", gotErr, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, plain expr gives %#v", got, want)
			}
		})
	}
}

func TestEvalIsConcurrencySafe(t *testing.T) {
	e, err := CompileExpr(`trigger.user.id + "-" + string(vars.n)`, Pos{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for g := range 8 {
		go func() {
			for i := range 200 {
				env := Env{"trigger": map[string]any{"user": map[string]any{"id": fmt.Sprint(g)}}, "vars": map[string]any{"n": i}}
				v, err := e.Eval(env)
				if err == nil && v != fmt.Sprintf("%d-%d", g, i) {
					err = fmt.Errorf("got %v", v)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// Whole numbers decoded from JSON (float64) are written in digits by
// string() and by interpolation, never in exponent form: an order
// reference "order-${{ trigger.id }}" must not become
// "order-1.2345678e+07".
func TestWholeNumbersAreWrittenInDigits(t *testing.T) {
	env := Env{"trigger": map[string]any{"id": float64(12345678), "amount": float64(1e6), "rate": 0.25, "tiny": 1e-7, "n": 7}}
	for _, tc := range []struct {
		tmpl any
		want any
	}{
		{"order-${{ trigger.id }}", "order-12345678"},
		{"${{ string(trigger.amount) }}", "1000000"},
		{"${{ string(trigger.rate) }}", "0.25"},
		{"x${{ trigger.tiny }}", "x1e-07"},
		{"${{ string(trigger.n) }}", "7"},
		{"${{ trigger.id }}", float64(12345678)}, // a whole value keeps its type
	} {
		tp, err := CompileTemplate(tc.tmpl, Pos{File: "t.yaml", Line: 1, Column: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, err := tp.Eval(env)
		if err != nil {
			t.Fatalf("%v: %v", tc.tmpl, err)
		}
		if got != tc.want {
			t.Errorf("%v = %#v, want %#v", tc.tmpl, got, tc.want)
		}
	}
}

// % takes whole numbers however they were decoded: an int on a run's
// first attempt, a float64 once read back from the store.
func TestModuloTakesWholeNumbersOfAnyType(t *testing.T) {
	for _, tc := range []struct {
		n    any
		want any
	}{
		{7, 1}, {int64(7), 1}, {float64(7), 1}, {float64(12250000), 0},
	} {
		e := mustCompileExpr(t, "trigger.n % 2")
		got, err := e.Eval(Env{"trigger": map[string]any{"n": tc.n}})
		if err != nil || got != tc.want {
			t.Errorf("%T %v %% 2 = %v, %v; want %v", tc.n, tc.n, got, err, tc.want)
		}
	}
	e := mustCompileExpr(t, "trigger.n % 2")
	if _, err := e.Eval(Env{"trigger": map[string]any{"n": 2.5}}); err == nil {
		t.Error("2.5 % 2 did not fail")
	}
	if _, err := mustCompileExpr(t, "trigger.n % 0").Eval(Env{"trigger": map[string]any{"n": 3}}); err == nil {
		t.Error("3 % 0 did not fail")
	}
}

func mustCompileExpr(t *testing.T, src string) *Expr {
	t.Helper()
	e, err := CompileExpr(src, Pos{File: "t.yaml", Line: 1, Column: 1})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
