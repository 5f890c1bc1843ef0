package pgstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A schema is not migrated while a runner uses it: that runner, of the
// older memberflow, would keep writing by the old rules (a version 2
// runner beside a version 3 one finished its runs without their recipe
// version). Once it is gone, the schema is migrated.
func TestMigrationWaitsUntilTheOlderRunnersStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, schema := TestSchema(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The schema at version 2, as a memberflow of that version left it
	// (released migrations are never edited), with its runner.
	setup := []string{`CREATE SCHEMA ` + pgx.Identifier{schema}.Sanitize(), `SET search_path = ` + pgx.Identifier{schema}.Sanitize(),
		`CREATE TABLE schema_version (version INTEGER NOT NULL)`, `INSERT INTO schema_version VALUES (2)`}
	setup = append(setup, migrations[:2]...)
	setup = append(setup,
		`INSERT INTO events (recipe, event_id, subject, fingerprint, connector, received, data) VALUES ('r', 'e1', 'k1', '', 'fake', 1, '{}')`,
		`INSERT INTO runs (event, recipe, okey, status, attempts, owner, lease_until, created) SELECT id, 'r', 'k1', 'running', 1, 'old-runner', 1, 1 FROM events`,
		`INSERT INTO runners (owner, host, pid, started, seen) VALUES ('old-runner', 'h', 1, 1, 1)`)
	for _, q := range setup {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The old runner's proof of life, held by its session.
	old, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(ctx)
	if _, err := old.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey("runner", schema, "old-runner")); err != nil {
		t.Fatal(err)
	}
	version := func() int {
		var v int
		if err := conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	_, err = Open(ctx, dsn, Options{Schema: schema})
	if !errors.Is(err, ErrRunnersLive) {
		t.Fatalf("Open with a live runner of version 2 = %v, want ErrRunnersLive", err)
	}
	for _, want := range []string{"version 2", "to 3", "old-runner", "stop every runner"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	if v := version(); v != 2 {
		t.Fatalf("refused, the schema is at version %d, want 2 untouched", v)
	}

	if err := old.Close(ctx); err != nil { // the old runner stops
		t.Fatal(err)
	}
	s, err := Open(ctx, dsn, Options{Schema: schema})
	if err != nil {
		t.Fatalf("Open once the old runner stopped: %v", err)
	}
	defer s.Close()
	if v := version(); v != len(migrations) {
		t.Fatalf("schema version %d, want %d", v, len(migrations))
	}
}

// A migration waits for the locks its statements take (ALTER TABLE runs
// takes the table's ACCESS EXCLUSIVE lock) while holding the migration
// lock. Behind a long query on runs it waited for as long as the query
// ran: every other memberflow's open waited for the migration lock
// meanwhile, and every read of runs queued behind the ALTER TABLE. A
// migrating memberflow killed then left its session waiting all the
// same (seen with internal/bench/migkill.sh: memberflow runs waited for
// the whole of a 6 s query after the migrating process was killed). So
// a migration gives up after LockTimeout, changes nothing, and names
// the sessions in its way.
func TestMigrationBehindALongQueryGivesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, schema := TestSchema(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	setup := []string{`CREATE SCHEMA ` + pgx.Identifier{schema}.Sanitize(), `SET search_path = ` + pgx.Identifier{schema}.Sanitize(),
		`CREATE TABLE schema_version (version INTEGER NOT NULL)`, `INSERT INTO schema_version VALUES (2)`}
	setup = append(setup, migrations[:2]...)
	for _, q := range setup {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// A long query on runs: a report, a pg_dump.
	reader, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(ctx)
	if _, err := reader.Exec(ctx, `SET application_name = 'long-report'`); err != nil {
		t.Fatal(err)
	}
	tx, err := reader.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "runs"}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	var readerPID int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&readerPID); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	s, err := Open(ctx, dsn, Options{Schema: schema, LockTimeout: time.Second})
	if err == nil {
		s.Close()
		t.Fatal("Open migrated behind a query holding runs")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Open gave up after %s, want about the lock timeout (1s)", took)
	}
	for _, want := range []string{"migration 3", "waited 1s", "pid " + itoa(readerPID), "long-report", "nothing was migrated"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	var v int
	if err := conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 2 {
		t.Fatalf("schema version %d after the migration gave up, want 2", v)
	}

	// The query ends: the next open migrates.
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dsn, Options{Schema: schema, LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("Open once the query ended: %v", err)
	}
	defer s.Close()
	if err := conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Fatalf("schema version %d, want %d", v, len(migrations))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
