package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// testVersions: a store that keeps recipe versions (engine.Versions)
// remembers each version once, records the version a run ran with at its
// outcome (not when it is given back), keeps every attempt a replay ends
// with its journal, oldest first, forgets the pin on Unpin, and drops the
// attempts of the runs Prune deletes. A store without the ability is
// skipped.
func testVersions(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	vs, ok := s.(engine.Versions)
	if !ok {
		t.Skip("the store keeps no recipe versions (engine.Versions)")
	}

	// Versions: unknown, saved, seen by another runner, saved again.
	if v, err := vs.LoadVersion(ctx, "r", "h1"); !errors.Is(err, engine.ErrNoVersion) {
		t.Fatalf("LoadVersion of an unknown version = %+v, %v; want ErrNoVersion", v, err)
	}
	seen := time.Unix(1700000000, 123456789).UTC()
	v1 := engine.RecipeVersion{Recipe: "r", Hash: "h1", Revision: "abc123", File: "recipes/r.yaml", Source: []byte("name: r\nv: 1\n"), Seen: seen}
	if err := vs.SaveVersion(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if err := vs.SaveVersion(ctx, engine.RecipeVersion{Recipe: "r", Hash: "h2", Source: []byte("name: r\nv: 2\n")}); err != nil {
		t.Fatal(err)
	}
	other := open(t).(engine.Versions)
	sameVersion := func(what string, want engine.RecipeVersion) {
		t.Helper()
		got, err := other.LoadVersion(ctx, want.Recipe, want.Hash)
		if err != nil {
			t.Fatalf("%s: LoadVersion(%s, %s): %v", what, want.Recipe, want.Hash, err)
		}
		if got.Recipe != want.Recipe || got.Hash != want.Hash || got.Revision != want.Revision || got.File != want.File ||
			string(got.Source) != string(want.Source) || !got.Seen.Equal(want.Seen) {
			t.Fatalf("%s: loaded %+v (source %q), want %+v (source %q)", what, got, got.Source, want, want.Source)
		}
	}
	sameVersion("saved", v1)
	// Saving a version again keeps what the store has: its source, when
	// it was first seen, and a revision the new save does not know.
	again := engine.RecipeVersion{Recipe: "r", Hash: "h1", Source: []byte("something else"), Seen: seen.Add(time.Hour)}
	if err := vs.SaveVersion(ctx, again); err != nil {
		t.Fatalf("saving a version again: %v", err)
	}
	sameVersion("saved again", v1)
	if v2, err := vs.LoadVersion(ctx, "r", "h2"); err != nil || string(v2.Source) != "name: r\nv: 2\n" || v2.Seen.IsZero() {
		t.Fatalf("a version saved without Seen = %+v, %v; want its source and a time", v2, err)
	}
	if _, err := vs.LoadVersion(ctx, "other", "h1"); !errors.Is(err, engine.ErrNoVersion) {
		t.Fatalf("a hash of recipe r under recipe other: %v, want ErrNoVersion (versions are per recipe)", err)
	}

	runVersion := func(what string, id int64, want string) {
		t.Helper()
		got, err := other.RunVersion(ctx, id)
		if err != nil || got != want {
			t.Fatalf("%s: RunVersion(%d) = %q, %v; want %q", what, id, got, err, want)
		}
	}
	if _, err := vs.RunVersion(ctx, 999999); !errors.Is(err, engine.ErrNoRun) {
		t.Fatalf("RunVersion of an unknown run: %v, want ErrNoRun", err)
	}

	advance(t, s, "r", ev("flaky", "a"), ev("given-back", "b"), ev("doomed", "c"))
	now := time.Unix(1700000100, 5).UTC()
	runs := claim(t, s, "w", 3, now)
	if len(runs) != 3 {
		t.Fatalf("claimed %s", eventIDs(runs))
	}
	flaky, back, doomed := runs[0], runs[1], runs[2]
	runVersion("claimed, before any outcome", flaky.ID, "")

	// A journal line is not an outcome; a give-back is not one either.
	one := engine.StepRecord{RunID: flaky.ID, Index: 0, StepID: "one", Action: "c.one", Status: engine.StepSucceeded, Input: json.RawMessage(`{"a":1}`),
		Output: json.RawMessage(`{"id":1}`), Attempts: 1, Started: now, Finished: now}
	if err := s.Record(ctx, flaky.Lease(), []engine.StepRecord{one}, nil); err != nil {
		t.Fatal(err)
	}
	runVersion("after a journal line", flaky.ID, "")
	if err := s.Record(ctx, back.Lease(), nil, &engine.Completion{RunID: back.ID, Status: engine.RunQueued, Version: "h1"}); err != nil {
		t.Fatal(err)
	}
	runVersion("given back", back.ID, "")

	// The outcome records the version that ran.
	two := engine.StepRecord{RunID: flaky.ID, Index: 1, StepID: "two", Action: "c.two", Status: engine.StepFailed, Error: "boom",
		Output: json.RawMessage(`{"status":422}`), Attempts: 3, Started: now, Finished: now.Add(time.Second)}
	died := now.Add(2 * time.Second)
	if err := s.Record(ctx, flaky.Lease(), []engine.StepRecord{two}, &engine.Completion{RunID: flaky.ID, Status: engine.RunDead,
		Error: "step two failed", Finished: died, Version: "h1"}); err != nil {
		t.Fatal(err)
	}
	runVersion("dead", flaky.ID, "h1")
	attempts := func(what string, id int64, want int) []engine.Attempt {
		t.Helper()
		got, err := other.Attempts(ctx, id)
		if err != nil || len(got) != want {
			t.Fatalf("%s: Attempts(%d) = %+v, %v; want %d", what, id, got, err, want)
		}
		return got
	}
	attempts("before any replay", flaky.ID, 0)

	// A replay keeps the failed attempt, whole, and the pin.
	if err := s.Replay(ctx, flaky.ID); err != nil {
		t.Fatal(err)
	}
	runVersion("replayed", flaky.ID, "h1")
	a := attempts("replayed once", flaky.ID, 1)[0]
	if a.N != 1 || a.Version != "h1" || a.Status != engine.RunDead || a.Error != "step two failed" || !a.Finished.Equal(died) {
		t.Fatalf("the failed attempt = %+v, want attempt 1 of version h1, dead with its error, finished %v", a, died)
	}
	if got, want := stepLines(a.Steps), stepLines([]engine.StepRecord{one, two}); got != want {
		t.Fatalf("the failed attempt's journal:\n got %s\nwant %s", got, want)
	}
	if d := run(t, s, flaky.ID); len(d.Steps) != 1 || d.Steps[0].StepID != "one" {
		t.Fatalf("the replayed run's own journal = %+v, want the failed step forgotten", d.Steps)
	}

	// The second attempt fails with another version; its replay is
	// attempt 2, after attempt 1.
	re := claim(t, s, "w", 2, now, "r")
	if len(re) != 2 || re[0].ID != flaky.ID || re[0].Attempts != 2 || re[1].ID != back.ID {
		t.Fatalf("claimed %s, want the replayed run, then the one given back", eventIDs(re))
	}
	finish(t, s, re[1], engine.RunSucceeded)
	three := engine.StepRecord{RunID: flaky.ID, Index: 1, StepID: "two", Action: "c.two", Status: engine.StepFailed, Error: "boom again", Attempts: 1, Started: now, Finished: now}
	if err := s.Record(ctx, re[0].Lease(), []engine.StepRecord{three}, &engine.Completion{RunID: flaky.ID, Status: engine.RunDead,
		Error: "step two failed again", Finished: died.Add(time.Minute), Version: "h2"}); err != nil {
		t.Fatal(err)
	}
	runVersion("dead again", flaky.ID, "h2")
	if err := s.Replay(ctx, flaky.ID); err != nil {
		t.Fatal(err)
	}
	all := attempts("replayed twice", flaky.ID, 2)
	if all[0].N != 1 || all[0].Version != "h1" || all[1].N != 2 || all[1].Version != "h2" || all[1].Error != "step two failed again" {
		t.Fatalf("attempts = %+v, want 1 (h1) then 2 (h2)", all)
	}
	if got, want := stepLines(all[1].Steps), stepLines([]engine.StepRecord{one, three}); got != want {
		t.Fatalf("the second attempt's journal:\n got %s\nwant %s", got, want)
	}

	// Unpin: the next attempt runs the loaded version.
	if err := vs.Unpin(ctx, flaky.ID); err != nil {
		t.Fatal(err)
	}
	runVersion("unpinned", flaky.ID, "")
	attempts("unpinned", flaky.ID, 2)

	// ReplayAll keeps the failed attempts too.
	finish(t, s, doomed, engine.RunDead)
	if n, err := s.ReplayAll(ctx); err != nil || n != 1 {
		t.Fatalf("ReplayAll = %d, %v; want 1", n, err)
	}
	if d := attempts("replayed with the others", doomed.ID, 1)[0]; d.N != 1 || d.Status != engine.RunDead || d.Version != "" || len(d.Steps) != 0 {
		t.Fatalf("the attempt ReplayAll ended = %+v, want attempt 1, dead, no version, no steps", d)
	}

	// Prune deletes the attempts with their (succeeded) run and keeps
	// those of a run it keeps.
	re = claim(t, s, "w", 2, now, "r")
	if len(re) != 2 {
		t.Fatalf("claimed %s, want both replayed runs", eventIDs(re))
	}
	for _, c := range re {
		if c.ID == flaky.ID {
			if err := s.Record(ctx, c.Lease(), nil, &engine.Completion{RunID: c.ID, Status: engine.RunSucceeded, Finished: time.Now(), Version: "h2"}); err != nil {
				t.Fatal(err)
			}
		} else {
			finish(t, s, c, engine.RunDead)
		}
	}
	runVersion("succeeded", flaky.ID, "h2")
	pruner, ok := s.(engine.Pruner)
	if !ok {
		return
	}
	if _, err := pruner.Prune(ctx, engine.Prune{Before: time.Now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if got, err := other.Attempts(ctx, flaky.ID); err != nil || len(got) != 0 {
		t.Fatalf("attempts of a pruned run = %+v, %v; want none", got, err)
	}
	attempts("a dead letter, after prune", doomed.ID, 1)
	if _, err := other.LoadVersion(ctx, "r", "h2"); err != nil {
		t.Fatalf("prune deleted a recipe version: %v", err)
	}
}

// stepLines prints the journal fields an attempt keeps, times as instants.
func stepLines(recs []engine.StepRecord) string {
	var out string
	for _, r := range recs {
		out += fmt.Sprintf("[%d %s %s %s in=%s out=%s err=%q tries=%d %d..%d] ", r.Index, r.StepID, r.Action, r.Status, r.Input, r.Output, r.Error,
			r.Attempts, r.Started.UnixNano(), r.Finished.UnixNano())
	}
	return out
}
