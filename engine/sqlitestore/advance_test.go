package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
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
