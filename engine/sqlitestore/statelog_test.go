package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// walFrames is the number of frames in the store's write-ahead log (4 KiB
// pages, each with its 24-byte header, after the log's 32-byte header).
func walFrames(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return (st.Size() - 32) / (4096 + 24)
}

// randomSubjects is n member IDs as the Memberships API gives them:
// random, so that a page's subjects are spread over the whole key space.
func randomSubjects(rng *rand.Rand, n int) []string {
	const letters = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := make([]string, n)
	for i := range out {
		b := []byte("user/")
		for range 20 {
			b = append(b, letters[rng.IntN(len(letters))])
		}
		out[i] = string(b)
	}
	return out
}

// A backfill's pages remember the state of every member they read, keyed
// by the members' random IDs. Upserted into subject_states a page at a
// time, each state dirtied a leaf page of its own, which each commit wrote
// to the WAL as a 4 KiB frame (and the checkpointer copied again): about
// one frame per member, the largest share of a backfill's writes (issue
// 14). Logged in arrival order and merged in bulk, a state costs a small
// fraction of a frame.
func TestRandomSubjectStatesCostAFractionOfAFrame(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	// No checkpoints: every frame written stays in the log to be counted.
	s, err := sqlitestore.Open(path, sqlitestore.Options{CheckpointEvery: -1, MergeStates: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 14))
	// A first 20,000 subjects make a table of some hundreds of leaves,
	// as a backfill's first pages do.
	advance := func(pages int) {
		for range pages {
			var states []engine.SubjectState
			for _, sub := range randomSubjects(rng, 100) {
				states = append(states, engine.SubjectState{Subject: sub, State: "eligible.288d49734535a967"})
			}
			if _, err := s.Advance(ctx, "backfill", engine.Advance{Cursor: str("c"), States: states}); err != nil {
				t.Fatal(err)
			}
		}
	}
	advance(200)
	before := walFrames(t, path)
	const pages = 200
	advance(pages)
	perState := float64(walFrames(t, path)-before) / (pages * 100)
	t.Logf("%.3f WAL frames per subject state", perState)
	if perState > 0.4 {
		t.Errorf("%.3f WAL frames per subject state of random subjects, want at most 0.4 (about 1 when each page's states are upserted into subject_states)", perState)
	}
}

// Every handle (another runner's too) answers the newest state of a
// subject, whether it is still in the log, was merged by another handle
// after this one read it from the log, or was merged and then changed
// again; ExportState agrees.
func TestPriorStatesAcrossMergesAndHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	opts := sqlitestore.Options{MergeStates: 4}
	a, err := sqlitestore.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlitestore.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	advance := func(states ...string) {
		t.Helper()
		var adv engine.Advance
		for i := 0; i < len(states); i += 2 {
			adv.States = append(adv.States, engine.SubjectState{Subject: states[i], State: states[i+1]})
		}
		if _, err := a.Advance(ctx, "r", adv); err != nil {
			t.Fatal(err)
		}
	}
	want := func(step string, s *sqlitestore.Store, subject, state string) {
		t.Helper()
		got, err := s.PriorStates(ctx, "r", []string{subject, "unknown"})
		if err != nil {
			t.Fatal(err)
		}
		if got[subject] != state || len(got) != 1 {
			t.Errorf("%s: PriorStates(%s) = %v, want %s: %q", step, subject, got, subject, state)
		}
	}
	advance("s1", "v1")
	want("logged", b, "s1", "v1")
	// Merged by a (4 states in the log), after b read v1 from the log.
	advance("s1", "v2", "s2", "x", "s3", "x")
	want("merged after another handle read the log", b, "s1", "v2")
	want("merged, read by the merging handle", a, "s1", "v2")
	// Logged again, newer than the merged state.
	advance("s1", "v3")
	want("logged after a merge", b, "s1", "v3")
	// Twice in one page, then merged with it: the later of the two.
	advance("s1", "v4", "s1", "v5", "s4", "x")
	want("twice in a merged page", b, "s1", "v5")
	want("twice in a merged page", a, "s1", "v5")
	advance("s2", "y")
	st, err := b.ExportState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(st.Subjects)
	if w := "[{r s1 v5} {r s2 y} {r s3 x} {r s4 x}]"; got != w {
		t.Errorf("exported states %s, want %s", got, w)
	}
	// Another recipe's state of the same subject is its own.
	if got, err := b.PriorStates(ctx, "other", []string{"s1"}); err != nil || len(got) != 0 {
		t.Errorf("another recipe's states = %v, %v; want none", got, err)
	}
}

// A store of an older schema keeps its subject states: they are read
// from subject_states until a change of the subject is logged.
func TestOldStoreKeepsItsSubjectStates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	s := open(t, path)
	s.Close()
	// As a store of version 8 left them: in subject_states, with no log.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TABLE subject_state_log`, `DROP TABLE subject_state_merged`,
		`DROP VIEW echo_writers`, `ALTER TABLE echoes DROP COLUMN recipe`, `ALTER TABLE echoes DROP COLUMN chain`,
		`DROP TRIGGER page_claim_deleted`, `DROP TABLE page_ended`, `DROP TABLE page_outcomes`,
		`UPDATE schema_version SET version = 8`,
		`INSERT INTO subject_states (recipe, subject, state) VALUES ('r', 'a', 'active'), ('r', 'b', 'lapsed')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s = open(t, path)
	defer s.Close()
	ctx := context.Background()
	if got, err := s.PriorStates(ctx, "r", []string{"a", "b"}); err != nil || got["a"] != "active" || got["b"] != "lapsed" {
		t.Fatalf("states of the migrated store = %v, %v; want a: active, b: lapsed", got, err)
	}
	if _, err := s.Advance(ctx, "r", engine.Advance{States: []engine.SubjectState{{Subject: "a", State: "lapsed"}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PriorStates(ctx, "r", []string{"a", "b"}); err != nil || got["a"] != "lapsed" || got["b"] != "lapsed" {
		t.Fatalf("states after a change = %v, %v; want a: lapsed, b: lapsed", got, err)
	}
}
