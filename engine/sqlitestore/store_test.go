package sqlitestore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

func open(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ev(id, key string) engine.NewEvent {
	return engine.NewEvent{ID: id, Subject: key, OrderingKey: key, Connector: "fake", Data: json.RawMessage(`{"id":"` + id + `"}`)}
}

func str(s string) *string { return &s }

// TestAdvanceIsAtomic: the cursor, the states and the events of a poll
// are stored together or not at all.
func TestAdvanceIsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path)
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: str("c1"), Events: []engine.NewEvent{ev("e1", "k1")}}); err != nil {
		t.Fatal(err)
	}
	// A trigger in the database fails the insert of event "bad", after
	// the cursor, a state and event e2 were written in the transaction.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.event_id = 'bad'
		BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	_, err = s.Advance(ctx, "r", engine.Advance{Cursor: str("c2"),
		States: []engine.SubjectState{{Subject: "k2", State: "v2"}},
		Events: []engine.NewEvent{ev("e2", "k2"), ev("bad", "k3")}})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Advance = %v, want the trigger's error", err)
	}
	if c, _ := s.Cursor(ctx, "r"); c != "c1" {
		t.Errorf("cursor = %q after a failed advance, want c1", c)
	}
	if st, _ := s.PriorStates(ctx, "r", []string{"k2"}); len(st) != 0 {
		t.Errorf("states = %v after a failed advance", st)
	}
	runs, _ := s.ListRuns(ctx, engine.RunFilter{})
	if len(runs) != 1 || runs[0].EventID != "e1" {
		t.Errorf("runs = %+v, want only e1", runs)
	}
}

// TestGroupCommitIsolatesFailures: writes committed in one batch with a
// failing write still succeed.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path)
	defer s.Close()
	ctx := context.Background()
	db, _ := sql.Open("sqlite", path)
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.recipe = 'bad'
		BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recipe := "good"
			if i%10 == 0 {
				recipe = "bad"
			}
			_, errs[i] = s.Advance(ctx, recipe, engine.Advance{Events: []engine.NewEvent{ev(fmt.Sprint(i), fmt.Sprint(i))}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%10 == 0) != (err != nil) {
			t.Errorf("write %d: %v", i, err)
		}
	}
	runs, _ := s.ListRuns(ctx, engine.RunFilter{Limit: 1000})
	if len(runs) != 180 {
		t.Errorf("%d runs, want 180", len(runs))
	}
}

func TestDuplicateEventsAreDropped(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	defer s.Close()
	ctx := context.Background()
	enq, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev("e1", "k"), ev("e1", "k"), ev("e2", "k")}})
	if err != nil {
		t.Fatal(err)
	}
	if enq[0].RunID == 0 || enq[1].RunID != 0 || enq[2].RunID == 0 {
		t.Errorf("enqueued = %+v, want the repeated e1 dropped", enq)
	}
	// Another recipe may see the same event id.
	enq, _ = s.Advance(ctx, "other", engine.Advance{Events: []engine.NewEvent{ev("e1", "k")}})
	if enq[0].RunID == 0 {
		t.Error("an event of another recipe was dropped")
	}
}

func claim(t testing.TB, s *sqlitestore.Store, owner string, n int, now time.Time) []int64 {
	t.Helper()
	runs, err := s.Claim(context.Background(), engine.ClaimRequest{Owner: owner, Recipes: []string{"r"}, Limit: n, Now: now, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestClaimSerializesOrderingKeysAndHonoursLeases(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	defer s.Close()
	ctx := context.Background()
	// runs 1..5: keys a, b, a, c, b
	if _, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev("1", "a"), ev("2", "b"), ev("3", "a"), ev("4", "c"), ev("5", "b")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Advance(ctx, "other", engine.Advance{Events: []engine.NewEvent{ev("x", "z")}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if got := fmt.Sprint(claim(t, s, "w1", 10, now)); got != "[1 2 4]" {
		t.Fatalf("first claim = %s, want one run per key, earliest first: [1 2 4]", got)
	}
	if got := claim(t, s, "w2", 10, now); len(got) != 0 {
		t.Fatalf("second claim = %v, want nothing while 1, 2, 4 run", got)
	}
	done := true
	if err := s.Record(ctx, engine.Lease{RunID: 1, Token: 1}, nil, &engine.Completion{RunID: 1, Status: engine.RunSucceeded, Condition: &done, Finished: now}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(claim(t, s, "w2", 10, now)); got != "[3]" {
		t.Fatalf("after run 1 = %s, want [3]", got)
	}
	// w1 dies while w2 renews its lease: after w1's lease, w2 takes its runs.
	if _, err := s.RenewLeases(ctx, "w2", now.Add(3*time.Minute), []int64{3}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, "w2", 10, now.Add(30*time.Second)); len(got) != 0 {
		t.Fatalf("claim within the lease = %v", got)
	}
	if got := fmt.Sprint(claim(t, s, "w2", 10, now.Add(2*time.Minute))); got != "[2 4]" {
		t.Fatalf("claim after the lease = %s, want [2 4]", got)
	}
	// A restarted owner takes its own runs back at once.
	n, err := s.ReleaseOwner(ctx, "w2")
	if err != nil || n != 3 {
		t.Fatalf("ReleaseOwner = %d, %v; want 3", n, err)
	}
	if got := fmt.Sprint(claim(t, s, "w2", 10, now)); got != "[2 3 4]" {
		t.Fatalf("claim after release = %s", got)
	}
}

func TestJournalEchoesAndReplay(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	defer s.Close()
	ctx := context.Background()
	s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev("1", "a")}})
	claim(t, s, "w", 1, time.Now())
	// Seen before memberflow's write is recorded: only the claim can tell
	// it is an echo.
	early := engine.NewEvent{ID: "e-early", Subject: "member/1", Fingerprint: "f1", Connector: "fake", OrderingKey: "x0", Data: json.RawMessage(`{}`)}
	if enq, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{early}}); err != nil || enq[0].Status != engine.RunQueued {
		t.Fatalf("early event: %+v, %v; want queued", enq, err)
	}
	now := time.Now()
	steps := []engine.StepRecord{
		{RunID: 1, Index: 0, StepID: "one", Action: "c.one", Status: engine.StepSucceeded, Output: json.RawMessage(`{"id":1}`), Attempts: 1, Started: now, Finished: now,
			Wrote: []engine.Echo{{Connector: "fake", Subject: "member/1", Fingerprint: "f1"}}},
		{RunID: 1, Index: 1, StepID: "two", Action: "c.two", Status: engine.StepFailed, Error: "boom", Attempts: 3, Started: now, Finished: now},
	}
	if err := s.Record(ctx, engine.Lease{RunID: 1, Token: 1}, steps, &engine.Completion{RunID: 1, Status: engine.RunDead, Error: "step two failed", Finished: now}); err != nil {
		t.Fatal(err)
	}
	// Events about member/1: its state as written (an echo), another
	// state, and the written state seen through another connector.
	echoes := []engine.NewEvent{
		{ID: "e-f1", Subject: "member/1", Fingerprint: "f1", Connector: "fake", OrderingKey: "x1", Data: json.RawMessage(`{}`)},
		{ID: "e-f2", Subject: "member/1", Fingerprint: "f2", Connector: "fake", OrderingKey: "x2", Data: json.RawMessage(`{}`)},
		{ID: "e-other", Subject: "member/1", Fingerprint: "f1", Connector: "other", OrderingKey: "x3", Data: json.RawMessage(`{}`)},
	}
	enq, err := s.Advance(ctx, "r", engine.Advance{Events: echoes})
	if err != nil {
		t.Fatal(err)
	}
	// The echo already known is suppressed at once, without a claim.
	for i, want := range []string{engine.RunSuppressed, engine.RunQueued, engine.RunQueued} {
		if enq[i].Status != want {
			t.Errorf("event %s: %s at enqueue, want %s", enq[i].EventID, enq[i].Status, want)
		}
	}
	got, err := s.Claim(ctx, engine.ClaimRequest{Owner: "w", Recipes: []string{"r"}, Limit: 10, Now: now, Lease: time.Minute})
	if err != nil || len(got) != 3 {
		t.Fatalf("claim = %v, %v", got, err)
	}
	for i, want := range []bool{true, false, false} { // e-early, e-f2, e-other
		if got[i].Echo != want {
			t.Errorf("event %s: echo = %v, want %v", got[i].EventID, got[i].Echo, want)
		}
	}
	d, err := s.GetRun(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != engine.RunDead || d.FailedStep != "two" || len(d.Steps) != 2 || d.Steps[1].Attempts != 3 {
		t.Errorf("run = %+v", d)
	}
	if _, err := s.GetRun(ctx, 99); err == nil || !strings.Contains(err.Error(), "no such run") {
		t.Errorf("GetRun(99) = %v", err)
	}
	if err := s.Replay(ctx, 99); err == nil {
		t.Error("replaying an unknown run did not fail")
	}
	if err := s.Replay(ctx, 1); err != nil {
		t.Fatal(err)
	}
	d, _ = s.GetRun(ctx, 1)
	if d.Status != engine.RunQueued || len(d.Steps) != 1 || d.Steps[0].StepID != "one" {
		t.Errorf("after replay: %s with steps %+v; want queued, step one kept", d.Status, d.Steps)
	}
}

func TestReopenKeepsStateAndRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path)
	s.Advance(context.Background(), "r", engine.Advance{Cursor: str("c9")})
	s.Close()
	s = open(t, path)
	if c, _ := s.Cursor(context.Background(), "r"); c != "c9" {
		t.Errorf("cursor after reopen = %q", c)
	}
	s.Close()
	db, _ := sql.Open("sqlite", path)
	db.Exec(`UPDATE schema_version SET version = 99`)
	db.Close()
	if _, err := sqlitestore.Open(path, sqlitestore.Options{}); err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Errorf("opening a newer store: %v", err)
	}
}

// TestCheckpointsKeepTheWALSmall: commits never checkpoint (that would
// put an fsync in the commit path); the background checkpointer does, so
// the WAL starts over instead of growing with every write. The same
// writes, in bursts, are made with and without background checkpoints.
func TestCheckpointsKeepTheWALSmall(t *testing.T) {
	walAfterBursts := func(every time.Duration) int64 {
		path := filepath.Join(t.TempDir(), "s.db")
		s, err := sqlitestore.Open(path, sqlitestore.Options{CheckpointEvery: every})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		for burst := range 6 {
			for i := burst * 400; i < (burst+1)*400; i++ {
				if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: str(fmt.Sprint(i)), Events: []engine.NewEvent{ev(fmt.Sprint(i), "k")}}); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(150 * time.Millisecond) // a few checkpoint periods
		}
		st, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	growing := walAfterBursts(-1)
	checkpointed := walAfterBursts(20 * time.Millisecond)
	if checkpointed > growing/2 {
		t.Errorf("WAL of %d bytes with background checkpoints, %d without: it was not checkpointed", checkpointed, growing)
	}
}

// TestSkippedEventsAreCountedNotQueued: an event the condition rejects is
// counted on its page with a sample of what the condition read, and never
// stored as an event or a run; an echo is still recorded as suppressed,
// with the data Encode gives.
func TestSkippedEventsAreCountedNotQueued(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	defer s.Close()
	ctx := context.Background()
	s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev("w", "writer")}})
	claim(t, s, "w", 1, time.Now())
	if err := s.Record(ctx, engine.Lease{RunID: 1, Token: 1}, []engine.StepRecord{{RunID: 1, StepID: "one", Action: "c.one", Status: engine.StepSucceeded,
		Wrote: []engine.Echo{{Connector: "fake", Subject: "member/1", Fingerprint: "f1"}}}}, &engine.Completion{RunID: 1, Status: engine.RunSucceeded}); err != nil {
		t.Fatal(err)
	}
	skip := func(id, fp string) engine.NewEvent {
		return engine.NewEvent{ID: id, Subject: "member/1", Fingerprint: fp, Connector: "fake", OrderingKey: "member/1",
			Skipped: true, Values: json.RawMessage(`{"trigger.status":"lapsed"}`),
			Encode: func() (json.RawMessage, error) { return json.RawMessage(`{"id":"` + id + `"}`), nil }}
	}
	enq, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{skip("echo", "f1"), skip("other", "f2"), ev("queued", "member/1")}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{engine.RunSuppressed, engine.RunSkipped, engine.RunQueued} {
		if enq[i].Status != want || (enq[i].RunID == 0) != (want == engine.RunSkipped) {
			t.Errorf("event %s: %+v, want %s (a run only when not skipped)", enq[i].EventID, enq[i], want)
		}
	}
	echo, err := s.GetRun(ctx, enq[0].RunID)
	if err != nil || string(echo.Event) != `{"id":"echo"}` {
		t.Fatalf("the suppressed echo: %+v %v", echo, err)
	}
	runs, _ := s.ListRuns(ctx, engine.RunFilter{})
	if len(runs) != 3 {
		t.Errorf("%d runs, want the writer, the echo and the queued one: %+v", len(runs), runs)
	}
	pages, err := s.ListSkips(ctx, engine.RunFilter{Recipe: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 1 || pages[0].Count != 1 || len(pages[0].Sample) != 1 || pages[0].Sample[0].EventID != "other" ||
		string(pages[0].Sample[0].Values) != `{"trigger.status":"lapsed"}` || pages[0].Created.IsZero() {
		t.Errorf("skip pages: %+v", pages)
	}
	// Only the queued one is claimable, and the finished ones do not hold
	// its ordering key.
	if got := fmt.Sprint(claim(t, s, "w", 10, time.Now())); got != fmt.Sprint([]int64{enq[2].RunID}) {
		t.Errorf("claimed %s, want only run %d", got, enq[2].RunID)
	}
}

// TestSkipsCostAboutNothing: a page of skipped events is one row whatever
// its size, with a bounded sample; the store does not grow per skip.
func TestSkipsCostAboutNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path)
	defer s.Close()
	ctx := context.Background()
	const pages, perPage = 20, 1000
	for p := 0; p < pages; p++ {
		page := make([]engine.NewEvent, perPage)
		for i := range page {
			id := fmt.Sprintf("e%d-%d", p, i)
			page[i] = engine.NewEvent{ID: id, Subject: "line/" + id, Fingerprint: "fp" + id, Connector: "file", Skipped: true}
			if i < engine.SkipSample+2 {
				page[i].Values = json.RawMessage(`{"trigger.score":12}`)
			}
		}
		if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: str(fmt.Sprint(p)), Events: page}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListSkips(ctx, engine.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, p := range got {
		total += p.Count
		if len(p.Sample) != engine.SkipSample {
			t.Fatalf("page %d keeps %d samples, want %d", p.ID, len(p.Sample), engine.SkipSample)
		}
	}
	if len(got) != pages || total != pages*perPage {
		t.Fatalf("%d pages counting %d skips, want %d and %d", len(got), total, pages, pages*perPage)
	}
	if runs, _ := s.ListRuns(ctx, engine.RunFilter{Limit: 10}); len(runs) != 0 {
		t.Fatalf("skipped events made runs: %+v", runs)
	}
}
