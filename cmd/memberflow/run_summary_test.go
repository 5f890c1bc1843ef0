package main

import (
	"bytes"
	"errors"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

func TestRunOnceUntilQuiet(t *testing.T) {
	for _, tc := range []struct {
		name       string
		events     []int64 // cumulative events after each pass
		err        error
		wantPasses int
	}{
		{"quiet at once", []int64{0, 0}, nil, 2},
		{"a chain of two hops", []int64{10, 14, 15, 15}, nil, 4},
		{"never quiet stops at the bound", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil, maxOncePasses},
		{"an error stops", []int64{3}, errors.New("poll failed"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			sum, passes, err := runOnceUntilQuiet(func() (*engine.Summary, error) {
				n := tc.events[min(calls, len(tc.events)-1)]
				calls++
				return &engine.Summary{Recipes: []engine.RecipeSummary{{Recipe: "r", Events: n}}}, tc.err
			})
			if passes != tc.wantPasses || calls != tc.wantPasses || !errors.Is(err, tc.err) || sum == nil {
				t.Fatalf("passes=%d calls=%d err=%v; want %d passes, err %v", passes, calls, err, tc.wantPasses, tc.err)
			}
		})
	}
}

func TestWriteGlance(t *testing.T) {
	conns := map[string]*recipes.Connection{
		"members": {Name: "members", Connector: "memberships"},
		"acc":     {Name: "acc", Connector: "accredible"},
		"ae":      {Name: "ae", Connector: "accelevents"},
		"out":     {Name: "out", Connector: "file"},
	}
	rs := []*recipes.Recipe{
		{Name: "issue", Connections: conns, Trigger: &recipes.Trigger{Connection: "members", Operation: "user_created"}},
		{Name: "qr", Connections: conns, Trigger: &recipes.Trigger{Connection: "ae", Operation: "registration_created"},
			Steps: []*recipes.Step{{Connection: "ae", Operation: "attendee_qr_code"}, {Connection: "out", Operation: "append"}}},
		{Name: "log", Connections: conns, Trigger: &recipes.Trigger{Connection: "members", Operation: "payment_created"},
			Steps: []*recipes.Step{{Connection: "out", Operation: "append"}}},
	}
	sum := &engine.Summary{Recipes: []engine.RecipeSummary{
		{Recipe: "issue", Events: 100, Total: 7, Succeeded: 40, Skipped: 60, Suppressed: 20,
			Writes: map[string]int64{"acc.upsert_credential": 40, "members.update_user": 40}, Unchanged: map[string]int64{"acc.upsert_credential": 12}},
		{Recipe: "qr", Events: 9, Succeeded: 8, Dead: 1, Writes: map[string]int64{"out.append": 8}},
		{Recipe: "log", Events: 3, Succeeded: 3, Writes: map[string]int64{"out.append": 3}},
	}}
	var b bytes.Buffer
	writeGlance(&b, sum, rs)
	want := "100 members seen · 8 QR codes made · 40 certificates issued · 40 members updated · 60 skipped by conditions · 1 failed\n"
	if b.String() != want {
		t.Fatalf("glance =\n%s\nwant\n%s", b.String(), want)
	}
}
