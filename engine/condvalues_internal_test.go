package engine

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/memberflow/memberflow/recipes"
)

// TestConditionValuesAgreeWithMarshal: the audit's values of a condition
// are the JSON of a map of each path's value by its dotted path, as
// encoding/json writes it, whatever the values and however paths
// collide.
func TestConditionValuesAgreeWithMarshal(t *testing.T) {
	env := recipes.Env{
		"trigger": map[string]any{
			"eligible": true, "score": 85.0, "email": "A&B <x@example.com>",
			"user": map[string]any{"status": "active", "tags": []any{"a", 1.5}},
			"a.b":  "dotted", "when": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			"nan": math.NaN(),
		},
		"vars": map[string]any{"plan": "gold", "min": 70},
	}
	cases := []struct {
		name  string
		paths [][]string
	}{
		{"none", nil},
		{"one", [][]string{{"trigger", "eligible"}}},
		{"sorted by key", [][]string{{"trigger", "score"}, {"trigger", "eligible"}, {"vars", "min"}}},
		{"nested and lists", [][]string{{"trigger", "user"}, {"trigger", "user", "status"}}},
		{"missing and through a scalar", [][]string{{"trigger", "nope"}, {"trigger", "score", "x"}, {"secret"}}},
		{"colliding keys, the last wins", [][]string{{"trigger", "a.b"}, {"trigger", "a", "b"}}},
		{"a value left to encoding/json", [][]string{{"trigger", "when"}, {"trigger", "eligible"}}},
		{"an unencodable value", [][]string{{"trigger", "nan"}}},
		{"HTML escaped", [][]string{{"trigger", "email"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []byte
			if len(tc.paths) > 0 {
				m := map[string]any{}
				for _, p := range tc.paths {
					key := p[0]
					for _, k := range p[1:] {
						key += "." + k
					}
					m[key] = readPath(env, p)
				}
				want, _ = json.Marshal(m)
			}
			got := conditionValues(condReads(tc.paths), env)
			if string(got) != string(want) {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func BenchmarkConditionValues(b *testing.B) {
	env := recipes.Env{"trigger": map[string]any{"eligible": true, "score": 85.0, "email": "x@example.com"}, "vars": map[string]any{}}
	reads := condReads([][]string{{"trigger", "eligible"}, {"trigger", "score"}})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			conditionValues(reads, env)
		}
	})
	// A map of the values, marshalled: the form before (which also
	// joined the keys at each call).
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			conditionValuesMap(reads, env)
		}
	})
}

// TestWhenFields: the top-level fields a condition reads of the event,
// or nil when it reads the event whole (a trigger may then decode only
// those fields of a record it rejects).
func TestWhenFields(t *testing.T) {
	cases := []struct {
		when string
		want []string
	}{
		{`trigger.eligible && trigger.score >= 70`, []string{"eligible", "score"}},
		{`trigger.user.status == "active" && trigger.user.id != ""`, []string{"user"}},
		{`trigger["plan"] == vars.plan`, []string{"plan"}},
		{`trigger.a?.b != nil || lower(trigger.c) == "x"`, []string{"a", "c"}},
		{`trigger.d.Format("2006") == "2026"`, []string{"d"}},
		{`any(trigger.items, {.x > trigger.min})`, []string{"items", "min"}},
		{`trigger.items[trigger.i] == 1`, []string{"items", "i"}},
		{`len(trigger) > 3`, nil},
		{`trigger[vars.key] == 1`, nil},
		{`"id" in trigger`, nil},
		{`$env.trigger.id == "x"`, nil},
		{`let t = trigger; t.id == "x"`, nil},
		{`vars.enabled`, nil},
	}
	for _, tc := range cases {
		paths, err := exprPaths(tc.when)
		if err != nil {
			t.Fatalf("%s: %v", tc.when, err)
		}
		if got := whenFields(paths); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.when, got, tc.want)
		}
	}
}
