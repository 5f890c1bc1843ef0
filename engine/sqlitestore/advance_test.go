package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// TestRedeliveredEventsMakeNoSecondRun: an event seen before, in an
// earlier page or earlier in the same page, is neither stored again nor
// run, claimed or not; each new event's run is its own (its event ID and
// data), whatever was passed over before it in the page.
func TestRedeliveredEventsMakeNoSecondRun(t *testing.T) {
	for _, claimed := range []bool{false, true} {
		name := "queued"
		if claimed {
			name = "claimed with the page"
		}
		t.Run(name, func(t *testing.T) {
			s := open(t, filepath.Join(t.TempDir(), "s.db"))
			defer s.Close()
			ctx := context.Background()
			advance := func(ids ...string) []engine.Enqueued {
				t.Helper()
				evs := make([]engine.NewEvent, len(ids))
				for i, id := range ids {
					evs[i] = ev(id, "key-"+id)
				}
				adv := engine.Advance{Events: evs}
				if claimed {
					adv.Claim = &engine.ClaimRequest{Owner: "w", Now: time.Now(), Lease: time.Minute}
				}
				enq, err := s.Advance(ctx, "r", adv)
				if err != nil {
					t.Fatal(err)
				}
				return enq
			}
			advance("e1", "e2")
			// e1 and e2 again, e3 twice in the page, among new events.
			enq := advance("e3", "e1", "e3", "e4", "e2", "e5")
			want := []bool{true, false, false, true, false, true} // a new run
			runs := 0
			for i, q := range enq {
				if got := q.RunID != 0; got != want[i] {
					t.Errorf("event %d (%s): run %d, want a new run: %v", i, q.EventID, q.RunID, want[i])
					continue
				}
				if q.RunID == 0 {
					if q.Run != nil || q.Status != "" {
						t.Errorf("event %d (%s), seen before: %+v, want no status and no claimed run", i, q.EventID, q)
					}
					continue
				}
				runs++
				if claimed && (q.Run == nil || q.Run.EventID != q.EventID || string(q.Run.Data) != `{"id":"`+q.EventID+`"}`) {
					t.Errorf("event %d (%s): claimed run %+v, want the event's", i, q.EventID, q.Run)
				}
				d, err := s.GetRun(ctx, q.RunID)
				if err != nil {
					t.Fatal(err)
				}
				if d.EventID != q.EventID || string(d.Event) != `{"id":"`+q.EventID+`"}` {
					t.Errorf("run %d of event %s reads event %s, data %s", q.RunID, q.EventID, d.EventID, d.Event)
				}
			}
			all, err := s.ListRuns(ctx, engine.RunFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 2+runs {
				t.Errorf("%d runs in the store, want %d", len(all), 2+runs)
			}
			// The next page after the gaps: its event and run are its own.
			enq = advance("e6")
			if d, err := s.GetRun(ctx, enq[0].RunID); err != nil || d.EventID != "e6" {
				t.Errorf("the next page's run reads %+v, %v; want event e6", d, err)
			}
		})
	}
}

// TestKeysHeldByAnotherRunnersPageClaim: a key that a page claim holds,
// of this runner or of another one on the same store, gets no run claimed
// with a later page until the claim's run of it is recorded, whether the
// key needs escaping in JSON or not; the claim's other keys stay held.
func TestKeysHeldByAnotherRunnersPageClaim(t *testing.T) {
	for _, prefix := range []string{"member/", `"<é>\`} {
		t.Run(prefix, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "s.db")
			a, b := open(t, path), open(t, path)
			defer a.Close()
			defer b.Close()
			k := func(n string) string { return prefix + n }
			advance := func(s *sqlitestore.Store, owner string, id, key string) engine.Enqueued {
				t.Helper()
				enq, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev(id, key)},
					Claim: &engine.ClaimRequest{Owner: owner, Now: time.Now(), Lease: time.Minute}})
				if err != nil {
					t.Fatal(err)
				}
				return enq[0]
			}
			enq, err := a.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev("a1", k("1")), ev("a2", k("2")), ev("a3", k("3")), ev("a4", k("4"))},
				Claim: &engine.ClaimRequest{Owner: "a", Now: time.Now(), Lease: time.Minute}})
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range enq {
				if q.Run == nil {
					t.Fatalf("runner a's page: %+v, want every run claimed", enq)
				}
			}
			// Runner b's advances read a's claim once, then from what they
			// remember of it.
			if q := advance(b, "b", "b9", k("9")); q.Run == nil {
				t.Errorf("a key no claim holds: %+v, want the run claimed", q)
			}
			if q := advance(b, "b", "b1", k("1")); q.Run != nil || q.Status != engine.RunQueued {
				t.Errorf("a key runner a's page claim holds: %+v, want the run queued, not claimed", q)
			}
			// Once a's run of key 2 is recorded, the claim holds key 2 no more.
			if err := a.Record(ctx, enq[1].Run.Lease(), nil, &engine.Completion{RunID: enq[1].RunID, Status: engine.RunSucceeded, Finished: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if q := advance(b, "b", "b2", k("2")); q.Run == nil {
				t.Errorf("a key whose claimed run was recorded: %+v, want the run claimed", q)
			}
			if q := advance(b, "b", "b3", k("3")); q.Run != nil {
				t.Errorf("a key runner a's page claim still holds: %+v, want the run queued, not claimed", q)
			}
			// The claimer's own later page.
			if q := advance(a, "a", "a4bis", k("4")); q.Run != nil {
				t.Errorf("a key the runner's own page claim holds: %+v, want the run queued, not claimed", q)
			}
		})
	}
}

// TestKeysOfQueuedRunsAreHeld: a key with a run queued gets no run
// claimed with a page, whether the advance reads the keys of all the
// runs queued or running (a page of many keys, few such runs), or looks
// the page's keys up (a page of few keys, or many such runs: then however
// many of them share a key).
func TestKeysOfQueuedRunsAreHeld(t *testing.T) {
	repeat := func(key string, n int) []string {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = key
		}
		return keys
	}
	for _, tc := range []struct {
		name   string
		queued []string // the keys of the runs queued before the page
		fresh  int      // the page's other keys
	}{
		{"a page of few keys", []string{"k"}, 1},
		{"a page of many keys, few runs queued", []string{"k"}, 40},
		{"a page of many keys, many runs queued", repeat("k", 300), 40},
		// Read in key order, the first hundreds are all of key a.
		{"a page of many keys, many runs queued, the first of another key", append(repeat("a", 300), "k"), 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, filepath.Join(t.TempDir(), "s.db"))
			defer s.Close()
			var evs []engine.NewEvent
			for i, key := range tc.queued {
				evs = append(evs, ev(fmt.Sprint("q", i), key))
			}
			if _, err := s.Advance(ctx, "r", engine.Advance{Events: evs}); err != nil {
				t.Fatal(err)
			}
			page := []engine.NewEvent{ev("p", "k")}
			for i := range tc.fresh {
				page = append(page, ev(fmt.Sprint("p", i), fmt.Sprint("fresh", i)))
			}
			enq, err := s.Advance(ctx, "r", engine.Advance{Events: page,
				Claim: &engine.ClaimRequest{Owner: "w", Now: time.Now(), Lease: time.Minute}})
			if err != nil {
				t.Fatal(err)
			}
			if enq[0].Run != nil || enq[0].Status != engine.RunQueued {
				t.Errorf("a key with a run queued: %+v, want the run queued, not claimed", enq[0])
			}
			for _, q := range enq[1:] {
				if q.Run == nil {
					t.Errorf("a key with no run: %+v, want the run claimed", q)
				}
			}
		})
	}
}
