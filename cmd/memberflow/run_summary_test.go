package main

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

func TestRunOnceUntilQuiet(t *testing.T) {
	conns := map[string]*recipes.Connection{
		"members": {Name: "members", Connector: "memberships"},
		"acc":     {Name: "acc", Connector: "accredible"},
	}
	rs := []*recipes.Recipe{
		{Name: "r", Connections: conns, Trigger: &recipes.Trigger{Connection: "members", Operation: "user_changed"}},
		{Name: "w", Connections: conns, Trigger: &recipes.Trigger{Connection: "acc", Operation: "credential_changed"}},
	}
	for _, tc := range []struct {
		name       string
		events     []int64 // r's cumulative events after each pass
		writes     []int64 // w's cumulative changes in members after each pass
		err        error
		wantPasses int
		wantPolled []string // recipes polled in the second pass
	}{
		{"quiet at once", []int64{0, 0}, []int64{1, 2}, nil, 2, []string{"r"}},
		{"a chain of two hops", []int64{10, 14, 15, 15}, []int64{1, 2, 3, 4}, nil, 4, []string{"r"}},
		{"never quiet stops at the bound", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil, maxOncePasses, []string{"r"}},
		{"an error stops", []int64{3}, []int64{1}, errors.New("poll failed"), 1, nil},
		// Nobody else changed what r watches: no second pass.
		{"no other recipe wrote", []int64{10, 10}, []int64{0, 0}, nil, 1, nil},
		{"the writes stopped", []int64{10, 12, 13}, []int64{1, 1, 1}, nil, 2, []string{"r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			var polled []string
			sum, passes, err := runOnceUntilQuiet(func(poll func(string) bool) (*engine.Summary, error) {
				if calls == 0 && poll != nil {
					t.Error("the first pass does not poll every trigger")
				}
				if calls == 1 {
					for _, r := range []string{"r", "w"} {
						if poll(r) {
							polled = append(polled, r)
						}
					}
				}
				i := min(calls, len(tc.events)-1)
				calls++
				// r writes in members too: its own writes call for no pass.
				return &engine.Summary{Recipes: []engine.RecipeSummary{
					{Recipe: "r", Events: tc.events[i], Writes: map[string]int64{"members.update_user": int64(calls)}},
					{Recipe: "w", Writes: map[string]int64{"members.update_user": tc.writes[min(i, len(tc.writes)-1)]}},
				}}, tc.err
			}, rs)
			if passes != tc.wantPasses || calls != tc.wantPasses || !errors.Is(err, tc.err) || sum == nil {
				t.Fatalf("passes=%d calls=%d err=%v; want %d passes, err %v", passes, calls, err, tc.wantPasses, tc.err)
			}
			if !slices.Equal(polled, tc.wantPolled) {
				t.Errorf("the second pass polled %v, want %v", polled, tc.wantPolled)
			}
		})
	}
}

// TestWriteGlance: the line counts what the triggers saw and what the
// writes changed, each under its operation's Effect; a read-only step's
// Effect names the write after it (the QR code appended is a QR code
// made, the payment logged after it a record written); one of a kind is
// singular.
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
			Steps: []*recipes.Step{{Connection: "ae", Operation: "attendee_qr_code"}, {Connection: "out", Operation: "append"},
				{Connection: "members", Operation: "update_user"}}},
		{Name: "log", Connections: conns, Trigger: &recipes.Trigger{Connection: "members", Operation: "payment_created"},
			Steps: []*recipes.Step{{Connection: "out", Operation: "append"}}},
		{Name: "file", Connections: conns, Trigger: &recipes.Trigger{Connection: "out", Operation: "records"},
			Steps: []*recipes.Step{{Connection: "out", Operation: "append"}}},
	}
	for _, tc := range []struct {
		name   string
		sum    []engine.RecipeSummary
		dryRun bool
		want   string
	}{
		{"the demo's kinds", []engine.RecipeSummary{
			{Recipe: "issue", Events: 100, Total: 7, Succeeded: 40, Skipped: 60, Suppressed: 20,
				Writes: map[string]int64{"acc.upsert_credential": 40, "members.update_user": 40}, Unchanged: map[string]int64{"acc.upsert_credential": 12}},
			{Recipe: "qr", Events: 9, Succeeded: 8, Dead: 1, Writes: map[string]int64{"out.append": 8, "members.update_user": 2}},
			{Recipe: "log", Events: 3, Succeeded: 3, Writes: map[string]int64{"out.append": 3}},
		}, false, "100 members seen · 8 QR codes made · 40 certificates issued · 3 records written · 42 members updated · 1 failed\n"},
		{"a file job, one of each", []engine.RecipeSummary{
			{Recipe: "file", Events: 1, Succeeded: 1, Writes: map[string]int64{"out.append": 1}},
			{Recipe: "issue", Events: 0},
			{Recipe: "qr", Events: 1, Succeeded: 1, Writes: map[string]int64{"out.append": 1, "members.update_user": 1}},
		}, false, "1 record read · 1 QR code made · 1 record written · 1 member updated · 0 failed\n"},
		{"a dry run", []engine.RecipeSummary{
			{Recipe: "file", Events: 2, Succeeded: 2, Writes: map[string]int64{"out.append": 2}},
		}, true, "dry run (writes planned, not made): 2 records read · 2 records written · 0 failed\n"},
		{"nothing", nil, false, "0 failed\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeGlance(&b, &engine.Summary{Recipes: tc.sum}, rs, tc.dryRun)
			if b.String() != tc.want {
				t.Fatalf("glance =\n%swant\n%s", b.String(), tc.want)
			}
		})
	}
}
