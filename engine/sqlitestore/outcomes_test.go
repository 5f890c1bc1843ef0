package sqlitestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// TestOutcomeRowsReadBackAsWritten: every kind of value a run's or a
// step's row holds reads back with its Go type, so that writing a page
// outcome out binds what the journal would have bound.
func TestOutcomeRowsReadBackAsWritten(t *testing.T) {
	final := func(id int64, extra ...any) []any {
		row := []any{id, int64(7), "recipe", "okey", "succeeded", nil, true, []byte(`{"a":1}`), int64(-5), int64(1764118800123456789),
			nil, nil, int64(1), int64(1764118800000000000), "", "v1"}
		copy(row[5:], extra)
		return row
	}
	step := func(run int64, in, out []byte, errText any) []any {
		return []any{run, int64(0), "issue", "accredible.create", "succeeded", in, out, errText, int64(1), nil, int64(42)}
	}
	for _, tc := range []struct {
		name string
		runs []outcomeRun
	}{
		{"no runs", []outcomeRun{}},
		{"a run without steps", []outcomeRun{{final: final(1), steps: [][]any{}}}},
		{"nil and empty blobs, text with a newline and NUL", []outcomeRun{{final: final(2, "an error\nline \x00", false, []byte(nil)),
			steps: [][]any{step(2, []byte{}, []byte(nil), "é ✓"), step(2, []byte(`{"k":"v"}`), []byte(`[1,2]`), nil)}}}},
		{"several runs", []outcomeRun{{final: final(3), steps: [][]any{step(3, nil, nil, nil)}}, {final: final(1 << 40), steps: [][]any{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeOutcomes(nil, tc.runs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeOutcomes(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.runs) {
				t.Fatalf("read back\n%#v\nwant\n%#v", got, tc.runs)
			}
			for n := range len(b) {
				if _, err := decodeOutcomes(b[:n]); err == nil {
					t.Fatalf("%d of %d bytes decoded without an error", n, len(b))
				}
			}
		})
	}
	if _, err := encodeOutcomes(nil, []outcomeRun{{final: final(1, 1.5)}}); err == nil || !strings.Contains(err.Error(), "float64") {
		t.Errorf("a float was kept: %v", err)
	}
	if _, err := encodeOutcomes(nil, []outcomeRun{{final: final(1)[:3]}}); err == nil {
		t.Error("a short row was kept")
	}
}

// FuzzDecodeOutcomes: whatever a page outcome's bytes hold, reading them
// returns runs or an error, never a panic, and what it returns encodes to
// bytes that read back the same.
func FuzzDecodeOutcomes(f *testing.F) {
	b, _ := encodeOutcomes(nil, []outcomeRun{{final: []any{int64(1), int64(2), "r", "k", "succeeded", nil, true, []byte(nil), int64(3), int64(4), nil, nil, int64(1), int64(3), "", nil},
		steps: [][]any{{int64(1), int64(0), "s", "a.b", "succeeded", []byte(`{}`), []byte{}, nil, int64(1), int64(3), int64(4)}}}})
	f.Add(b)
	f.Add([]byte{0})
	f.Add([]byte{1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		runs, err := decodeOutcomes(b)
		if err != nil {
			return
		}
		again, err := encodeOutcomes(nil, runs)
		if err != nil {
			t.Fatalf("decoded runs do not encode: %v", err)
		}
		back, err := decodeOutcomes(again)
		if err != nil || !reflect.DeepEqual(back, runs) {
			t.Fatalf("re-encoded runs read back as %#v, %v; want %#v", back, err, runs)
		}
	})
}

// pagedRunsScenario claims a page of events in s and ends its runs in two
// journal writes (a skipped run, runs with steps, errors, condition
// values and a version), then a third for the last run. It returns the
// runs' IDs.
func pagedRunsScenario(t *testing.T, s *Store, now time.Time) []int64 {
	t.Helper()
	ctx := context.Background()
	var evs []engine.NewEvent
	for i := range 5 {
		id := fmt.Sprintf("e%d", i)
		ev := engine.NewEvent{ID: id, Subject: "m/" + id, Connector: "c", OrderingKey: "k" + id, Data: json.RawMessage(`{"n":` + fmt.Sprint(i) + `}`)}
		if i != 1 {
			ev.Intent = &engine.StepRecord{Index: 0, StepID: "issue", Action: "c.write", Status: engine.StepStarted,
				Input: json.RawMessage(`{"member":"` + id + `"}`), Attempts: 1, Started: now}
		}
		evs = append(evs, ev)
	}
	enq, err := s.Advance(ctx, "r", engine.Advance{Events: evs, Claim: &engine.ClaimRequest{Owner: "w1", Now: now, Lease: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	end := func(k int, status string, cond *bool, steps ...engine.StepRecord) engine.JournalWrite {
		q := enq[k]
		for i := range steps {
			steps[i].RunID = q.RunID
		}
		return engine.JournalWrite{Lease: q.Run.Lease(), Steps: steps,
			Fin: &engine.Completion{RunID: q.RunID, Status: status, Condition: cond, Values: json.RawMessage(`{"trigger.n":` + fmt.Sprint(k) + `}`),
				Finished: now.Add(time.Duration(k) * time.Millisecond), Version: "v" + fmt.Sprint(k)}}
	}
	done := func(out string) engine.StepRecord {
		return engine.StepRecord{Index: 0, StepID: "issue", Action: "c.write", Status: engine.StepSucceeded, Input: json.RawMessage(`{"member":"x"}`),
			Output: json.RawMessage(out), Attempts: 1, Started: now, Finished: now.Add(time.Millisecond)}
	}
	second := engine.StepRecord{Index: 1, StepID: "note", Action: "c.note", Status: engine.StepSkipped, Error: "nothing to note", Attempts: 0}
	for _, batch := range [][]engine.JournalWrite{
		{end(0, engine.RunSucceeded, &yes, done(`{"id":"cred-0"}`), second), end(1, engine.RunSkipped, &no), end(3, engine.RunSucceeded, &yes)},
		{end(2, engine.RunSucceeded, &yes, done(`{"id":"cred-2"}`)), end(4, engine.RunSuppressed, nil)},
	} {
		for i, err := range s.RecordMany(ctx, batch) {
			if err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
	}
	ids := make([]int64, len(enq))
	for i, q := range enq {
		ids[i] = q.RunID
	}
	return ids
}

// dumpJournal is every row of runs and steps, each value with its type
// (a run's created and started times are the advance's clock: their type
// and equality).
func dumpJournal(t *testing.T, s *Store) string {
	t.Helper()
	var b bytes.Buffer
	for _, q := range []string{
		`SELECT id, typeof(event), event, recipe, okey, status, attempts, typeof(owner), typeof(lease_until), quote(error),
			quote(condition), quote(cond_values), typeof(created), started = created, quote(finished), chain, quote(version) FROM runs ORDER BY id`,
		`SELECT run, idx, step_id, action, status, quote(input), quote(output), quote(error), attempts, quote(started), quote(finished) FROM steps ORDER BY run, idx`,
	} {
		rows, err := s.r.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%v|", v)
			}
			b.WriteByte('\n')
		}
		rows.Close()
	}
	return b.String()
}

// TestPageOutcomesAreWrittenOutAsTheRowsTheyStandFor: the same page runs
// ended in the same writes leave, once read, the same rows of runs and
// steps, value for value and type for type, whether the store kept them
// as page outcomes or wrote rows at once.
func TestPageOutcomesAreWrittenOutAsTheRowsTheyStandFor(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	var dumps [2]string
	for i, rowsOnly := range []bool{true, false} {
		s, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.rowsOnly = rowsOnly
		pagedRunsScenario(t, s, now)
		var outcomes int
		if err := s.r.QueryRow(`SELECT count(*) FROM page_outcomes`).Scan(&outcomes); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 2}[rowsOnly]; outcomes != want {
			t.Fatalf("rows only %v: %d page outcomes, want %d", rowsOnly, outcomes, want)
		}
		runs, err := s.ListRuns(ctx, engine.RunFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 5 {
			t.Fatalf("rows only %v: %d runs listed, want 5", rowsOnly, len(runs))
		}
		dumps[i] = dumpJournal(t, s)
		s.Close()
	}
	if dumps[0] != dumps[1] {
		t.Fatalf("written as rows at once:\n%s\nwritten out from page outcomes:\n%s", dumps[0], dumps[1])
	}
	if !strings.Contains(dumps[0], fmt.Sprintf("%X", "cred-2")) || strings.Count(dumps[0], "\n") != 5+5 {
		t.Fatalf("the journal does not hold the scenario's 5 runs and 5 steps (3 and 2 intents):\n%s", dumps[0])
	}
}

// TestARunEndedInAPageOutcomeHoldsNoKey: a run that ended in a page
// outcome while its claim holds other runs no longer holds its ordering
// key (a next event of the key is claimed at once), and is neither
// counted running nor written out as running when its claim is.
func TestARunEndedInAPageOutcomeHoldsNoKey(t *testing.T) {
	ctx := context.Background()
	s := tempStore(t)
	now := time.Now()
	page := func(ids ...string) []engine.NewEvent {
		var evs []engine.NewEvent
		for _, id := range ids {
			evs = append(evs, engine.NewEvent{ID: id, Subject: id, Connector: "c", OrderingKey: "key-" + id[:1], Data: json.RawMessage(`{}`)})
		}
		return evs
	}
	claim := &engine.ClaimRequest{Owner: "w1", Now: now, Lease: time.Minute}
	first, err := s.Advance(ctx, "r", engine.Advance{Events: page("a1", "b1"), Claim: claim})
	if err != nil {
		t.Fatal(err)
	}
	a := first[0]
	if errs := s.RecordMany(ctx, []engine.JournalWrite{{Lease: a.Run.Lease(), Fin: &engine.Completion{RunID: a.RunID, Status: engine.RunSucceeded, Finished: now}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	st, err := s.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Running != 1 {
		t.Fatalf("%d runs counted running; want 1 (b1's)", st.Running)
	}
	second, err := s.Advance(ctx, "r", engine.Advance{Events: page("a2", "b2"), Claim: claim})
	if err != nil {
		t.Fatal(err)
	}
	if second[0].Run == nil {
		t.Error("a2 was not claimed: a1, ended, still holds key-a")
	}
	if second[1].Run != nil {
		t.Error("b2 was claimed while b1 of its key runs")
	}
	// A release of the owner writes its claims out: b1 and a2 as
	// running, a1 as it ended.
	if _, err := s.ReleaseOwner(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	runs, err := s.ListRuns(ctx, engine.RunFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	for _, r := range runs {
		got[r.ID] = r.Status
	}
	if got[a.RunID] != engine.RunSucceeded || len(got) != 4 {
		t.Fatalf("runs after the release: %v; want a1 (%d) succeeded and 4 runs", got, a.RunID)
	}
}

// TestRunIDsAfterAPageOutcomeAreNew: the IDs of runs kept in a page
// outcome are never given again, also by a store opened anew, while its
// claim is gone and no row of runs holds them.
func TestRunIDsAfterAPageOutcomeAreNew(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ids := pagedRunsScenario(t, s, now)
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var rows int
	if err := s.r.QueryRow(`SELECT count(*) FROM runs`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows of runs, %v; want the scenario's runs in page outcomes only", rows, err)
	}
	enq, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{{ID: "later", Subject: "x", Connector: "c", Data: json.RawMessage(`{}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	if last := ids[len(ids)-1]; enq[0].RunID <= last {
		t.Fatalf("the next run got ID %d; the page outcome holds runs up to %d", enq[0].RunID, last)
	}
	runs, err := s.ListRuns(ctx, engine.RunFilter{Limit: 10})
	if err != nil || len(runs) != 6 {
		t.Fatalf("%d runs listed, %v; want 6", len(runs), err)
	}
}

// TestPruneTakesPageOutcomesWhole: a prune drops the page outcomes whose
// runs all ended before its cut without writing them out (the store does
// not grow), clears their events' data, and writes out one that straddles
// the cut, pruning its older runs as rows and keeping the newer.
func TestPruneTakesPageOutcomesWhole(t *testing.T) {
	ctx := context.Background()
	s := tempStore(t)
	now := time.Now()
	// Outcome 1: runs 0, 1 and 3 ended at now+0, 1 and 3 ms; outcome 2:
	// runs 2 and 4 at +2 and +4 ms.
	pagedRunsScenario(t, s, now)
	res, err := s.Prune(ctx, engine.Prune{Before: now.Add(2500 * time.Microsecond)})
	if err != nil {
		t.Fatal(err)
	}
	// Outcome 1 straddles the cut: written out, runs 0 and 1 pruned as
	// rows (one step each), 3 kept; outcome 2 straddles it too: run 2
	// pruned, 4 kept.
	if res.Runs != 3 || res.Steps != 3 {
		t.Fatalf("pruned %d runs, %d steps; want 3 runs (two rows ended before the cut and one) and their 3 steps", res.Runs, res.Steps)
	}
	res, err = s.Prune(ctx, engine.Prune{Before: now.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Runs != 2 {
		t.Fatalf("second prune: %d runs; want the 2 left", res.Runs)
	}

	// Whole outcomes: nothing written out.
	s2 := tempStore(t)
	pagedRunsScenario(t, s2, now)
	res, err = s2.Prune(ctx, engine.Prune{Before: now.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Runs != 5 || res.Steps != 5 || res.Events != 5 {
		t.Fatalf("pruned %d runs, %d steps, %d events' data; want 5, 5 (two intents, two steps and a second step), 5", res.Runs, res.Steps, res.Events)
	}
	var rows, outcomes, kept int
	if err := s2.r.QueryRow(`SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM page_outcomes), (SELECT count(*) FROM events WHERE length(data) > 0)`).Scan(&rows, &outcomes, &kept); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || outcomes != 0 || kept != 0 {
		t.Fatalf("after the prune: %d rows of runs, %d page outcomes, %d events with data; want none", rows, outcomes, kept)
	}
}

// TestAReplayOfARunInAPageOutcomeSaysItIsNotDead: a run kept in a page
// outcome is a run: replaying it is refused as for any run that is not a
// dead letter, not reported missing.
func TestAReplayOfARunInAPageOutcomeSaysItIsNotDead(t *testing.T) {
	s := tempStore(t)
	ids := pagedRunsScenario(t, s, time.Now())
	err := s.Replay(context.Background(), ids[0])
	if err == nil || !strings.Contains(err.Error(), "not dead") {
		t.Fatalf("replay of run %d: %v; want it refused as not dead", ids[0], err)
	}
}

// TestNextRunIDsDoNotScanPageOutcomes: the last run ID of the page
// outcomes, read at every advance, comes from an index: a runner nobody
// reads keeps every page's outcome, and a scan of them at each advance
// grew with the store (138 ms at 200,000 outcomes).
func TestNextRunIDsDoNotScanPageOutcomes(t *testing.T) {
	s := tempStore(t)
	rows, err := s.r.Query(`EXPLAIN QUERY PLAN SELECT coalesce(max(last_run), 0) FROM page_outcomes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "\n")
	}
	if !strings.Contains(plan.String(), "INDEX page_outcomes_last_run") {
		t.Fatalf("the last run of the page outcomes is read by\n%s", plan.String())
	}
}

// tempStore opens a store in a fresh folder, closed when t ends.
func tempStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
