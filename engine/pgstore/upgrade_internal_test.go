package pgstore

import (
	"context"
	"errors"
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
