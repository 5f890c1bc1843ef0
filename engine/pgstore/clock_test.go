package pgstore_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
)

// TestLeasesAreOnTheDatabasesClock: three runners share a store, one
// with a true clock, one whose clock is two minutes ahead, one two
// minutes behind (machines whose time service failed). Each claims with
// its own clock, as its engine does. No runner may take a run or a
// trigger whose lease is live: with the runners' clocks compared, the
// runner ahead saw every lease ended and took the runs and the polling
// of the others while they worked on them (two writers for one run), and
// the others took the runs of the runner behind the moment it claimed
// them.
func TestLeasesAreOnTheDatabasesClock(t *testing.T) {
	ctx := context.Background()
	dsn, schema := pgstore.TestSchema(t)
	open := func(off time.Duration) *pgstore.Store {
		s, err := pgstore.Open(ctx, dsn, pgstore.Options{Schema: schema, Now: func() time.Time { return time.Now().Add(off) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	clocks := map[string]time.Duration{"true": 0, "ahead": 2 * time.Minute, "behind": -2 * time.Minute}
	stores := map[string]*pgstore.Store{}
	for name, off := range clocks {
		stores[name] = open(off)
	}
	now := func(name string) time.Time { return time.Now().Add(clocks[name]) }
	ev := func(id string) engine.NewEvent {
		return engine.NewEvent{ID: id, Subject: "member/" + id, OrderingKey: id, Connector: "c", Data: json.RawMessage(`{}`)}
	}
	claim := func(name string) []*engine.ClaimedRun {
		t.Helper()
		runs, err := stores[name].Claim(ctx, engine.ClaimRequest{Owner: name, Recipes: []string{"r"}, Limit: 10, Now: now(name), Lease: time.Minute})
		if err != nil {
			t.Fatalf("claim by %s: %v", name, err)
		}
		return runs
	}

	// The true runner and the one behind each claim a run, for a minute.
	if _, err := stores["true"].Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev("1")}}); err != nil {
		t.Fatal(err)
	}
	held := map[string][]int64{}
	if got := claim("true"); len(got) != 1 {
		t.Fatalf("the true runner claimed %d runs, want 1", len(got))
	} else {
		held["true"] = []int64{got[0].ID}
	}
	if _, err := stores["true"].Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev("2")}}); err != nil {
		t.Fatal(err)
	}
	if got := claim("behind"); len(got) != 1 {
		t.Fatalf("the runner behind claimed %d runs, want 1", len(got))
	} else {
		held["behind"] = []int64{got[0].ID}
	}
	// Each renews, with its own clock.
	for _, name := range []string{"true", "behind"} {
		if held, err := stores[name].RenewLeases(ctx, name, now(name).Add(time.Minute), held[name], time.Time{}); err != nil || len(held) != 1 {
			t.Fatalf("renewal by %s: %v, %v", name, held, err)
		}
	}
	// Neither lease has ended: nobody takes those runs.
	for _, name := range []string{"ahead", "true", "behind"} {
		if got := claim(name); len(got) != 0 {
			t.Errorf("the runner whose clock is %s took %d live run(s) of the others (their leases have a minute to go)", name, len(got))
		}
	}

	// Polling: the true runner leads the trigger for a minute.
	if ok, err := stores["true"].LeadPoll(ctx, "r", "true", now("true").Add(time.Minute)); err != nil || !ok {
		t.Fatalf("the true runner's lead: %v, %v", ok, err)
	}
	if ok, err := stores["ahead"].LeadPoll(ctx, "r", "ahead", now("ahead").Add(time.Minute)); err != nil || ok {
		t.Errorf("the runner ahead took the live lead of the trigger (%v, %v): two pollers", ok, err)
	}
	// The runner behind leads another trigger; its lead is live too.
	if ok, err := stores["behind"].LeadPoll(ctx, "q", "behind", now("behind").Add(time.Minute)); err != nil || !ok {
		t.Fatalf("the lead of the runner behind: %v, %v", ok, err)
	}
	if ok, err := stores["true"].LeadPoll(ctx, "q", "true", now("true").Add(time.Minute)); err != nil || ok {
		t.Errorf("the true runner took the live lead of the runner behind (%v, %v): two pollers", ok, err)
	}

	// A lease that has truly ended is taken, whatever the clocks: the true
	// runner's clock, an hour on, sees both runs free.
	runs, err := stores["true"].Claim(ctx, engine.ClaimRequest{Owner: "true", Recipes: []string{"r"}, Limit: 10, Now: now("true").Add(time.Hour), Lease: time.Minute})
	if err != nil || len(runs) != 2 {
		t.Errorf("an hour later, the runs are not taken again: %d, %v", len(runs), err)
	}
}
