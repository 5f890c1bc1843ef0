package sqlitestore

import (
	"database/sql"
	"strings"
	"testing"
)

// A store of an older version keeps its steps, and the views over them,
// once steps move into a rowid table; and a step's output of a few
// kilobytes (a whole credential) then lies in the table's leaves, not in
// an overflow page of its own, three quarters empty.
func TestStepsMovedToARowidTableKeepTheirRowsViewsAndLeaves(t *testing.T) {
	output := `{"credential":"` + strings.Repeat("x", 2500) + `"}`
	path := oldStore(t, "schema-v7.sql",
		`INSERT INTO events (id, recipe, event_id, subject, fingerprint, connector, received, data) VALUES (1, 'r', 'e1', 'k1', '', 'fake', 1, '{"id":"k1"}')`,
		`INSERT INTO runs (id, event, recipe, okey, status, attempts, error, created, finished) VALUES (1, 1, 'r', 'k1', 'dead', 3, 'gave up', 1, 2)`,
		`INSERT INTO steps (run, idx, step_id, action, status, input, output, attempts) VALUES (1, 0, 'issue', 'cert.issue', 'succeeded', '{"a":1}', '`+output+`', 1)`,
		`INSERT INTO steps (run, idx, step_id, action, status, input, error, attempts) VALUES (1, 1, 'push', 'members.update', 'failed', '{"b":2}', 'HTTP 500', 3)`)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var steps int
	var got string
	if err := s.r.QueryRow(`SELECT count(*), max(length(output)) FROM steps WHERE run = 1`).Scan(&steps, &got); err != nil {
		t.Fatal(err)
	}
	if steps != 2 || got != itoa(int64(len(output))) {
		t.Errorf("after the move: %d steps, the longest output %s bytes; want 2 and %d", steps, got, len(output))
	}
	var stepID, stepErr string
	if err := s.r.QueryRow(`SELECT step_id, step_error FROM dead_letters WHERE run = 1`).Scan(&stepID, &stepErr); err != nil {
		t.Fatalf("dead_letters after the move: %v", err)
	}
	if stepID != "push" || stepErr != "HTTP 500" {
		t.Errorf("dead_letters names step %q (%q), want the last one, push (HTTP 500)", stepID, stepErr)
	}
	var audited int
	if err := s.r.QueryRow(`SELECT count(*) FROM audit WHERE run = 1`).Scan(&audited); err != nil || audited != 2 {
		t.Errorf("audit after the move: %d rows, %v; want the 2 steps", audited, err)
	}
	if _, err := s.w.Exec(`INSERT INTO steps (run, idx, step_id, action, status, attempts) VALUES (1, 1, 'again', 'x', 'running', 1)`); err == nil {
		t.Error("a second step at (run 1, idx 1) was taken: (run, idx) is no longer unique")
	}

	for run := 2; run < 40; run++ {
		if _, err := s.w.Exec(`INSERT INTO steps (run, idx, step_id, action, status, output, attempts) VALUES (?, 0, 'issue', 'cert.issue', 'succeeded', ?, 1)`, run, output); err != nil {
			t.Fatal(err)
		}
	}
	if n := overflowPages(t, s.w, "steps"); n != 0 {
		t.Errorf("steps has %d overflow pages for outputs of %d bytes, want none", n, len(output))
	}
}

func overflowPages(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM dbstat WHERE name = ? AND pagetype = 'overflow'`, table).Scan(&n); err != nil {
		t.Fatalf("reading dbstat: %v", err)
	}
	return n
}
