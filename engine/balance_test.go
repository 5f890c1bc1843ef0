package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// pollOnlyRecipes are n polled recipes named prefix-1…n that read the
// members and run nothing: only their poll leads matter.
func pollOnlyRecipes(t *testing.T, names ...string) []*recipes.Recipe {
	var rs []*recipes.Recipe
	for _, name := range names {
		r := issueRecipe(t)
		r.Name, r.File = name, name+".yaml"
		r.When = mustExpr(t, `false`)
		rs = append(rs, r)
	}
	return rs
}

// pollLeads lists which triggers each runner of the store polls.
func pollLeads(t *testing.T, store engine.Store) map[string][]string {
	t.Helper()
	runners, err := store.(engine.RunnerLister).Runners(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, r := range runners {
		p := slices.Clone(r.Polling)
		slices.Sort(p)
		out[r.Owner] = p
	}
	return out
}

// waitForLeads waits until ok holds for the store's poll leads, or fails
// with the last ones seen.
func waitForLeads(t *testing.T, store engine.Store, within time.Duration, what string, ok func(map[string][]string) bool) {
	t.Helper()
	var last map[string][]string
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if last = pollLeads(t, store); ok(last) {
			return
		}
	}
	t.Fatalf("%s: not within %v; the runners poll %v", what, within, last)
}

// balanceLease is the poll lease of the balancing tests: a second, or
// three under the race detector, where a renewal on a loaded machine
// (load 10 on 2 cores) was seen to come later than two thirds of a second
// and let a lead lapse to the other runner.
func balanceLease() time.Duration {
	if raceDetector {
		return 3 * time.Second
	}
	return time.Second
}

// TestPollingIsSpreadOverTheRunners: a runner that started first leads
// every trigger; a second runner that joins gets half of them within a
// few leases (a page's runs run where it is polled, so the work follows).
// Before, the first runner kept all four for its whole life.
func TestPollingIsSpreadOverTheRunners(t *testing.T) {
	for kind, open := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) {
			// Long enough that a loaded machine (the race detector, a
			// busy CI) renews each lead in time: only balancing moves them.
			lease := balanceLease()
			names := []string{"poll-1", "poll-2", "poll-3", "poll-4"}
			svc := newFakeService(10, everyOther)
			a := newEngine(t, open(t), svc, pollOnlyRecipes(t, names...), func(o *engine.Options) { o.Owner = "runner-a"; o.Lease = lease })
			defer running(t, a)()
			watch := open(t)
			waitForLeads(t, watch, 5*time.Second, "runner-a leads all four", func(l map[string][]string) bool {
				return len(l["runner-a"]) == 4
			})
			b := newEngine(t, open(t), svc, pollOnlyRecipes(t, names...), func(o *engine.Options) { o.Owner = "runner-b"; o.Lease = lease })
			defer running(t, b)()
			waitForLeads(t, watch, 20*lease, "two triggers each", func(l map[string][]string) bool {
				return len(l["runner-a"]) == 2 && len(l["runner-b"]) == 2
			})
			// And it stays so: nothing moves once balanced.
			before := pollLeads(t, watch)
			time.Sleep(3 * lease)
			if after := pollLeads(t, watch); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("the leads moved once balanced: %v, then %v", before, after)
			}
		})
	}
}

// TestAHandedOverTriggerNoOtherRunnerPollsIsKept: the second runner loads
// one recipe of the first's three. The first hands leads over; those the
// second cannot take come back to it after a lease and stay, so every
// trigger is polled in the end and the leads settle.
func TestAHandedOverTriggerNoOtherRunnerPollsIsKept(t *testing.T) {
	lease := balanceLease()
	path := tempDB(t)
	svc := newFakeService(10, everyOther)
	storeA := openStore(t, path)
	defer storeA.Close()
	a := newEngine(t, storeA, svc, pollOnlyRecipes(t, "only-a-1", "only-a-2", "shared"), func(o *engine.Options) { o.Owner = "runner-a"; o.Lease = lease })
	defer running(t, a)()
	waitForLeads(t, storeA, 5*time.Second, "runner-a leads all three", func(l map[string][]string) bool {
		return len(l["runner-a"]) == 3
	})
	storeB := openStore(t, path)
	defer storeB.Close()
	b := newEngine(t, storeB, svc, pollOnlyRecipes(t, "shared"), func(o *engine.Options) { o.Owner = "runner-b"; o.Lease = lease })
	defer running(t, b)()
	settled := func(l map[string][]string) bool {
		return strings.Join(l["runner-a"], ",") == "only-a-1,only-a-2" && strings.Join(l["runner-b"], ",") == "shared"
	}
	waitForLeads(t, storeA, 30*lease, "runner-b polls shared, runner-a the other two", settled)
	time.Sleep(4 * lease)
	if l := pollLeads(t, storeA); !settled(l) {
		t.Errorf("the leads did not stay settled: %v", l)
	}
}
