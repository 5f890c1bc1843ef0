// Package pgstore is the engine.Store that several runners share: one
// PostgreSQL database (github.com/jackc/pgx/v5). Runs are claimed with
// FOR UPDATE SKIP LOCKED, so claimers never wait for one another; new
// work wakes the other runners through LISTEN/NOTIFY; migrations are
// versioned and applied at start under an advisory lock; a runner's proof
// of life is a session advisory lock, which the database drops when the
// runner's connection ends.
//
// Times are stored as Unix nanoseconds (BIGINT), as in the SQLite store,
// so that `memberflow store copy` moves state between them unchanged.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/memberflow/memberflow/engine"
)

// migrations are applied in order; the schema's version is their count.
// Never edit a released migration: append a new one.
// SchemaVersion is the version of the store schema this memberflow
// writes: a store at an older one is migrated when opened (with no runner
// using it), one at a newer one is refused.
func SchemaVersion() int { return len(migrations) }

var migrations = []string{
	// 1: the schema of SQLite's migrations 1 to 3 at once.
	`
CREATE TABLE events (
	id          BIGSERIAL PRIMARY KEY,
	recipe      TEXT   NOT NULL,
	event_id    TEXT   NOT NULL,
	subject     TEXT   NOT NULL,
	fingerprint TEXT   NOT NULL,
	connector   TEXT   NOT NULL,
	event_time  BIGINT,
	received    BIGINT NOT NULL,
	data        BYTEA  NOT NULL,
	UNIQUE (recipe, event_id)
);
CREATE TABLE runs (
	id          BIGSERIAL PRIMARY KEY,
	event       BIGINT  NOT NULL REFERENCES events(id),
	recipe      TEXT    NOT NULL,
	okey        TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	owner       TEXT,
	lease_until BIGINT,
	error       TEXT,
	condition   BOOLEAN,
	cond_values BYTEA,
	created     BIGINT  NOT NULL,
	started     BIGINT,
	finished    BIGINT,
	chain       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX runs_queued     ON runs(id)       WHERE status = 'queued';
CREATE INDEX runs_active_key ON runs(okey, id) WHERE status IN ('queued', 'running');
CREATE INDEX runs_owner      ON runs(owner)    WHERE status = 'running';
CREATE INDEX runs_dead       ON runs(id)       WHERE status = 'dead';
CREATE INDEX runs_by_recipe  ON runs(recipe, id);
CREATE INDEX runs_by_event   ON runs(event);
CREATE INDEX events_subject  ON events(subject);
CREATE TABLE steps (
	run      BIGINT  NOT NULL,
	idx      INTEGER NOT NULL,
	step_id  TEXT    NOT NULL,
	action   TEXT    NOT NULL,
	status   TEXT    NOT NULL,
	input    BYTEA,
	output   BYTEA,
	error    TEXT,
	attempts INTEGER NOT NULL,
	started  BIGINT,
	finished BIGINT,
	PRIMARY KEY (run, idx)
);
CREATE TABLE cursors (
	recipe  TEXT PRIMARY KEY,
	cursor  TEXT   NOT NULL,
	updated BIGINT NOT NULL
);
CREATE TABLE subject_states (
	recipe  TEXT NOT NULL,
	subject TEXT NOT NULL,
	state   TEXT NOT NULL,
	PRIMARY KEY (recipe, subject)
);
CREATE TABLE echoes (
	connector   TEXT   NOT NULL,
	subject     TEXT   NOT NULL,
	fingerprint TEXT   NOT NULL,
	run         BIGINT,
	written     BIGINT NOT NULL,
	PRIMARY KEY (connector, subject, fingerprint)
);
CREATE TABLE runners (
	owner   TEXT PRIMARY KEY,
	host    TEXT    NOT NULL,
	pid     INTEGER NOT NULL,
	started BIGINT  NOT NULL,
	seen    BIGINT  NOT NULL
);
CREATE TABLE poll_leases (
	recipe      TEXT PRIMARY KEY,
	owner       TEXT   NOT NULL,
	lease_until BIGINT NOT NULL
);`,
	// 2: engine.MetaStore (SQLite's meta) and skip pages (SQLite's
	// skip_pages): a deleted value keeps its row so that its version
	// never goes back; a rejected event is counted on its page.
	`CREATE TABLE meta (
	key     TEXT PRIMARY KEY,
	value   BYTEA,
	version BIGINT NOT NULL
);
CREATE TABLE skip_pages (
	id      BIGSERIAL PRIMARY KEY,
	recipe  TEXT    NOT NULL,
	count   INTEGER NOT NULL,
	sample  BYTEA,
	created BIGINT  NOT NULL
);
CREATE INDEX skip_pages_by_recipe ON skip_pages(recipe, id);`,
	// 3: recipe versions and the attempts replays ended (versions.go).
	versionsMigration,
}

// Options tune the store.
type Options struct {
	Logger hclog.Logger
	// Schema holds the store's tables; default "memberflow". Tests use
	// one schema each.
	Schema string
	// MaxConns sizes the connection pool; default 8 (the CLI sets 4 +
	// --concurrency: a connection per worker's journal write, and a few
	// for the poller, the claims and renewals). The store holds one more
	// for LISTEN and one per runner that joined (its proof of life), out
	// of the pool: fewer than 4 is raised to 4, below which a runner's
	// Join waits forever for a connection to look for dead runners with.
	MaxConns int
	// ApplicationName names the store's sessions in pg_stat_activity;
	// default "memberflow".
	ApplicationName string
	// LockTimeout bounds a migration's wait for a lock on the store's
	// tables (another session's query on them); default 10 s, as SQLite's
	// busy timeout. A migration that waited that long gives up and changes
	// nothing: waiting, it held the migration lock, which every other
	// memberflow's open waits for, and the reads of the table it alters.
	LockTimeout time.Duration
	// Now is the runner's clock (the one its engine reads); default
	// time.Now. Leases are kept on the database's clock (clock.go); tests
	// set Now to play a runner whose clock is off.
	Now func() time.Time
}

// Store is the PostgreSQL engine.Store.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	// lockTimeout is Options.LockTimeout.
	lockTimeout time.Duration
	channel     string
	log         hclog.Logger

	wake     chan struct{}
	stopWait context.CancelFunc
	waitDone chan struct{}

	mu         sync.Mutex
	lastExpiry time.Time
	live       map[string]*pgxpool.Conn // proof of life, by owner
	closeOnce  sync.Once

	now     func() time.Time // the runner's clock
	clockMu sync.Mutex
	skew    int64     // the database's clock minus the runner's, ns
	skewAt  time.Time // when skew was measured; zero: never
}

var (
	_ engine.Store        = (*Store)(nil)
	_ engine.RunnerLister = (*Store)(nil)
	_ engine.Waker        = (*Store)(nil)
)

// Open connects to the database at dsn (postgres://…), creates the schema
// when needed and migrates it under an advisory lock, so that runners
// starting together migrate once.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Schema == "" {
		opts.Schema = "memberflow"
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	opts.MaxConns = max(opts.MaxConns, 4)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %s", redactDSNError(err))
	}
	cfg.MaxConns = int32(opts.MaxConns)
	cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	if opts.ApplicationName == "" {
		opts.ApplicationName = "memberflow"
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = opts.ApplicationName
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %s", redactDSNError(err))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 10 * time.Second
	}
	s := &Store{pool: pool, lockTimeout: opts.LockTimeout, schema: opts.Schema, now: opts.Now, channel: fmt.Sprintf("memberflow_%x", uint64(lockKey("channel", opts.Schema))), log: opts.Logger.Named("store"),
		wake: make(chan struct{}, 1), live: map[string]*pgxpool.Conn{}, waitDone: make(chan struct{})}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store (schema %s): %w", opts.Schema, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.stopWait = cancel
	go s.listen(wctx)
	return s, nil
}

// redactDSNError keeps a password out of an error about the DSN.
func redactDSNError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j > 0 {
			msg = msg[:i+3] + "…" + msg[i+j:]
		}
	}
	return msg
}

func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("migrate", s.schema)); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.schema}.Sanitize()); err != nil {
		return fmt.Errorf("creating the schema: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_version: %w", err)
	}
	var v int
	err = tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this memberflow knows (%d): upgrade memberflow", v, len(migrations))
	}
	if v > 0 && v < len(migrations) {
		live, err := s.liveRunners(ctx, tx)
		if err != nil {
			return fmt.Errorf("migrating from version %d: %w", v, err)
		}
		if len(live) > 0 {
			return runnersInTheWay(v, len(migrations), live)
		}
	}
	if v < len(migrations) {
		// The migration holds the migration lock: it must not wait for
		// long behind another session (migrationBlocked).
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, s.lockTimeout.Milliseconds())); err != nil {
			return fmt.Errorf("migrating from version %d: setting the lock timeout: %w", v, err)
		}
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			if blocked := s.migrationBlocked(ctx, tx, i+1, err); blocked != nil {
				return blocked
			}
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, i+1); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		s.log.Debug("migrated", "version", i+1)
	}
	return tx.Commit(ctx)
}

// migrationBlocked is the error of migration n that gave up waiting for a
// lock (lock_timeout), naming the sessions that hold locks on the schema's
// tables; nil when err is another error. It rolls tx back first.
//
// A migration waits for the locks of its statements (ALTER TABLE takes
// the table's ACCESS EXCLUSIVE lock) while holding the migration lock,
// which every other memberflow's open waits for; and reads of the table
// queue behind the lock it waits for. Behind a long query (a report, a
// pg_dump) it waited as long as the query ran, and so did every
// memberflow of the store; a migrating memberflow killed meanwhile left
// its session waiting all the same (internal/bench/migkill.sh).
func (s *Store) migrationBlocked(ctx context.Context, tx pgx.Tx, n int, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" { // lock_not_available
		return nil
	}
	tx.Rollback(ctx)
	// The query's text is not shown: it may hold values.
	rows, qerr := s.pool.Query(ctx, `SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
			coalesce(extract(epoch FROM now() - a.xact_start)::bigint, 0)
		FROM pg_stat_activity a
		WHERE a.pid <> pg_backend_pid() AND a.pid IN (
			SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			JOIN pg_namespace ns ON ns.oid = c.relnamespace
			WHERE l.granted AND ns.nspname = $1)
		ORDER BY a.pid`, s.schema)
	var sessions []string
	if qerr == nil {
		for rows.Next() {
			var pid, secs int64
			var app, state string
			if rows.Scan(&pid, &app, &state, &secs) == nil {
				sessions = append(sessions, fmt.Sprintf("pid %d (%q, %s, in a transaction for %ds)", pid, app, state, secs))
			}
		}
		rows.Close()
		qerr = rows.Err()
	}
	who := "other sessions"
	switch {
	case len(sessions) > 0:
		who = "other sessions: " + strings.Join(sessions, ", ")
	case qerr != nil:
		who = fmt.Sprintf("other sessions (not listed: %v)", qerr)
	}
	return fmt.Errorf("migration %d: waited %s for a lock on the store's tables, held by %s; nothing was migrated: end those sessions' transactions (a long query, a pg_dump) and start memberflow again (docs/deploy.md, \"Upgrading\"): %w",
		n, s.lockTimeout, who, err)
}

// listen holds a connection that LISTENs for new work and signals Wakeups.
func (s *Store) listen(ctx context.Context) {
	defer close(s.waitDone)
	for ctx.Err() == nil {
		err := func() error {
			c, err := s.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer func() {
				// LISTEN is per session: close it rather than hand a
				// listening connection back to the pool.
				c.Conn().Close(context.Background())
				c.Release()
			}()
			if _, err := c.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
				return err
			}
			for {
				if _, err := c.Conn().WaitForNotification(ctx); err != nil {
					return err
				}
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("listening for new work failed; retrying", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Wakeups implements engine.Waker: a signal after another runner (or
// this one) queued work.
func (s *Store) Wakeups() <-chan struct{} { return s.wake }

func (s *Store) notify(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, s.channel)
	return err
}

// Close ends the proof of life of the runners that joined here (their runs
// are then resumed by the next runner to join) and closes the pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopWait()
		<-s.waitDone
		s.mu.Lock()
		for o, c := range s.live {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
			cancel()
			c.Conn().Close(context.Background())
			c.Release()
			delete(s.live, o)
		}
		s.mu.Unlock()
		s.pool.Close()
	})
	return nil
}

func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// inTx runs fn in a transaction and commits it.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// Cursor implements engine.TriggerStore.
func (s *Store) Cursor(ctx context.Context, recipe string) (string, error) {
	var c string
	err := s.pool.QueryRow(ctx, `SELECT cursor FROM cursors WHERE recipe = $1`, recipe).Scan(&c)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the cursor of recipe %q: %w", recipe, err)
	}
	return c, nil
}

// PriorStates implements engine.TriggerStore.
func (s *Store) PriorStates(ctx context.Context, recipe string, subjects []string) (map[string]string, error) {
	out := make(map[string]string, len(subjects))
	if len(subjects) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, priorStatesSQL, recipe, subjects)
	if err != nil {
		return nil, fmt.Errorf("reading subject states of recipe %q: %w", recipe, err)
	}
	defer rows.Close()
	for rows.Next() {
		var sub string
		var st *string
		if err := rows.Scan(&sub, &st); err != nil {
			return nil, err
		}
		if st != nil {
			out[sub] = *st
		}
	}
	return out, rows.Err()
}

// priorStatesSQL answers the state of each subject $2 of recipe $1 (NULL:
// none), one primary-key lookup per subject. The lookup is a scalar
// subquery, which the planner never turns into a join: `subject = ANY($2)`
// or a join against the array were planned, on a young table without
// statistics, as a scan of every subject of the recipe (or, in a plan
// cached while the table was small, a hash of the whole table): a cost
// that grows with the table, paid once a page.
const priorStatesSQL = `SELECT u.sub, (SELECT s.state FROM subject_states s WHERE s.recipe = $1 AND s.subject = u.sub)
FROM unnest($2::text[]) AS u(sub)`

// echoSQL is whether the write (connector c, subject sub, fingerprint fp)
// echoes a write of recipe (a run of it, or of a run whose chain holds it;
// a write of no run known counts) — SQL expressions all four. It is a
// scalar subquery (the primary key of echoes and of runs make it one row
// at most), so that it is one index lookup per event: as EXISTS, the
// planner may join or hash the whole of echoes and runs instead, as it did
// on young tables without statistics (or in plans cached while they were
// small), a cost per page that grows with the tables.
func echoSQL(c, sub, fp, recipe string) string {
	return `coalesce((SELECT w.id IS NULL OR w.recipe = ` + recipe + ` OR position(',' || ` + recipe + ` || ',' IN ',' || w.chain || ',') > 0
		FROM echoes x LEFT JOIN runs w ON w.id = x.run
		WHERE x.connector = ` + c + ` AND x.subject = ` + sub + ` AND x.fingerprint = ` + fp + `), false)`
}

// echoesAmongSQL answers the ordinals (from 1) of the (connector $1,
// subject $2, fingerprint $3) that echo a write of recipe $4 or of a run
// whose chain holds it.
var echoesAmongSQL = `SELECT u.n FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(c, sub, fp, n)
WHERE ` + echoSQL("u.c", "u.sub", "u.fp", "$4")

// enqueuePageSQL stores a page's events (e) and answers the new ones
// (f), in arrival order, each with whether it echoes a write of the
// recipe or its chain. An event ID seen before, or earlier in the page,
// stores nothing and is not in f. enqueueManySQL and enqueueClaimSQL go
// on from it.
var enqueuePageSQL = `WITH i AS (
	SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bytea[], $8::text[])
		WITH ORDINALITY AS u(event_id, subject, fingerprint, connector, event_time, data, okey, n)),
e AS (
	INSERT INTO events (recipe, event_id, subject, fingerprint, connector, event_time, received, data)
	SELECT $1, event_id, subject, fingerprint, connector, event_time, $9, data FROM i ORDER BY n
	ON CONFLICT (recipe, event_id) DO NOTHING RETURNING id, event_id),
f AS (
	SELECT DISTINCT ON (i.event_id) e.id, i.okey, i.n, i.connector, i.subject, i.fingerprint,
		i.fingerprint != '' AND ` + echoSQL("i.connector", "i.subject", "i.fingerprint", "$1") + ` AS echo
	FROM e JOIN i ON i.event_id = e.event_id ORDER BY i.event_id, i.n)`

// enqueueManySQL stores a page's events and their runs, in arrival order
// (run IDs are the claim order): a run is suppressed at once when its
// event echoes a write of the recipe or its chain, else queued. Each new
// event answers its ordinal (from 1), run and status.
var enqueueManySQL = enqueuePageSQL + `,
r AS (
	INSERT INTO runs (event, recipe, okey, status, created, finished)
	SELECT f.id, $1, f.okey, CASE WHEN f.echo THEN 'suppressed' ELSE 'queued' END, $9, CASE WHEN f.echo THEN $9::bigint END
	FROM f ORDER BY f.n
	RETURNING id, event, status)
SELECT f.n, r.id, r.status FROM r JOIN f ON f.id = r.event`

// enqueueClaimSQL is enqueueManySQL with Advance.Claim: a run that is
// claimable (c) is inserted running, leased to $10 until $11 (started
// $12), as Claim would leave it. Claimable: the first run of its key in
// the page (k), with no run of the key queued or running before it; the
// key locks taken before this statement (lockKeysSQL) make that check see
// every earlier run of the key. That check is a scalar subquery, one
// lookup of runs_active_key per key: as NOT EXISTS, the planner made it a
// merge anti join over every entry of the index on a young table. A
// claimed run takes its cause's chain, as
// at a claim (claimedSQL), and its intent, among the lines $14… of the
// page's ordinals $13, is journaled (j) as Record would: the page, its
// claims and its intents cost one statement.
var enqueueClaimSQL = enqueuePageSQL + `,
k AS (
	SELECT DISTINCT ON (f.okey) f.n, f.okey, f.connector, f.subject, f.fingerprint FROM f
	WHERE NOT f.echo ORDER BY f.okey, f.n),
c AS (
	SELECT k.n, coalesce((SELECT CASE WHEN w.chain = '' THEN w.recipe ELSE w.chain || ',' || w.recipe END
		FROM echoes x JOIN runs w ON w.id = x.run
		WHERE x.connector = k.connector AND x.subject = k.subject AND x.fingerprint = k.fingerprint AND k.fingerprint != ''
		ORDER BY x.written DESC LIMIT 1), '') AS chain
	FROM k WHERE NOT coalesce((SELECT true FROM runs p WHERE p.okey = k.okey AND p.status IN ('queued', 'running') LIMIT 1), false)),
r AS (
	INSERT INTO runs (event, recipe, okey, status, attempts, owner, lease_until, created, started, finished, chain)
	SELECT f.id, $1, f.okey, CASE WHEN f.echo THEN 'suppressed' WHEN c.n IS NOT NULL THEN 'running' ELSE 'queued' END,
		CASE WHEN c.n IS NOT NULL THEN 1 ELSE 0 END, CASE WHEN c.n IS NOT NULL THEN $10::text END, CASE WHEN c.n IS NOT NULL THEN $11::bigint END,
		$9, CASE WHEN c.n IS NOT NULL THEN $12::bigint END, CASE WHEN f.echo THEN $9::bigint END, coalesce(c.chain, '')
	FROM f LEFT JOIN c ON c.n = f.n ORDER BY f.n
	RETURNING id, event, status),
j AS (
	INSERT INTO steps (run, idx, step_id, action, status, input, output, error, attempts, started, finished)
	SELECT r.id, t.idx, t.step_id, t.action, t.status, t.input, t.output, t.error, t.attempts, t.started, t.finished
	FROM unnest($13::bigint[], $14::int[], $15::text[], $16::text[], $17::text[], $18::bytea[], $19::bytea[], $20::text[], $21::int[], $22::bigint[], $23::bigint[])
		AS t(n, idx, step_id, action, status, input, output, error, attempts, started, finished)
	JOIN f ON f.n = t.n JOIN r ON r.event = f.id
	WHERE r.status = 'running'
	` + stepUpsertSQL + `)
SELECT f.n, r.id, r.status FROM r JOIN f ON f.id = r.event`

// Advance implements engine.TriggerStore. Its writes go in one batch, one
// round trip: the cursor, the subject states, the page's runs (with the
// locks of their ordering keys, taken first: lockKeysSQL) and its count of
// skipped events. With Advance.Claim, the statement that stores the runs
// also inserts the claimable ones running and journals their intents
// (enqueueClaimSQL). Only a page with skipped events that may be echoes
// reads first (echoesAmongSQL), and only a page that leaves runs queued
// notifies after.
func (s *Store) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	out := make([]engine.Enqueued, len(adv.Events))
	// A claim's lease is on the database's clock (clock.go), read before
	// the transaction takes a connection.
	var claimAt []int64
	if c := adv.Claim; c != nil {
		var err error
		if claimAt, err = s.dbTimes(ctx, c.Now.Add(c.Lease), c.Now); err != nil {
			return nil, fmt.Errorf("advancing the trigger of recipe %q: %w", recipe, err)
		}
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		now := time.Now().UnixNano()
		skipped, sample := 0, []engine.SkippedEvent(nil)
		// Phase 1, one statement: which skipped events echo a write
		// (those are recorded as suppressed runs, as any echo).
		echoOfSkip := make([]bool, len(adv.Events))
		var checked []int
		var cConns, cSubs, cFps []string
		for i, ev := range adv.Events {
			if ev.Skipped && ev.Fingerprint != "" {
				checked = append(checked, i)
				cConns, cSubs, cFps = append(cConns, ev.Connector), append(cSubs, ev.Subject), append(cFps, ev.Fingerprint)
			}
		}
		if len(checked) > 0 {
			rows, err := tx.Query(ctx, echoesAmongSQL, cConns, cSubs, cFps, recipe)
			if err != nil {
				return fmt.Errorf("looking up echoes of %d skipped events: %w", len(checked), err)
			}
			hits, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return fmt.Errorf("looking up echoes of %d skipped events: %w", len(checked), err)
			}
			for _, n := range hits {
				echoOfSkip[checked[n-1]] = true
			}
		}
		// Phase 2, one batch.
		var stored []int
		var ids, subjects, fps, conns, keys []string
		var times []*int64
		var datas [][]byte
		for i, ev := range adv.Events {
			out[i] = engine.Enqueued{EventID: ev.ID}
			if ev.Skipped && !echoOfSkip[i] {
				// Counted on the page, not stored: see engine.NewEvent.
				skipped++
				if len(ev.Values) > 0 && len(sample) < engine.SkipSample {
					sample = append(sample, engine.SkippedEvent{EventID: ev.ID, Subject: ev.Subject, Values: ev.Values})
				}
				out[i].Status = engine.RunSkipped
				continue
			}
			data := ev.Data
			if data == nil && ev.Encode != nil {
				var err error
				if data, err = ev.Encode(); err != nil {
					return fmt.Errorf("event %q: encoding its data: %w", ev.ID, err)
				}
			}
			if data == nil {
				data = []byte{}
			}
			key := ev.OrderingKey
			if key == "" {
				key = "event:" + ev.ID
			}
			stored = append(stored, i)
			ids, subjects, fps, conns, keys = append(ids, ev.ID), append(subjects, ev.Subject), append(fps, ev.Fingerprint), append(conns, ev.Connector), append(keys, key)
			times, datas = append(times, nanosPtr(ev.Time)), append(datas, data)
		}
		b := &pgx.Batch{}
		var whats []string // what each statement of b does, for its error
		queue := func(what, sql string, args ...any) {
			b.Queue(sql, args...)
			whats = append(whats, what)
		}
		if adv.Cursor != nil {
			queue("saving the cursor", `INSERT INTO cursors (recipe, cursor, updated) VALUES ($1, $2, $3)
				ON CONFLICT (recipe) DO UPDATE SET cursor = excluded.cursor, updated = excluded.updated`, recipe, *adv.Cursor, now)
		}
		if len(adv.States) > 0 {
			subs, states := make([]string, len(adv.States)), make([]string, len(adv.States))
			for i, st := range adv.States {
				subs[i], states[i] = st.Subject, st.State
			}
			// The last state of a subject wins, as in a loop of upserts.
			queue("saving subject states", `INSERT INTO subject_states (recipe, subject, state)
				SELECT DISTINCT ON (sub) $1, sub, st FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(sub, st, n) ORDER BY sub, n DESC
				ON CONFLICT (recipe, subject) DO UPDATE SET state = excluded.state`, recipe, subs, states)
		}
		enqueued := -1 // the statement that answers the runs, in whats
		if len(stored) > 0 {
			locks := make([]int64, len(keys))
			for i, k := range keys {
				locks[i] = lockKey("okey", s.schema, k)
			}
			if c := adv.Claim; c != nil {
				// The intents of the events that may be claimed, by their
				// ordinals among the stored.
				var intentAt []int64
				var intents stepCols
				for n, i := range stored {
					if in := adv.Events[i].Intent; in != nil {
						intentAt = append(intentAt, int64(n+1))
						intents.add(in)
					}
				}
				queue(fmt.Sprintf("planning the claim of %d events", len(stored)), claimPlanSQL)
				queue(fmt.Sprintf("locking the ordering keys of %d events", len(stored)), lockKeysSQL, locks)
				args := append([]any{recipe, ids, subjects, fps, conns, times, datas, keys, now, c.Owner, claimAt[0], claimAt[1], intentAt}, intents.args()...)
				queue(fmt.Sprintf("enqueueing and claiming %d events", len(stored)), enqueueClaimSQL, args...)
			} else {
				queue(fmt.Sprintf("locking the ordering keys of %d events", len(stored)), lockKeysSQL, locks)
				queue(fmt.Sprintf("enqueueing %d events", len(stored)), enqueueManySQL, recipe, ids, subjects, fps, conns, times, datas, keys, now)
			}
			enqueued = len(whats) - 1
		}
		if skipped > 0 {
			var raw []byte
			if len(sample) > 0 {
				var err error
				if raw, err = json.Marshal(sample); err != nil {
					return fmt.Errorf("encoding the sample of skipped events: %w", err)
				}
			}
			queue(fmt.Sprintf("counting %d skipped event(s)", skipped), `INSERT INTO skip_pages (recipe, count, sample, created) VALUES ($1, $2, $3, $4)`, recipe, skipped, raw, now)
		}
		if b.Len() == 0 {
			return nil
		}
		queued := false
		br := tx.SendBatch(ctx, b)
		err := func() error {
			defer br.Close()
			for k, what := range whats {
				if k != enqueued {
					if _, err := br.Exec(); err != nil {
						return fmt.Errorf("%s: %w", what, err)
					}
					continue
				}
				rows, err := br.Query()
				if err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
				for rows.Next() {
					var n, id int64
					var status string
					if err := rows.Scan(&n, &id, &status); err != nil {
						rows.Close()
						return fmt.Errorf("%s: %w", what, err)
					}
					i := stored[n-1]
					out[i].RunID, out[i].Status = id, status
					switch status {
					case engine.RunQueued:
						queued = true
					case engine.RunRunning:
						// As Claim would load it: an echo was suppressed, so
						// a claimed run is never one.
						ev := &adv.Events[i]
						out[i].Run = &engine.ClaimedRun{ID: id, Recipe: recipe, EventID: ev.ID, Subject: ev.Subject,
							Fingerprint: ev.Fingerprint, Connector: ev.Connector, OrderingKey: keys[n-1],
							Attempts: 1, Token: 1, Data: datas[n-1]}
						out[i].Journaled = ev.Intent != nil
					}
				}
				if err := rows.Err(); err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
			}
			return br.Close()
		}()
		if err != nil {
			return err
		}
		if queued {
			// Runs for the other runners: wake them.
			return s.notify(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("advancing the trigger of recipe %q: %w", recipe, err)
	}
	return out, nil
}

// claimedSQL ends a claim: it marks the runs of c (a CTE the claim
// defines, of claimable run IDs) running for owner $1 until $2 (started at
// $3 unless they ran before) and loads them. A run that follows from
// memberflow's own write (its event echoes a write of another recipe)
// takes the writer's chain, so that its writes carry the chain on and the
// echo never comes back to a recipe already in it. Advance (its Claim)
// does the same as it inserts a run claimed with its page
// (enqueueClaimSQL), so that the run is the one Claim would have returned.
var claimedSQL = `,
u AS (
	UPDATE runs r SET status = 'running', owner = $1, lease_until = $2, attempts = r.attempts + 1, started = coalesce(r.started, $3),
		chain = coalesce((SELECT CASE WHEN w.chain = '' THEN w.recipe ELSE w.chain || ',' || w.recipe END
			FROM events e JOIN echoes x ON x.connector = e.connector AND x.subject = e.subject AND x.fingerprint = e.fingerprint
			JOIN runs w ON w.id = x.run
			WHERE e.id = r.event AND e.fingerprint != ''
			ORDER BY x.written DESC LIMIT 1), r.chain)
	FROM c WHERE r.id = c.id AND r.status = 'queued'
	RETURNING r.id, r.recipe, r.okey, r.attempts, r.event)
SELECT u.id, u.recipe, u.okey, u.attempts, e.event_id, e.subject, e.fingerprint, e.connector, e.data,
	e.fingerprint != '' AND ` + echoSQL("e.connector", "e.subject", "e.fingerprint", "u.recipe") + `
FROM u JOIN events e ON e.id = u.event`

// claimSQL claims the first claimable runs of the recipes $4, at most $5,
// and loads them, in one statement.
var claimSQL = `WITH c AS (
	SELECT r.id FROM runs r
	WHERE r.status = 'queued' AND (r.recipe || '') = ANY($4)
	  AND NOT EXISTS (SELECT 1 FROM runs p WHERE p.okey = r.okey AND p.id < r.id AND p.status IN ('queued', 'running'))
	ORDER BY r.id LIMIT $5
	FOR UPDATE SKIP LOCKED)` + claimedSQL

// lockKeysSQL takes the transaction's advisory locks on the ordering keys
// $1 (hashed), in one order, so that two advances with a key in common
// never deadlock. Taken before the runs are inserted, they order the
// advances that share a key: the later one gets the greater run IDs and,
// its statements seeing the earlier one committed, never claims a run
// that an earlier run of its key, not yet committed, should precede.
const lockKeysSQL = `SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT k FROM unnest($1::bigint[]) AS u(k) ORDER BY k) l`

// claimPlanSQL steers the plans of the claim statements, for the rest of
// the transaction. Left to itself the planner, misled by a young table's
// statistics, reads every queued run and sorts them (O(queue) per
// claim), and checks each run's key against every queued or running run
// (O(page × active runs) per advance: 0.1 to 0.7 s a page of 100 with
// 10,000 runs running). Turning plans off makes their cost huge, which
// must not make the server compile the claim (JIT: seconds per claim).
const claimPlanSQL = `SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true), set_config('jit', 'off', true)`

// scanClaimed reads the rows of claimedSQL, in ID order.
func scanClaimed(rows pgx.Rows) ([]*engine.ClaimedRun, error) {
	defer rows.Close()
	var out []*engine.ClaimedRun
	for rows.Next() {
		r := &engine.ClaimedRun{}
		var data []byte
		if err := rows.Scan(&r.ID, &r.Recipe, &r.OrderingKey, &r.Attempts, &r.EventID, &r.Subject, &r.Fingerprint, &r.Connector, &data, &r.Echo); err != nil {
			return nil, fmt.Errorf("loading claimed runs: %w", err)
		}
		r.Data, r.Token = data, int64(r.Attempts)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading claimed runs: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// expireSQL puts back in the queue the runs whose lease ended before $1.
const expireSQL = `UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL
	WHERE id IN (SELECT id FROM runs WHERE status = 'running' AND lease_until < $1 FOR UPDATE SKIP LOCKED)`

// Claim implements engine.RunQueue. The recipe is tested through an
// expression (the recipe joined to an empty string), so that the planner
// walks the queued runs in ID order and stops at the limit, rather than
// AND-ing a bitmap of every run of the recipes (O(runs) per claim).
// Expired leases are put back in the
// queue first (at most once a second per store handle); then the
// claimable runs are locked with SKIP LOCKED, so that concurrent claimers
// take different runs without waiting. A run blocked by an earlier run of
// its key stays blocked while that run is queued or running, committed or
// not: claimers never break the order of a key.
func (s *Store) Claim(ctx context.Context, req engine.ClaimRequest) ([]*engine.ClaimedRun, error) {
	if len(req.Recipes) == 0 || req.Limit <= 0 {
		return nil, nil
	}
	var out []*engine.ClaimedRun
	// On the database's clock (clock.go), read before the transaction
	// takes a connection.
	at, err := s.dbTimes(ctx, req.Now, req.Now.Add(req.Lease))
	if err != nil {
		return nil, fmt.Errorf("claiming runs: %w", err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		now := at[0]
		s.mu.Lock()
		expire := req.Now.Sub(s.lastExpiry) >= time.Second || req.Now.Before(s.lastExpiry)
		if expire {
			s.lastExpiry = req.Now
		}
		s.mu.Unlock()
		// The claimable runs are the first queued ones in ID order: walk
		// the queued index in that order and stop at the limit. The
		// settings (claimPlanSQL), the expiry and the claim go in one
		// round trip. The expiry comes after the settings: as a bitmap
		// scan, it read every entry of runs_owner (a run that ran leaves
		// one until a vacuum), a cost a second that grew with the table;
		// an index scan marks the dead ones, which later scans skip.
		b := &pgx.Batch{}
		b.Queue(claimPlanSQL)
		if expire {
			b.Queue(expireSQL, now)
		}
		b.Queue(claimSQL, req.Owner, at[1], now, req.Recipes, req.Limit)
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		if expire {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("requeueing runs with an expired lease: %w", err)
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if out, err = scanClaimed(rows); err != nil {
			return err
		}
		return br.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("claiming runs: %w", err)
	}
	return out, nil
}

// renewSQL extends to $1 the leases of the runs $3 that owner $2 runs.
// The runs are found by primary key: the runner names them.
const renewSQL = `UPDATE runs SET lease_until = $1 WHERE id = ANY($3) AND owner = $2 AND status = 'running' RETURNING id`

// releaseSQL puts back in the queue the runs owner $1 holds under a
// lease that ends before $2 and that the renewal does not name ($3): the
// runner vouched that it does not work on them. A run another
// transaction has locked (an expiry, a write) is skipped: the next
// renewal, or its lease's end, frees it.
const releaseSQL = `UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL
	WHERE id IN (SELECT id FROM runs WHERE owner = $1 AND status = 'running' AND lease_until < $2 AND NOT (id = ANY($3))
		FOR UPDATE SKIP LOCKED)`

// RenewLeases implements engine.RunQueue. A run owner holds and does not
// name keeps its lease, which ends (Claim's expiry then puts it back in
// the queue), unless that lease ends before releaseBefore: the renewal
// then puts it back in the queue itself, and wakes the runners.
func (s *Store) RenewLeases(ctx context.Context, owner string, until time.Time, runs []int64, releaseBefore time.Time) ([]int64, error) {
	var held []int64
	if runs == nil {
		runs = []int64{} // = ANY(NULL) is NULL, and NOT NULL too
	}
	release := !releaseBefore.IsZero()
	if releaseBefore.After(until) {
		releaseBefore = until
	}
	at, err := s.dbTimes(ctx, until, releaseBefore)
	if err != nil {
		return nil, fmt.Errorf("renewing the leases of %q: %w", owner, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, renewSQL, at[0], owner, runs)
		if err != nil {
			return err
		}
		if held, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return err
		}
		if release {
			tag, err := tx.Exec(ctx, releaseSQL, owner, at[1], runs)
			if err != nil {
				return fmt.Errorf("requeueing the unnamed runs: %w", err)
			}
			if tag.RowsAffected() > 0 {
				if err := s.notify(ctx, tx); err != nil {
					return err
				}
			}
		}
		_, err = tx.Exec(ctx, `UPDATE runners SET seen = $1 WHERE owner = $2`, time.Now().UnixNano(), owner)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("renewing the leases of %q: %w", owner, err)
	}
	return held, nil
}

// ReleaseOwner implements engine.RunQueue.
func (s *Store) ReleaseOwner(ctx context.Context, owner string) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL WHERE owner = $1 AND status = 'running'`, owner)
		if err != nil {
			return err
		}
		if n = tag.RowsAffected(); n > 0 {
			return s.notify(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("releasing the runs of %q: %w", owner, err)
	}
	return int(n), nil
}

// Steps implements engine.Journal.
func (s *Store) Steps(ctx context.Context, runID int64) ([]engine.StepRecord, error) {
	return steps(ctx, s.pool, runID)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func steps(ctx context.Context, q querier, runID int64) ([]engine.StepRecord, error) {
	rows, err := q.Query(ctx, `SELECT idx, step_id, action, status, input, output, error, attempts, started, finished
		FROM steps WHERE run = $1 ORDER BY idx`, runID)
	if err != nil {
		return nil, fmt.Errorf("reading the journal of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []engine.StepRecord
	for rows.Next() {
		r := engine.StepRecord{RunID: runID}
		var in, outp []byte
		var errText *string
		var started, finished *int64
		if err := rows.Scan(&r.Index, &r.StepID, &r.Action, &r.Status, &in, &outp, &errText, &r.Attempts, &started, &finished); err != nil {
			return nil, err
		}
		r.Input, r.Output = in, outp
		if errText != nil {
			r.Error = *errText
		}
		r.Started, r.Finished = fromNanos(started), fromNanos(finished)
		out = append(out, r)
	}
	return out, rows.Err()
}

// stepUpsertSQL ends an insert of journal lines: a later line of a step
// replaces the earlier.
const stepUpsertSQL = `ON CONFLICT (run, idx) DO UPDATE SET status = excluded.status, input = excluded.input, output = excluded.output,
		error = excluded.error, attempts = excluded.attempts, started = excluded.started, finished = excluded.finished`

// recordSQL is Record in one statement (one round trip, atomic): the
// run's row is locked first (f), so that a take-over and this write are
// ordered; every change is conditioned on the lease (f has a row), and the
// statement answers whether it did. The status is tested through an
// expression, so that the run is found by its primary key: a plan cached
// while the table was young found it by walking the index of the active
// runs (runs_active_key, whose predicate the status implies), a cost that
// grew with the runs that ever ran (0.02 ms a call at first, 0.3 ms at
// 30,000 runs).
const recordSQL = `WITH f AS (
	SELECT id FROM runs WHERE id = $1 AND (status || '') = 'running' AND attempts = $2 FOR UPDATE),
s AS (
	INSERT INTO steps (run, idx, step_id, action, status, input, output, error, attempts, started, finished)
	SELECT $1, u.idx, u.step_id, u.action, u.status, u.input, u.output, u.error, u.attempts, u.started, u.finished
	FROM unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::bytea[], $9::text[], $10::int[], $11::bigint[], $12::bigint[])
		AS u(idx, step_id, action, status, input, output, error, attempts, started, finished)
	WHERE EXISTS (SELECT 1 FROM f)
	` + stepUpsertSQL + `),
x AS (
	INSERT INTO echoes (connector, subject, fingerprint, run, written)
	SELECT DISTINCT ON (c, sub, fp) c, sub, fp, $1, w FROM unnest($13::text[], $14::text[], $15::text[], $16::bigint[]) AS u(c, sub, fp, w)
	WHERE EXISTS (SELECT 1 FROM f)
	ON CONFLICT (connector, subject, fingerprint) DO UPDATE SET run = excluded.run, written = excluded.written),
r AS (
	UPDATE runs SET status = $18, error = $19, condition = $20, cond_values = $21, finished = $22, owner = NULL, lease_until = NULL,
		version = coalesce($23::text, version)
	WHERE id = $1 AND $17 AND EXISTS (SELECT 1 FROM f))
SELECT count(*) FROM f`

// Record implements engine.Journal.
func (s *Store) Record(ctx context.Context, lease engine.Lease, recs []engine.StepRecord, fin *engine.Completion) error {
	args, err := recordArgs(lease, recs, fin)
	if err != nil {
		return err
	}
	var held int
	if err := s.pool.QueryRow(ctx, recordSQL, args...).Scan(&held); err != nil {
		return fmt.Errorf("journaling run %d: %w", lease.RunID, err)
	}
	if held == 0 {
		return &engine.LeaseLostError{RunID: lease.RunID, Token: lease.Token}
	}
	if fin != nil && fin.Status == engine.RunQueued {
		// A run given back is claimable at once: tell the other runners.
		s.pool.Exec(ctx, `SELECT pg_notify($1, '')`, s.channel)
	}
	return nil
}

// recordArgs are recordSQL's parameters for one Record.
func recordArgs(lease engine.Lease, recs []engine.StepRecord, fin *engine.Completion) ([]any, error) {
	var steps stepCols
	var echoes echoCols
	f, err := addRecord(lease, recs, fin, &steps, &echoes)
	if err != nil {
		return nil, err
	}
	args := append([]any{lease.RunID, lease.Token}, steps.args()...)
	return append(args, echoes.conns, echoes.subs, echoes.fps, echoes.written,
		fin != nil, f.status, f.err, f.cond, f.values, f.finished, f.version), nil
}

// finRow is a Record's outcome as the columns of its run (zero without
// one).
type finRow struct {
	status   string
	err      *string
	cond     *bool
	values   []byte
	finished *int64
	version  *string
}

// addRecord appends the journal lines of one Record to steps (a later
// line of an index replacing an earlier one: one statement may not upsert
// a row twice) and its writes to echoes, and answers its outcome's
// columns. A Record naming another run than its lease's appends nothing.
func addRecord(lease engine.Lease, recs []engine.StepRecord, fin *engine.Completion, steps *stepCols, echoes *echoCols) (finRow, error) {
	last := make(map[int]int, len(recs))
	for i, r := range recs {
		if r.RunID != lease.RunID {
			return finRow{}, fmt.Errorf("journaling step %q of run %d under the lease of run %d", r.StepID, r.RunID, lease.RunID)
		}
		last[r.Index] = i
	}
	var f finRow
	if fin != nil {
		if fin.RunID != lease.RunID {
			return finRow{}, fmt.Errorf("finishing run %d under the lease of run %d", fin.RunID, lease.RunID)
		}
		f.status, f.cond = fin.Status, fin.Condition
		if fin.Error != "" {
			f.err = &fin.Error
		}
		if len(fin.Values) > 0 {
			f.values = fin.Values
		}
		if fin.Status != engine.RunQueued {
			// The recipe version that ran (engine.Versions).
			f.finished = nanosPtr(fin.Finished)
			if fin.Version != "" {
				f.version = &fin.Version
			}
		}
	}
	for i := range recs {
		r := &recs[i]
		echoes.add(r)
		if last[r.Index] == i {
			steps.add(r)
		}
	}
	return f, nil
}

// echoCols are the writes steps made as the columns of the echoes table:
// (connector, subject, fingerprint, written).
type echoCols struct {
	conns, subs, fps []string
	written          []int64
}

func (c *echoCols) add(r *engine.StepRecord) {
	at := r.Finished
	if at.IsZero() {
		at = time.Now()
	}
	for _, w := range r.Wrote {
		c.conns, c.subs, c.fps, c.written = append(c.conns, w.Connector), append(c.subs, w.Subject), append(c.fps, w.Fingerprint), append(c.written, at.UnixNano())
	}
}

// stepCols are journal lines as the columns of the steps table, one array
// each, as unnest reads them: (idx, step_id, action, status, input,
// output, error, attempts, started, finished).
type stepCols struct {
	idx, attempts              []int32
	stepIDs, actions, statuses []string
	errs                       []*string
	inputs, outputs            [][]byte
	started, finished          []*int64
}

func (c *stepCols) add(r *engine.StepRecord) {
	c.idx, c.attempts = append(c.idx, int32(r.Index)), append(c.attempts, int32(r.Attempts))
	c.stepIDs, c.actions, c.statuses = append(c.stepIDs, r.StepID), append(c.actions, r.Action), append(c.statuses, r.Status)
	var e *string
	if r.Error != "" {
		e = &r.Error
	}
	c.errs = append(c.errs, e)
	var in, out []byte
	if len(r.Input) > 0 {
		in = r.Input
	}
	if len(r.Output) > 0 {
		out = r.Output
	}
	c.inputs, c.outputs = append(c.inputs, in), append(c.outputs, out)
	c.started, c.finished = append(c.started, nanosPtr(r.Started)), append(c.finished, nanosPtr(r.Finished))
}

// args are the ten arrays, in the columns' order.
func (c *stepCols) args() []any {
	return []any{c.idx, c.stepIDs, c.actions, c.statuses, c.inputs, c.outputs, c.errs, c.attempts, c.started, c.finished}
}

func nanosPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

// Backlog implements engine.RunQueue.
func (s *Store) Backlog(ctx context.Context, recipes []string) (int, error) {
	if len(recipes) == 0 {
		return 0, nil
	}
	var n int
	// The recipe is tested through an expression, so that the count reads
	// the index of the active runs only (runs_active_key), not also every
	// run of the recipes (runs_by_recipe), as a bitmap AND did on a table
	// without statistics.
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM runs WHERE status IN ('queued', 'running') AND (recipe || '') = ANY($1)`, recipes).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting the backlog: %w", err)
	}
	return n, nil
}

// LeadPoll implements engine.TriggerStore.
func (s *Store) LeadPoll(ctx context.Context, recipe, owner string, until time.Time) (bool, error) {
	at, err := s.dbTimes(ctx, until, s.now())
	if err != nil {
		return false, fmt.Errorf("leading the poller of recipe %q: %w", recipe, err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO poll_leases (recipe, owner, lease_until) VALUES ($1, $2, $3)
		ON CONFLICT (recipe) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
		WHERE poll_leases.owner = excluded.owner OR poll_leases.lease_until < $4`, recipe, owner, at[0], at[1])
	if err != nil {
		return false, fmt.Errorf("leading the poller of recipe %q: %w", recipe, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Join implements engine.RunQueue. The proof of life is a session
// advisory lock held on a connection of its own.
func (s *Store) Join(ctx context.Context, r engine.RunnerInfo) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live[r.Owner]; !ok {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return 0, fmt.Errorf("joining as %q: %w", r.Owner, err)
		}
		var got bool
		if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey("runner", s.schema, r.Owner)).Scan(&got); err != nil {
			c.Release()
			return 0, fmt.Errorf("joining as %q: %w", r.Owner, err)
		}
		if !got {
			c.Release()
			return 0, fmt.Errorf("joining as %q: a live runner already uses this owner name: give each runner its own --owner (or none: the default is unique)", r.Owner)
		}
		s.live[r.Owner] = c
	}
	now := time.Now()
	if r.Started.IsZero() {
		r.Started = now
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO runners (owner, host, pid, started, seen) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (owner) DO UPDATE SET host = excluded.host, pid = excluded.pid, started = excluded.started, seen = excluded.seen`,
		r.Owner, r.Host, r.PID, r.Started.UnixNano(), now.UnixNano()); err != nil {
		return 0, fmt.Errorf("joining as %q: %w", r.Owner, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT owner FROM runners WHERE owner != $1
		UNION SELECT DISTINCT owner FROM runs WHERE status = 'running' AND owner != $1
		UNION SELECT owner FROM poll_leases WHERE owner != $1`, r.Owner)
	if err != nil {
		return 0, fmt.Errorf("joining as %q: %w", r.Owner, err)
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("joining as %q: %w", r.Owner, err)
	}
	probe, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("joining as %q: %w", r.Owner, err)
	}
	defer probe.Release()
	released := 0
	for _, o := range others {
		if _, mine := s.live[o]; mine {
			continue
		}
		key := lockKey("runner", s.schema, o)
		var free bool
		if err := probe.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&free); err != nil {
			return released, fmt.Errorf("joining as %q: %w", r.Owner, err)
		}
		if !free {
			continue
		}
		n, err := s.releaseDead(ctx, o)
		probe.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key)
		if err != nil {
			return released, fmt.Errorf("joining as %q: %w", r.Owner, err)
		}
		if n > 0 {
			s.log.Info("resuming the runs of a runner that died", "owner", o, "runs", n)
		}
		released += n
	}
	return released, nil
}

func (s *Store) releaseDead(ctx context.Context, owner string) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL WHERE owner = $1 AND status = 'running'`, owner)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM poll_leases WHERE owner = $1`, owner); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM runners WHERE owner = $1`, owner); err != nil {
			return err
		}
		if n > 0 {
			return s.notify(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("releasing the runs of %q, which died: %w", owner, err)
	}
	return int(n), nil
}

// Leave implements engine.RunQueue.
func (s *Store) Leave(ctx context.Context, owner string) error {
	s.mu.Lock()
	c := s.live[owner]
	delete(s.live, owner)
	s.mu.Unlock()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM poll_leases WHERE owner = $1`, owner); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM runners WHERE owner = $1`, owner)
		return err
	})
	if c != nil {
		// Unlocked before the session ends: the server ends a closed
		// session a moment after the client.
		c.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lockKey("runner", s.schema, owner))
		c.Conn().Close(context.Background())
		c.Release()
	}
	if err != nil {
		return fmt.Errorf("leaving as %q: %w", owner, err)
	}
	return nil
}

// Runners implements engine.RunnerLister.
func (s *Store) Runners(ctx context.Context) ([]engine.RunnerInfo, error) {
	at, err := s.dbTimes(ctx, s.now())
	if err != nil {
		return nil, fmt.Errorf("listing runners: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT w.owner, w.host, w.pid, w.started, w.seen,
			(SELECT count(*) FROM runs r WHERE r.owner = w.owner AND r.status = 'running'),
			coalesce((SELECT string_agg(recipe, ',' ORDER BY recipe) FROM poll_leases p WHERE p.owner = w.owner AND p.lease_until >= $1), '')
		FROM runners w ORDER BY w.started, w.owner`, at[0])
	if err != nil {
		return nil, fmt.Errorf("listing runners: %w", err)
	}
	defer rows.Close()
	var out []engine.RunnerInfo
	for rows.Next() {
		var ri engine.RunnerInfo
		var started, seen int64
		var polling string
		if err := rows.Scan(&ri.Owner, &ri.Host, &ri.PID, &started, &seen, &ri.Runs, &polling); err != nil {
			return nil, fmt.Errorf("listing runners: %w", err)
		}
		ri.Started, ri.Seen = time.Unix(0, started).UTC(), time.Unix(0, seen).UTC()
		if polling != "" {
			ri.Polling = strings.Split(polling, ",")
		}
		out = append(out, ri)
	}
	return out, rows.Err()
}
