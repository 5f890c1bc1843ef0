package e2e

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// The store migrations killed mid-way (docs/deploy.md, "Upgrading"). A
// store at the previous schema, left by a runner killed during a
// backfill (runs pending) and grown with copies of its finished runs, is
// migrated by `memberflow store show`, SIGKILLed after a random delay,
// again and again. After each kill the schema is at the old version or
// the new one; at the old one it is exactly the old memberflow's schema
// (so the old memberflow opens it), at the new one `memberflow store
// check` passes; no row of any table was lost, added or changed. At the
// end a resumed `run --once` runs each pending run once and nothing else.
// internal/bench/migkill.sh does the same on a store of 1,000,000 runs,
// with the previous release's binary.

// migKills is the number of kills of each test (MEMBERFLOW_MIGKILLS).
func migKills(t *testing.T) int { return envInt(t, "MEMBERFLOW_MIGKILLS", 20) }

// migStore is a store at the previous schema under test.
type migStore interface {
	// storeArg is the --store value; env the environment of a command.
	storeArg() string
	env() []string
	version(t *testing.T) int
	// fingerprint hashes every row of every table the old schema has.
	fingerprint(t *testing.T) string
	// oldSchema fails t unless the schema is exactly the old one.
	oldSchema(t *testing.T)
	// putBack undoes the migration (the new tables and columns dropped,
	// the old version set).
	putBack(t *testing.T)
	// counts: the runs left to run (queued, running, held by a page
	// claim), the events without exactly one run, and a hash of the
	// succeeded runs finished by then (ID, attempts, finish time).
	counts(t *testing.T, finishedBy int64) (pending, notOnce int, done string, lastFinished int64)
}

func TestSQLiteMigrationKilledMidwayLosesNothing(t *testing.T) {
	bin := memberflowBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	url := startSandboxProcess(ctx, t, bin, "--members", "1000")
	path := filepath.Join(t.TempDir(), "store.db")
	// A backfill killed mid-way, on this memberflow's schema; then the
	// store written back to version 8, as the previous release left it.
	db := openSQLite(t, path)
	killedBackfill(ctx, t, bin, url, nil, path, func() int {
		// Most runs end in page outcomes, not rows.
		var n int
		db.QueryRow(`SELECT (SELECT count(*) FROM runs WHERE status = 'succeeded') +
			(SELECT coalesce(sum(runs), 0) FROM page_outcomes)`).Scan(&n)
		return n
	})
	// The runs kept as page outcomes written out as rows, as version 8
	// kept them.
	(&sqliteMig{path: path}).writeOutPageOutcomes(ctx, t)
	for _, q := range append([]string{
		// The states' log merged into subject_states (newest first), as
		// version 8 kept them.
		`INSERT INTO subject_states (recipe, subject, state)
		 SELECT recipe, subject, state FROM subject_state_log
		 WHERE id IN (SELECT max(id) FROM subject_state_log GROUP BY recipe, subject)
		 ON CONFLICT (recipe, subject) DO UPDATE SET state = excluded.state`,
		`DROP TABLE subject_state_log`, `DROP TABLE subject_state_merged`, `DELETE FROM sqlite_sequence`,
		`UPDATE schema_version SET version = 8`,
	}, sqliteV12To9Undone(t)...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := &sqliteMig{db: db, path: path, old: 8, undo: sqliteV12To9Undone(t)}
	s.oldSchema(t)
	s.grow(t, 5)
	killMigration(ctx, t, bin, url, s, sqlitestore.SchemaVersion())
}

func TestPostgresMigrationKilledMidwayLosesNothing(t *testing.T) {
	bin := memberflowBinary(t)
	dsn, schema := pgstore.TestSchema(t) // fails when CI is set and Postgres is unreachable
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	url := startSandboxProcess(ctx, t, bin, "--members", "1000")
	env := []string{"MEMBERFLOW_PG_SCHEMA=" + schema}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `SET search_path = `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	killedBackfill(ctx, t, bin, url, env, dsn, func() int {
		var n int
		conn.QueryRow(ctx, `SELECT count(*) FROM runs WHERE status = 'succeeded'`).Scan(&n)
		return n
	})
	s := &pgMig{ctx: ctx, conn: conn, dsn: dsn, schema: schema, old: 2}
	s.putBack(t)
	s.grow(t, 5)
	killMigration(ctx, t, bin, url, s, pgstore.SchemaVersion())
}

// killedBackfill runs the bench recipe against the sandbox at url on
// store and kills the runner mid-way, once runs count says some ran,
// leaving runs pending.
func killedBackfill(ctx context.Context, t *testing.T, bin, url string, env []string, store string, runs func() int) {
	t.Helper()
	recipe, err := filepath.Abs("../bench/recipe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "run", "--sandbox-url", url, "--store", store, "--log-level", "warn", recipe)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for runs() < 50 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

// killMigration is the kill loop, then the resume.
func killMigration(ctx context.Context, t *testing.T, bin, url string, s migStore, newVersion int) {
	t.Helper()
	old := s.version(t)
	base := s.fingerprint(t)
	pending, _, done, lastFinished := s.counts(t, math.MaxInt64)
	t.Logf("schema %d: %d runs pending", old, pending)
	show := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, "store", "show", "--store", s.storeArg())
		cmd.Env = append(os.Environ(), s.env()...)
		return cmd
	}
	// The migration uncut: how long it takes sets the kills' delays.
	start := time.Now()
	if out, err := show().CombinedOutput(); err != nil {
		t.Fatalf("migrating: %v: %s", err, out)
	}
	took := time.Since(start)
	if v := s.version(t); v != newVersion {
		t.Fatalf("migrated: schema version %d, want %d", v, newVersion)
	}
	s.putBack(t)
	if fp := s.fingerprint(t); fp != base {
		t.Fatal("the migration, put back, changed the data")
	}
	var killed, migrated int
	for i := 1; i <= migKills(t); i++ {
		delay := time.Duration(rand.Int64N(int64(took) * 3 / 2))
		cmd := show()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		if isKilled(cmd.Wait()) {
			killed++
		}
		switch v := s.version(t); v {
		case old:
			s.oldSchema(t)
		case newVersion:
			migrated++
			if _, ok := s.(*sqliteMig); ok {
				// (A Postgres store is checked with the database's tools.)
				if out, err := exec.CommandContext(ctx, bin, "store", "check", "--store", s.storeArg()).CombinedOutput(); err != nil {
					t.Fatalf("kill %d: store check of the migrated store: %v: %s", i, err, out)
				}
			}
		default:
			t.Fatalf("kill %d after %s: schema version %d, want %d or %d", i, delay, v, old, newVersion)
		}
		if fp := s.fingerprint(t); fp != base {
			t.Fatalf("kill %d after %s: the tables changed", i, delay)
		}
		if s.version(t) != old {
			s.putBack(t)
		}
	}
	t.Logf("%d kills (%d killed, the others had finished; the uncut migration took %s): %d left the store migrated", migKills(t), killed, took, migrated)

	// The resume: each pending run once, nothing twice.
	recipe, err := filepath.Abs("../bench/recipe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "run", "--once", "--sandbox-url", url, "--store", s.storeArg(), "--log-level", "warn", recipe)
	cmd.Env = append(os.Environ(), s.env()...)
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("resumed run --once: %v: %s", err, out)
	}
	if v := s.version(t); v != newVersion {
		t.Fatalf("after the resume: schema version %d, want %d", v, newVersion)
	}
	// The runs finished before ran no more; the rest ran once each.
	if sq, ok := s.(*sqliteMig); ok {
		sq.writeOutPageOutcomes(ctx, t)
	}
	left, notOnce, doneAfter, _ := s.counts(t, lastFinished)
	if doneAfter != done {
		t.Error("after the resumed run --once: runs that had succeeded ran again")
	}
	if left != 0 || notOnce != 0 {
		t.Errorf("after the resumed run --once: %d runs pending, %d events without exactly one run", left, notOnce)
	}
	var st struct {
		Services map[string]struct {
			Duplicates map[string]int `json:"duplicates"`
		} `json:"services"`
	}
	resp, err := http.Get(url + "/_sandbox/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if d := st.Services["accredible"].Duplicates["credentials"]; d != 0 {
		t.Errorf("the sandbox holds %d duplicate certificates", d)
	}
}

// tableHash hashes rows, read in order.
func tableHash(h io.Writer, name string, values func() ([]any, bool, error)) error {
	fmt.Fprintf(h, "table %s\n", name)
	for {
		row, ok, err := values()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !ok {
			return nil
		}
		fmt.Fprintf(h, "%#v\n", row)
	}
}

// sqliteMig is a SQLite store at version 8.
type sqliteMig struct {
	db   *sql.DB
	path string
	old  int
	undo []string // what putBack runs after the version is set back
}

func openSQLite(t *testing.T, path string) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// writeOutPageOutcomes makes the runs kept as page outcomes rows of
// runs, as every read that lists runs does; the store must be at this
// memberflow's schema.
func (s *sqliteMig) writeOutPageOutcomes(ctx context.Context, t *testing.T) {
	t.Helper()
	st, err := sqlitestore.Open(s.path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ListRuns(ctx, engine.RunFilter{Status: engine.RunSucceeded, Limit: 1}); err != nil {
		t.Fatal(err)
	}
}

func (s *sqliteMig) storeArg() string { return s.path }
func (s *sqliteMig) env() []string    { return nil }

func (s *sqliteMig) version(t *testing.T) int {
	t.Helper()
	var v int
	if err := s.db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

var sqliteV8Tables = map[string]string{
	"events": "id", "runs": "id", "steps": "run, idx", "subject_states": "recipe, subject",
	"echoes": "connector, subject, fingerprint", "cursors": "recipe", "meta": "key", "skip_pages": "id",
	"runners": "owner", "poll_leases": "recipe", "recipe_versions": "recipe, hash", "attempts": "run, n",
	"page_claims": "id", "page_claim_runs": "claim",
}

// sqliteV8Columns are the columns version 8 had of the tables that
// gained some since (the others: all).
var sqliteV8Columns = map[string]string{"echoes": "connector, subject, fingerprint, run, written"}

func (s *sqliteMig) fingerprint(t *testing.T) string {
	t.Helper()
	h := sha256.New()
	for _, name := range sortedNames(sqliteV8Tables) {
		list := "*"
		if c, ok := sqliteV8Columns[name]; ok {
			list = c
		}
		rows, err := s.db.Query(`SELECT ` + list + ` FROM ` + name + ` ORDER BY ` + sqliteV8Tables[name])
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		err = tableHash(h, name, func() ([]any, bool, error) {
			if !rows.Next() {
				return nil, false, rows.Err()
			}
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			return vals, true, rows.Scan(ptrs...)
		})
		rows.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	var problems string
	if err := s.db.QueryRow(`PRAGMA integrity_check`).Scan(&problems); err != nil || problems != "ok" {
		t.Fatalf("integrity_check: %s %v", problems, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// oldSchema compares the store's schema with the one memberflow c688f12
// (version 8) created.
func (s *sqliteMig) oldSchema(t *testing.T) {
	t.Helper()
	ref := v8Reference(t)
	defer ref.Close()
	read := func(db *sql.DB) string {
		rows, err := db.Query(`SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name <> 'sqlite_sequence' ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var typ, name, tbl string
			var q sql.NullString
			if err := rows.Scan(&typ, &name, &tbl, &q); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %s %s %s\n", typ, name, tbl, q.String)
		}
		return b.String()
	}
	if got, want := read(s.db), read(ref); got != want {
		t.Fatalf("the schema is not version 8's:\n%s\nwant:\n%s", got, want)
	}
}

// sqliteV12To9Undone undoes migrations 12 to 10, newest first: 12's
// columns of echoes and their view dropped; steps made again as the
// WITHOUT ROWID table of version 8, with its views (11), their text
// as version 8 wrote it; 10's tables (page outcomes, none left)
// dropped and the view of version 8 put back.
func sqliteV12To9Undone(t *testing.T) []string {
	t.Helper()
	ddl := v8Statements(t, "steps", "dead_letters", "audit")
	return []string{
		`DROP VIEW IF EXISTS echo_writers`, `ALTER TABLE echoes DROP COLUMN recipe`, `ALTER TABLE echoes DROP COLUMN chain`,
		`DROP VIEW dead_letters`, `DROP VIEW audit`, `CREATE TEMP TABLE steps_kept AS SELECT * FROM steps`, `DROP TABLE steps`,
		ddl["steps"], `INSERT INTO steps SELECT * FROM steps_kept ORDER BY run, idx`, `DROP TABLE steps_kept`,
		ddl["dead_letters"], ddl["audit"],
		`DROP TRIGGER IF EXISTS page_claim_deleted`, `DROP TABLE IF EXISTS page_ended`, `DROP TABLE IF EXISTS page_outcomes`,
		`DROP VIEW page_runs`, `CREATE VIEW page_runs AS
	SELECT p.id AS claim, p.recipe, p.owner, p.lease_until, j.key AS okey, j.value AS run
	FROM page_claims p JOIN page_claim_runs c ON c.claim = p.id, json_each(c.keys) j
	WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = j.value)`,
	}
}

// v8Reference is an empty database of the schema memberflow c688f12
// (version 8) created (testdata/store/sqlite-v8.sql).
func v8Reference(t *testing.T) *sql.DB {
	t.Helper()
	ddl, err := os.ReadFile("testdata/store/sqlite-v8.sql")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	ref.SetMaxOpenConns(1)
	if _, err := ref.Exec(string(ddl)); err != nil {
		ref.Close()
		t.Fatal(err)
	}
	return ref
}

// v8Statements are the named tables' and views' CREATE statements as
// version 8 wrote them (testdata/store/sqlite-v8.sql).
func v8Statements(t *testing.T, names ...string) map[string]string {
	t.Helper()
	ref := v8Reference(t)
	defer ref.Close()
	out := map[string]string{}
	for _, name := range names {
		var q string
		if err := ref.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = ?`, name).Scan(&q); err != nil {
			t.Fatalf("%s in version 8's schema: %v", name, err)
		}
		out[name] = q
	}
	return out
}

func (s *sqliteMig) putBack(t *testing.T) {
	t.Helper()
	for _, q := range append([]string{`DROP TABLE IF EXISTS subject_state_log`, `DROP TABLE IF EXISTS subject_state_merged`,
		`DELETE FROM sqlite_sequence`, fmt.Sprintf(`UPDATE schema_version SET version = %d`, s.old)}, s.undo...) {
		if _, err := s.db.Exec(q); err != nil && !strings.Contains(err.Error(), "no such table") {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func (s *sqliteMig) counts(t *testing.T, finishedBy int64) (pending, notOnce int, done string, lastFinished int64) {
	t.Helper()
	q := `SELECT (SELECT count(*) FROM runs WHERE status IN ('queued', 'running')) + (SELECT count(*) FROM page_runs),
		(SELECT count(*) FROM events e WHERE (SELECT count(*) FROM runs r WHERE r.event = e.id) <> 1),
		(SELECT coalesce(group_concat(id || ':' || attempts || ':' || finished, ','), '') FROM (SELECT id, attempts, finished FROM runs WHERE status = 'succeeded' AND finished <= ?1 ORDER BY id)),
		(SELECT coalesce(max(finished), 0) FROM runs)`
	if err := s.db.QueryRow(q, finishedBy).Scan(&pending, &notOnce, &done, &lastFinished); err != nil {
		t.Fatal(err)
	}
	return pending, notOnce, done, lastFinished
}

// grow adds k copies of the finished runs, with their events and steps,
// and of the subject states and echoes.
func (s *sqliteMig) grow(t *testing.T, k int) {
	t.Helper()
	for _, q := range []string{
		fmt.Sprintf(`CREATE TEMP TABLE ks AS WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < %d) SELECT k FROM c`, k),
		`INSERT INTO events (id, recipe, event_id, subject, fingerprint, connector, event_time, received, data)
		 SELECT ks.k * 100000 + e.id, e.recipe, e.event_id || '#' || ks.k, e.subject || '#' || ks.k, e.fingerprint, e.connector, e.event_time, e.received, e.data
		 FROM ks, events e JOIN runs r ON r.event = e.id WHERE r.status = 'succeeded' ORDER BY 1`,
		`INSERT INTO runs (id, event, recipe, okey, status, attempts, owner, lease_until, error, condition, cond_values, created, started, finished, chain, version)
		 SELECT ks.k * 100000 + r.id, ks.k * 100000 + r.event, r.recipe, r.okey || '#' || ks.k, r.status, r.attempts, r.owner, r.lease_until, r.error, r.condition, r.cond_values, r.created, r.started, r.finished, r.chain, r.version
		 FROM ks, runs r WHERE r.status = 'succeeded' AND r.id < 100000 ORDER BY 1`,
		`INSERT INTO steps (run, idx, step_id, action, status, input, output, error, attempts, started, finished)
		 SELECT ks.k * 100000 + s.run, s.idx, s.step_id, s.action, s.status, s.input, s.output, s.error, s.attempts, s.started, s.finished
		 FROM ks, steps s JOIN runs r ON r.id = s.run WHERE r.status = 'succeeded' AND r.id < 100000 ORDER BY 1, 2`,
		`INSERT INTO subject_states (recipe, subject, state) SELECT t.recipe, t.subject || '#' || ks.k, t.state FROM ks, subject_states t WHERE t.subject NOT LIKE '%#%'`,
		`INSERT INTO echoes (connector, subject, fingerprint, run, written) SELECT t.connector, t.subject || '#' || ks.k, t.fingerprint, t.run, t.written FROM ks, echoes t WHERE t.subject NOT LIKE '%#%'`,
		`DROP TABLE ks`,
	} {
		if _, err := s.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// pgMig is a Postgres schema at version 2.
type pgMig struct {
	ctx         context.Context
	conn        *pgx.Conn
	dsn, schema string
	old         int
}

func (s *pgMig) storeArg() string { return s.dsn }
func (s *pgMig) env() []string    { return []string{"MEMBERFLOW_PG_SCHEMA=" + s.schema} }

// version reads the version once no migration is under way: the session
// of a killed memberflow runs on until its statement ends, then rolls
// back (or commits, had the COMMIT been sent); each migration reads
// schema_version first, and holds the table until its end.
func (s *pgMig) version(t *testing.T) int {
	t.Helper()
	var v int
	err := pgx.BeginFunc(s.ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(s.ctx, `LOCK TABLE schema_version IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		return tx.QueryRow(s.ctx, `SELECT version FROM schema_version`).Scan(&v)
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pgV2Tables are the tables of version 2, with their columns then (runs
// has gained version since) and their order.
var pgV2Tables = map[string][2]string{
	"events":         {"*", "id"},
	"runs":           {"id, event, recipe, okey, status, attempts, owner, lease_until, error, condition, cond_values, created, started, finished, chain", "id"},
	"steps":          {"*", "run, idx"},
	"subject_states": {"*", "recipe, subject"},
	"echoes":         {"*", "connector, subject, fingerprint"},
	"cursors":        {"*", "recipe"},
	"runners":        {"*", "owner"},
	"poll_leases":    {"*", "recipe"},
	"meta":           {"*", "key"},
	"skip_pages":     {"*", "id"},
}

func (s *pgMig) fingerprint(t *testing.T) string {
	t.Helper()
	h := sha256.New()
	for _, name := range sortedNames(pgV2Tables) {
		rows, err := s.conn.Query(s.ctx, `SELECT `+pgV2Tables[name][0]+` FROM `+name+` ORDER BY `+pgV2Tables[name][1])
		if err != nil {
			t.Fatal(err)
		}
		err = tableHash(h, name, func() ([]any, bool, error) {
			if !rows.Next() {
				return nil, false, rows.Err()
			}
			v, err := rows.Values()
			return v, true, err
		})
		rows.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *pgMig) oldSchema(t *testing.T) {
	t.Helper()
	var n int
	if err := s.conn.QueryRow(s.ctx, `SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'runs' AND column_name = 'version'`, s.schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	var tables int
	if err := s.conn.QueryRow(s.ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename IN ('recipe_versions', 'attempts')`, s.schema).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if n != 0 || tables != 0 {
		t.Fatalf("at version 2, the schema has version 3's runs.version (%d) or tables (%d)", n, tables)
	}
}

func (s *pgMig) putBack(t *testing.T) {
	t.Helper()
	q := fmt.Sprintf(`ALTER TABLE runs DROP COLUMN IF EXISTS version; DROP TABLE IF EXISTS recipe_versions, attempts; UPDATE schema_version SET version = %d`, s.old)
	if _, err := s.conn.Exec(s.ctx, q); err != nil {
		t.Fatal(err)
	}
}

func (s *pgMig) counts(t *testing.T, finishedBy int64) (pending, notOnce int, done string, lastFinished int64) {
	t.Helper()
	q := `SELECT (SELECT count(*) FROM runs WHERE status IN ('queued', 'running')),
		(SELECT count(*) FROM events e WHERE (SELECT count(*) FROM runs r WHERE r.event = e.id) <> 1),
		(SELECT coalesce(md5(string_agg(id || ':' || attempts || ':' || finished, ',' ORDER BY id)), '') FROM runs WHERE status = 'succeeded' AND finished <= $1),
		(SELECT coalesce(max(finished), 0) FROM runs)`
	if err := s.conn.QueryRow(s.ctx, q, finishedBy).Scan(&pending, &notOnce, &done, &lastFinished); err != nil {
		t.Fatal(err)
	}
	return pending, notOnce, done, lastFinished
}

func (s *pgMig) grow(t *testing.T, k int) {
	t.Helper()
	q := fmt.Sprintf(`CREATE TEMP TABLE ev AS SELECT e.* FROM events e JOIN runs r ON r.event = e.id WHERE r.status = 'succeeded';
INSERT INTO events (id, recipe, event_id, subject, fingerprint, connector, event_time, received, data)
  SELECT k * 100000 + e.id, e.recipe, e.event_id || '#' || k, e.subject || '#' || k, e.fingerprint, e.connector, e.event_time, e.received, e.data
  FROM generate_series(1, %[1]d) k, ev e;
INSERT INTO runs (id, event, recipe, okey, status, attempts, owner, lease_until, error, condition, cond_values, created, started, finished, chain)
  SELECT k * 100000 + r.id, k * 100000 + r.event, r.recipe, r.okey || '#' || k, r.status, r.attempts, r.owner, r.lease_until, r.error, r.condition, r.cond_values, r.created, r.started, r.finished, r.chain
  FROM generate_series(1, %[1]d) k, runs r WHERE r.status = 'succeeded';
INSERT INTO steps (run, idx, step_id, action, status, input, output, error, attempts, started, finished)
  SELECT k * 100000 + s.run, s.idx, s.step_id, s.action, s.status, s.input, s.output, s.error, s.attempts, s.started, s.finished
  FROM generate_series(1, %[1]d) k, steps s JOIN runs r ON r.id = s.run WHERE r.status = 'succeeded' AND r.id < 100000;
INSERT INTO subject_states (recipe, subject, state) SELECT t.recipe, t.subject || '#' || k, t.state FROM generate_series(1, %[1]d) k, subject_states t;
INSERT INTO echoes (connector, subject, fingerprint, run, written) SELECT t.connector, t.subject || '#' || k, t.fingerprint, t.run, t.written FROM generate_series(1, %[1]d) k, echoes t;
SELECT setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events));
SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT max(id) FROM runs));
DROP TABLE ev;`, k)
	if _, err := s.conn.Exec(s.ctx, q); err != nil {
		t.Fatalf("growing the store: %v", err)
	}
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
