// Package sqlitestore is the embedded engine.Store: one SQLite file in WAL
// mode (synchronous=NORMAL: a committed transaction survives a crash of the
// process; a power loss may lose the last few), on modernc.org/sqlite.
//
// Every write goes through one committer goroutine that batches the writes
// of many workers into one transaction (group commit) and acknowledges each
// after the commit; reads use a separate pool of connections, which WAL
// lets run beside the writer. When one write of a batch fails, the batch is
// rolled back and its writes are retried one transaction each, so that a
// bad write never takes others down with it.
package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/memberflow/memberflow/engine"
)

// migrations are applied in order; the schema's version is their count.
// Never edit a released migration: append a new one.
// SchemaVersion is the version of the store schema this memberflow
// writes: a store at an older one is migrated when opened (with no runner
// using it), one at a newer one is refused.
func SchemaVersion() int { return len(migrations) }

var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE events (
	id          INTEGER PRIMARY KEY,
	recipe      TEXT    NOT NULL,
	event_id    TEXT    NOT NULL,
	subject     TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	connector   TEXT    NOT NULL,
	event_time  INTEGER,
	received    INTEGER NOT NULL,
	data        BLOB    NOT NULL,
	UNIQUE (recipe, event_id)
);
CREATE TABLE runs (
	id          INTEGER PRIMARY KEY,
	event       INTEGER NOT NULL REFERENCES events(id),
	recipe      TEXT    NOT NULL,
	okey        TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	owner       TEXT,
	lease_until INTEGER,
	error       TEXT,
	condition   INTEGER,
	cond_values BLOB,
	created     INTEGER NOT NULL,
	started     INTEGER,
	finished    INTEGER
);
CREATE INDEX runs_queued     ON runs(id)        WHERE status = 'queued';
CREATE INDEX runs_active_key ON runs(okey, id)  WHERE status IN ('queued', 'running');
CREATE INDEX runs_owner      ON runs(owner)     WHERE status = 'running';
-- Only dead letters are looked up by status often enough to index: an
-- index on every status would be rewritten at every claim and outcome.
CREATE INDEX runs_dead       ON runs(id)        WHERE status = 'dead';
CREATE INDEX runs_by_recipe  ON runs(recipe, id);
CREATE TABLE steps (` + stepsColumns + `) WITHOUT ROWID;
CREATE TABLE cursors (
	recipe  TEXT PRIMARY KEY,
	cursor  TEXT    NOT NULL,
	updated INTEGER NOT NULL
);
CREATE TABLE subject_states (
	recipe  TEXT NOT NULL,
	subject TEXT NOT NULL,
	state   TEXT NOT NULL,
	PRIMARY KEY (recipe, subject)
) WITHOUT ROWID;
-- Only the newest write per subject is kept: an event is an echo when the
-- record is still in the state memberflow left it in.
CREATE TABLE echoes (
	connector   TEXT    NOT NULL,
	subject     TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	run         INTEGER,
	written     INTEGER NOT NULL,
	PRIMARY KEY (connector, subject)
) WITHOUT ROWID;
` + stepViews,
	// 2: echo suppression per recipe. chain lists the recipes whose
	// writes led to a run; an event that echoes a write suppresses only
	// the recipes in the writer's chain (and the writer's own), so a
	// certificate memberflow issued still reaches the recipe that pushes
	// it to the member, while ping-pong between two recipes stops.
	// Every state memberflow wrote is kept, not only the newest: when two
	// recipes write one record in turn, each must still recognise its own
	// earlier write.
	`ALTER TABLE runs ADD COLUMN chain TEXT NOT NULL DEFAULT '';
CREATE TABLE echoes_by_state (
	connector   TEXT    NOT NULL,
	subject     TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	run         INTEGER,
	written     INTEGER NOT NULL,
	PRIMARY KEY (connector, subject, fingerprint)
) WITHOUT ROWID;
INSERT INTO echoes_by_state SELECT connector, subject, fingerprint, run, written FROM echoes;
DROP TABLE echoes;
ALTER TABLE echoes_by_state RENAME TO echoes;`,
	// 3: named values beside the state: OAuth tokens, connection
	// identities (meta.go).
	metaMigration,
	// 4: skipped events are counted per page, not stored (see skips.go).
	skipPagesMigration,
	// 5: several runners on one store. runners lists the runners that
	// joined (their proof of life is a lock file beside the store);
	// poll_leases says which runner polls each recipe's trigger.
	`CREATE TABLE runners (
	owner   TEXT PRIMARY KEY,
	host    TEXT    NOT NULL,
	pid     INTEGER NOT NULL,
	started INTEGER NOT NULL,
	seen    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE poll_leases (
	recipe      TEXT PRIMARY KEY,
	owner       TEXT    NOT NULL,
	lease_until INTEGER NOT NULL
) WITHOUT ROWID;`,
	// 6: recipe versions and the attempts replays ended (versions.go).
	versionsMigration,
	// 7: runs found by subject (console.go).
	subjectIndexMigration,
	// 8: the runs claimed with a page are held by one row until each is
	// recorded (pageclaims.go).
	pageClaimsMigration,
	// 9: subject states are appended to a log and merged into
	// subject_states in bulk (statelog.go).
	stateLogMigration,
	// 10: the runs a page claim holds that end together are one row
	// until read (outcomes.go).
	pageOutcomesMigration,
	// 11: steps in a table keyed by rowid (stepsRowidMigration).
	stepsRowidMigration,
	// 12: remembered writes name their run's recipe and chain
	// (echowriters.go).
	echoWritersMigration,
}

// Options tune the store.
type Options struct {
	Logger hclog.Logger
	// BusyTimeout is how long a write waits for another process's lock.
	BusyTimeout time.Duration
	// MaxBatch bounds the writes committed together; default 512.
	MaxBatch int
	// CheckpointEvery is the period of background checkpoints; default
	// 250 ms. Negative turns them off (the WAL then only grows: tests).
	CheckpointEvery time.Duration
	// MergeStates is the length of the subject states' log at which an
	// advance merges it into subject_states (statelog.go); default 16,384.
	MergeStates int
}

// Store is the SQLite engine.Store.
type Store struct {
	path   string
	w      *sql.DB // one connection: the single writer
	r      *sql.DB // readers
	ck     *sql.DB // one connection: the checkpointer
	ckDone chan struct{}
	log    hclog.Logger
	ops    chan *op
	quit   chan struct{}
	done   chan struct{}
	close  sync.Once
	max    int
	// mergeStates is Options.MergeStates; overlay what this handle read
	// of the subject states' log (statelog.go).
	mergeStates int
	overlay     stateOverlay

	// prepared on the writer
	setChain, upCursor, upStep, upEcho, finRun, claimRuns, loadRuns, pageEchoes, renew, releaseUnnamedRuns, expire, fence *sql.Stmt
	// candidates selects claimable runs, one statement per recipe set:
	// the names are literals so that the plan never depends on a binding.
	candMu     sync.Mutex
	candidates map[string]*sql.Stmt
	lastExpiry time.Time // when expired leases were last requeued
	// live holds the proof-of-life locks of the runners that joined
	// through this handle, by owner.
	liveMu sync.Mutex
	live   map[string]*liveLock
	// prepared on the readers
	getCursor, getStates, getSteps *sql.Stmt
	// setVersion records the recipe version a run ran with (versions.go).
	setVersion *sql.Stmt
	// RecordMany's (journal.go): multi-row writes and the leases of many
	// runs at once.
	upSteps, upEchoes, finRuns multiStmt
	// Advance's: the events and runs of a page, its states, the events
	// it stored, and the last IDs given.
	insEvents, insRuns, insStateLog, upStates multiStmt
	eventsFrom, lastIDs, stateLogSpan         *sql.Stmt
	// Advance's key check: the keys of runs queued or running (some, or
	// those of the page), the keys of the live page claims, and those
	// some of them hold; claimKeys are the claims' keys decoded
	// (heldkeys.go).
	activeKeys, someActiveKeys, liveClaimKeys, heldKeys *sql.Stmt
	claimKeys                                           claimKeys
	// Advance's skipped events: whether the connector has echoes at all,
	// and the page's count.
	someEcho, insSkipPage *sql.Stmt
	// PriorStates': the states' merge mark and the log after an ID.
	getMerged, getStateLog *sql.Stmt
	fenceMany              *sql.Stmt
	// Page claims' (pageclaims.go): the runs claimed with pages, and
	// those inserted finished.
	insFinal                                                                                    multiStmt
	insClaim, insClaimRuns, takeClaim, dropClaim, renewClaims, ownerPaged, notRuns, claimLeases *sql.Stmt
	insOutcomes, insEnded                                                                       *sql.Stmt
	// paged remembers the runs this handle's advances claimed, by ID,
	// until each is written out.
	pagedMu sync.Mutex
	paged   map[int64]*pagedRun
	// busy, commits and writes count the committer's work (WriterStats).
	busy, commits, writes atomic.Int64
	// fault fails a write at a named point (tests only).
	fault func(point string, fin *engine.Completion) error
	// outcomeBuf is the writer's buffer for a page outcome's rows.
	outcomeBuf []byte
	// rowsOnly writes every ended run as rows, never as a page outcome
	// (tests only: they compare the two).
	rowsOnly bool

	// wal is the write-ahead log this process opened (nil when there was
	// none to see at open): while the store is open SQLite never deletes
	// or replaces it, so another file at its path means someone did
	// (checkLog).
	wal os.FileInfo
	// commitMu is held by each commit: checkLog takes it to know that no
	// commit is under way once broken is set.
	commitMu sync.Mutex
	// broken, once set, refuses every write (ErrLogDeleted).
	broken atomic.Pointer[storageError]
	// failure is the storage failure of the last commit, nil after a
	// commit that succeeded (WriteError).
	failMu  sync.Mutex
	failure *writeFailure
}

// writeFailure is a run of commits that failed for the storage.
type writeFailure struct {
	err    error
	since  time.Time
	failed int
}

var (
	_ engine.Store        = (*Store)(nil)
	_ engine.RunnerLister = (*Store)(nil)
	_ engine.Snapshotter  = (*Store)(nil)
)

type op struct {
	fn   func(tx *sql.Tx) error
	done chan error
	// journal is set on a journal write (Record, RecordMany): the
	// committer merges those of one batch into one recordManyTx, and
	// errs gets the refusal of each write.
	journal []engine.JournalWrite
	errs    []error
}

// Open opens (creating when needed) the store at path and migrates it.
func Open(path string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.MergeStates <= 0 {
		opts.MergeStates = defaultMergeStates
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 250 * time.Millisecond
	}
	if err := checkPlace(path); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	pragmas := url.Values{}
	pragmas.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	pragmas.Add("_pragma", "journal_mode(WAL)")
	pragmas.Add("_pragma", "synchronous(NORMAL)")
	pragmas.Add("_pragma", "foreign_keys(ON)")
	wq := url.Values{}
	for k, v := range pragmas {
		wq[k] = append([]string(nil), v...)
	}
	wq.Set("_txlock", "immediate")
	// Checkpoints (and their fsync) run in the background, never in a
	// commit: see checkpointLoop.
	wq.Add("_pragma", "wal_autocheckpoint(0)")
	// The writer re-reads the queue's pages all the time: keep them. 2 MiB
	// holds them since page claims (a page's runs are no rows of the queue
	// until recorded): 4 MiB cost the file job 4.5 MB of resident memory
	// for no CPU saved, 8 MiB 8 MB more (issue 14, docs/benchmarks.md).
	wq.Add("_pragma", "cache_size(-2048)")
	// A multi-row insert or upsert keeps a statement journal, to undo
	// itself alone if it fails half-way; it need not survive anything,
	// and kept in a temporary file it cost a write system call per page
	// it touched (a fifth of the advance, issue 14).
	wq.Add("_pragma", "temp_store(MEMORY)")
	w, err := sql.Open("sqlite", "file:"+path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	s := &Store{path: path, w: w, log: opts.Logger.Named("store"), max: opts.MaxBatch, mergeStates: opts.MergeStates,
		ops: make(chan *op, 4096), quit: make(chan struct{}), done: make(chan struct{}), ckDone: make(chan struct{})}
	if err := s.checkAndMigrate(opts.BusyTimeout); err != nil {
		w.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	ck, err := sql.Open("sqlite", "file:"+path+"?"+pragmas.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	s.ck = ck
	rq := url.Values{}
	for k, v := range pragmas {
		rq[k] = append([]string(nil), v...)
	}
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		ck.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	s.r = r
	if err := s.prepare(); err != nil {
		w.Close()
		r.Close()
		ck.Close()
		return nil, fmt.Errorf("store %s: preparing statements: %w", path, err)
	}
	if st, err := os.Stat(path + "-wal"); err == nil {
		s.wal = st
	}
	go s.commitLoop()
	if opts.CheckpointEvery > 0 {
		go s.checkpointLoop(opts.CheckpointEvery)
	} else {
		close(s.ckDone)
	}
	return s, nil
}

// checkAndMigrate checks the file and brings its schema up to date. Runners
// started together on a new file race to turn on WAL and to migrate; SQLite
// answers the loser SQLITE_BUSY at once, without its busy timeout, so the
// loser tries again for as long as that timeout.
//
// While another memberflow migrates the store (migrating.go), it waits
// for as long as the migration runs, then its busy timeout again.
func (s *Store) checkAndMigrate(busyTimeout time.Duration) error {
	deadline := time.Now().Add(busyTimeout)
	waiting := false
	for {
		err := quickCheck(s.w)
		if err == nil {
			err = s.migrate()
		}
		if err == nil || !isBusy(err) {
			return classify(err)
		}
		if s.migrationUnderWay() {
			if !waiting {
				s.log.Info("waiting for another memberflow to finish migrating the store", "store", s.path)
				waiting = true
			}
			deadline = time.Now().Add(busyTimeout)
		} else if time.Now().After(deadline) {
			return classify(err)
		}
		time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
	}
}

func (s *Store) migrate() error {
	ctx := context.Background()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer conn.Close()
	// The write lock is taken before the version is read: two runners
	// opening a new store at once would otherwise both read version 0 and
	// the second would apply a migration the first had already applied.
	// All pending migrations and the new version commit together.
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("taking the write lock to check the schema version: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_version: %w", err)
	}
	var v int
	err = conn.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this memberflow knows (%d): upgrade memberflow", v, len(migrations))
	}
	if v > 0 && v < len(migrations) {
		live, byLeases, err := s.liveRunners(ctx, conn, v)
		if err != nil {
			return fmt.Errorf("migrating from version %d: %w", v, err)
		}
		if len(live) > 0 {
			return runnersInTheWay(v, len(migrations), live, byLeases)
		}
	}
	if v > 0 && v < len(migrations) {
		// Some migrations rewrite a table (11: steps): on a large store
		// that takes a while, under the write lock; others opening the
		// store wait for it (migrating.go).
		if l := s.holdMigrationLock(); l != nil {
			defer l.unlock()
		}
		s.log.Info("migrating the store's schema", "from", v, "to", len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := conn.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := conn.ExecContext(ctx, `UPDATE schema_version SET version = ?`, i+1); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		s.log.Debug("migrated", "version", i+1)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("migrating to version %d: %w", len(migrations), err)
	}
	committed = true
	return nil
}

func (s *Store) prepare() error {
	var err error
	p := func(db *sql.DB, q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.Prepare(q)
		if err != nil {
			err = fmt.Errorf("%w: %s", err, q)
		}
		return st
	}
	for k := 0; k <= maxRowsLog; k++ {
		s.insEvents[k] = p(s.w, `INSERT INTO events (id, recipe, event_id, subject, fingerprint, connector, event_time, received, data)
		VALUES `+rowsOf(eventCols, 1<<k)+`
		ON CONFLICT (recipe, event_id) DO NOTHING`)
		s.insStateLog[k] = p(s.w, `INSERT INTO subject_state_log (recipe, subject, state) VALUES `+rowsOf(3, 1<<k))
		s.upStates[k] = p(s.w, `INSERT INTO subject_states (recipe, subject, state) VALUES `+rowsOf(3, 1<<k)+`
		ON CONFLICT (recipe, subject) DO UPDATE SET state = excluded.state`)
		s.insRuns[k] = p(s.w, `INSERT INTO runs (id, event, recipe, okey, status, condition, cond_values, created, finished,
			owner, lease_until, attempts, started, chain)
		VALUES `+rowsOf(runCols, 1<<k))
	}
	s.stateLogSpan = p(s.w, `SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'subject_state_log'),
		(SELECT through FROM subject_state_merged)`)
	s.getMerged = p(s.r, `SELECT through FROM subject_state_merged`)
	s.getStateLog = p(s.r, `SELECT id, recipe, subject, state FROM subject_state_log WHERE id > ? ORDER BY id`)
	// The events an advance stored, from the first ID it gave.
	s.eventsFrom = p(s.w, `SELECT id FROM events WHERE id >= ?`)
	// The IDs SQLite would give next (the largest plus one, as for a
	// rowid without AUTOINCREMENT).
	s.lastIDs = p(s.w, `SELECT (SELECT coalesce(max(id), 0) FROM events),
		max((SELECT coalesce(max(id), 0) FROM runs), (SELECT coalesce(max(last_run), 0) FROM page_claims),
			(SELECT coalesce(max(last_run), 0) FROM page_outcomes))`)
	s.setVersion = p(s.w, `UPDATE runs SET version = ? WHERE id = ?`)
	s.upCursor = p(s.w, `INSERT INTO cursors (recipe, cursor, updated) VALUES (?, ?, ?)
		ON CONFLICT (recipe) DO UPDATE SET cursor = excluded.cursor, updated = excluded.updated`)
	s.upStep = p(s.w, `INSERT INTO steps (run, idx, step_id, action, status, input, output, error, attempts, started, finished)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run, idx) DO UPDATE SET status = excluded.status, input = excluded.input, output = excluded.output,
			error = excluded.error, attempts = excluded.attempts, started = excluded.started, finished = excluded.finished`)
	s.upEcho = p(s.w, `INSERT INTO echoes (connector, subject, fingerprint, run, written, recipe, chain) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (connector, subject, fingerprint) DO UPDATE SET run = excluded.run, written = excluded.written,
			recipe = excluded.recipe, chain = excluded.chain`)
	s.finRun = p(s.w, `UPDATE runs SET status = ?, error = ?, condition = ?, cond_values = ?, finished = ?,
		owner = NULL, lease_until = NULL WHERE id = ?`)
	s.claimRuns = p(s.w, `UPDATE runs SET status = 'running', owner = ?, lease_until = ?, attempts = attempts + 1,
		started = coalesce(started, ?) WHERE id IN (SELECT value FROM json_each(?))`)
	s.loadRuns = p(s.w, `SELECT r.id, r.recipe, r.okey, r.attempts, e.event_id, e.subject, e.fingerprint, e.connector, e.data,
			e.fingerprint != '' AND EXISTS (SELECT 1 FROM echo_writers w
				WHERE w.connector = e.connector AND w.subject = e.subject AND w.fingerprint = e.fingerprint
				AND (w.recipe IS NULL OR w.recipe = r.recipe OR instr(',' || w.chain || ',', ',' || r.recipe || ',') > 0)),
			coalesce((SELECT CASE WHEN w.chain = '' THEN w.recipe ELSE w.chain || ',' || w.recipe END
				FROM echo_writers w
				WHERE e.fingerprint != '' AND w.connector = e.connector AND w.subject = e.subject AND w.fingerprint = e.fingerprint), r.chain),
			r.chain
		FROM runs r JOIN events e ON e.id = r.event WHERE r.id IN (SELECT value FROM json_each(?)) ORDER BY r.id`)
	// An advance's key check (pageKeys): the keys of runs queued or
	// running, the keys of the live page claims, and the keys that some
	// of those claims hold (heldkeys.go).
	s.activeKeys = p(s.w, `SELECT okey FROM runs INDEXED BY runs_active_key
		WHERE status IN ('queued', 'running') AND okey IN (SELECT value FROM json_each(?))`)
	// (A literal LIMIT: a bound one re-prepares the statement at each new
	// value.)
	s.someActiveKeys = p(s.w, `SELECT okey FROM runs INDEXED BY runs_active_key
		WHERE status IN ('queued', 'running') LIMIT `+strconv.Itoa(activeScan+1))
	s.liveClaimKeys = p(s.w, `SELECT p.id, c.keys FROM page_claims p JOIN page_claim_runs c ON c.claim = p.id`)
	s.heldKeys = p(s.w, `SELECT okey FROM page_runs
		WHERE claim IN (SELECT value FROM json_each(?1)) AND okey IN (SELECT value FROM json_each(?2))`)
	// The remembered writes of a page's subjects (echoesOf): whether each
	// is an echo for the recipe (its writer's recipe, or one in the writer's
	// chain, or none: an imported write) and else the chain of the
	// writer (as loadRuns computes it).
	s.pageEchoes = p(s.w, `SELECT w.subject, w.fingerprint,
			w.recipe IS NULL OR w.recipe = ?1 OR instr(',' || w.chain || ',', ',' || ?1 || ',') > 0,
			coalesce(CASE WHEN w.chain = '' THEN w.recipe ELSE w.chain || ',' || w.recipe END, '')
		FROM echo_writers w
		WHERE w.connector = ?2 AND w.subject IN (SELECT value FROM json_each(?3))`)
	s.someEcho = p(s.w, `SELECT 1 FROM echoes WHERE connector = ? LIMIT 1`)
	s.insSkipPage = p(s.w, `INSERT INTO skip_pages (recipe, count, sample, created) VALUES (?, ?, ?, ?)`)
	s.setChain = p(s.w, `UPDATE runs SET chain = ? WHERE id = ? AND chain != ?`)
	s.expire = p(s.w, `UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL
		WHERE status = 'running' AND lease_until < ?`)
	s.renew = p(s.w, `UPDATE runs SET lease_until = ? WHERE id IN (SELECT value FROM json_each(?)) AND owner = ? AND status = 'running' RETURNING id`)
	s.releaseUnnamedRuns = p(s.w, `UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL
		WHERE owner = ?1 AND status = 'running' AND lease_until < ?2 AND id NOT IN (SELECT value FROM json_each(?3))`)
	s.fence = p(s.w, `SELECT 1 FROM runs WHERE id = ? AND status = 'running' AND attempts = ?`)
	s.getCursor = p(s.r, `SELECT cursor FROM cursors WHERE recipe = ?`)
	s.getStates = p(s.r, `SELECT subject, state FROM subject_states
		WHERE recipe = ? AND subject IN (SELECT value FROM json_each(?))`)
	s.getSteps = p(s.r, `SELECT idx, step_id, action, status, input, output, error, attempts, started, finished
		FROM steps WHERE run = ? ORDER BY idx`)
	s.prepareMulti(p)
	s.prepareClaims(p)
	return err
}

// Close stops the committer after the writes already submitted, and
// closes the database.
func (s *Store) Close() error {
	var err error
	s.close.Do(func() {
		close(s.quit)
		<-s.done
		<-s.ckDone
		// The lock files stay: the next runner to join finds them free
		// and resumes the runs this handle's runners left.
		s.unlockAll()
		// A last full checkpoint leaves a small WAL behind.
		s.ck.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		err = errors.Join(s.r.Close(), s.ck.Close(), s.w.Close())
	})
	return err
}

var errClosed = errors.New("store is closed")

// write submits fn to the committer and waits for its commit. fn may run
// twice (alone, after its batch failed), so it must only assign results.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.submit(ctx, &op{fn: fn, done: make(chan error, 1)})
}

// submit hands o to the committer and waits for its commit.
func (s *Store) submit(ctx context.Context, o *op) error {
	select {
	case <-s.quit:
		return errClosed
	default:
	}
	select {
	case s.ops <- o:
	case <-s.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once submitted, wait for the outcome even if ctx ends: the caller must
	// know whether its write is durable. A write that reached the queue
	// after the committer stopped is never run.
	select {
	case err := <-o.done:
		return classify(err)
	case <-s.done:
		select {
		case err := <-o.done:
			return classify(err)
		default:
			return errClosed
		}
	}
}

func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*op, 0, s.max)
	want := 1 // the size of the last batch
	for {
		select {
		case o := <-s.ops:
			batch = append(batch[:0], o)
		case <-s.quit:
			// Finish what was submitted before Close.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
		s.fill(&batch, want)
		want = len(batch)
		s.commit(batch)
	}
}

// linger is how long the committer waits for the writers it expects: the
// writers of the last batch resubmit right after their commit, and a
// batch that waits a little for them saves a whole transaction each.
const linger = 300 * time.Microsecond

// fill adds the writes already waiting to batch, then, while the batch is
// smaller than the last one, waits up to linger for more.
func (s *Store) fill(batch *[]*op, want int) {
	for len(*batch) < s.max {
		select {
		case o := <-s.ops:
			*batch = append(*batch, o)
			continue
		default:
		}
		break
	}
	if len(*batch) >= want {
		return
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	for len(*batch) < want && len(*batch) < s.max {
		select {
		case o := <-s.ops:
			*batch = append(*batch, o)
		case <-t.C:
			return
		}
	}
}

func (s *Store) commit(batch []*op) {
	err := s.commitTx(batch)
	s.noteCommit(err)
	if err == nil {
		for _, o := range batch {
			o.done <- nil
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- err
		return
	}
	for _, o := range batch {
		err := s.commitTx([]*op{o})
		s.noteCommit(err)
		o.done <- err
	}
}

// noteCommit keeps the storage failure of a commit for WriteError, and
// logs when commits start failing for the storage and when they succeed
// again (once each, not at every write).
func (s *Store) noteCommit(err error) {
	if err != nil && !failing(classify(err)) {
		return // refused for what it held: the storage is fine
	}
	s.failMu.Lock()
	defer s.failMu.Unlock()
	switch {
	case err == nil && s.failure != nil:
		s.log.Info("writes to the store succeed again", "store", s.path,
			"failing_for", time.Since(s.failure.since).Round(time.Millisecond), "failed_commits", s.failure.failed)
		s.failure = nil
	case err != nil && s.failure == nil:
		s.failure = &writeFailure{err: classify(err), since: time.Now(), failed: 1}
		s.log.Error("writes to the store fail; each is retried or refused, what was committed is kept", "store", s.path, "error", classify(err))
	case err != nil:
		s.failure.err = classify(err)
		s.failure.failed++
	}
}

// WriteError implements engine.WriteHealth: the storage failure of the
// last commit (the disk full, the file read-only or locked by another
// process, its log deleted), with the store's path and since when
// commits fail; nil when the last commit succeeded. A store whose
// reads answer may still be unable to write: readiness asks this too.
func (s *Store) WriteError() error {
	if b := s.broken.Load(); b != nil {
		return fmt.Errorf("store %s: %w", s.path, b)
	}
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failure == nil {
		return nil
	}
	return fmt.Errorf("store %s: %d commit(s) failed since %s: %w", s.path, s.failure.failed,
		s.failure.since.UTC().Format(time.RFC3339), s.failure.err)
}

var _ engine.WriteHealth = (*Store)(nil)

// checkLog finds the store's write-ahead log deleted or replaced under
// this process (rm of the -wal file, a copy restored over it). SQLite
// does not: it goes on appending commits to the file it opened, which no
// other process sees any more (they make a new, empty one and fail with
// I/O errors) and which a crash of this process loses. On finding it,
// checkLog refuses every later write (ErrLogDeleted), waits for the
// commit under way, and copies every committed transaction from the log
// it still holds into the database file (a checkpoint), where it is safe:
// reopening the store (restarting the runner) starts a new log.
func (s *Store) checkLog() error {
	if b := s.broken.Load(); b != nil {
		return b
	}
	if s.wal == nil {
		return nil
	}
	st, err := os.Stat(s.path + "-wal")
	switch {
	case err == nil && os.SameFile(st, s.wal):
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil // cannot tell (permissions): the writes will say
	}
	what := "deleted"
	if err == nil {
		what = "replaced by another file"
	}
	b := &storageError{kind: ErrLogDeleted, err: fmt.Errorf("%s-wal was %s while this process had it open", s.path, what)}
	if !s.broken.CompareAndSwap(nil, b) {
		return s.broken.Load()
	}
	// The commit under way, if any, ends first. The writer copies: its
	// connection has had the old log open since the store was opened
	// (the checkpointer's may have opened the new, empty file).
	s.commitMu.Lock()
	var busy, logFrames, done int
	err = s.w.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done)
	s.commitMu.Unlock()
	if err != nil || busy != 0 {
		s.log.Error("the store's write-ahead log was deleted while in use, and copying it into the database failed: commits since the last checkpoint are lost when this process ends; keep it running, stop the other processes of the store and restore the log",
			"store", s.path, "error", err, "busy", busy)
	} else {
		s.log.Error("the store's write-ahead log was deleted while in use: every commit was copied into the database file and writes are refused; restart the runner (it opens a new log); never delete a store's -wal or -shm file while it is open",
			"store", s.path)
	}
	return b
}

func (s *Store) commitTx(batch []*op) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if b := s.broken.Load(); b != nil {
		return b
	}
	began := time.Now()
	defer func() {
		s.busy.Add(int64(time.Since(began)))
		s.commits.Add(1)
		s.writes.Add(int64(len(batch)))
	}()
	tx, err := s.w.Begin()
	if err != nil {
		return err
	}
	var journal []*op
	for _, o := range batch {
		if o.journal != nil {
			journal = append(journal, o)
			continue
		}
		if err := o.fn(tx); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := s.journalTx(tx, journal); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// journalTx writes the journal writes of a batch's ops together, with
// multi-row statements (the ops of a batch are concurrent: any order of
// them is one they could have come in).
func (s *Store) journalTx(tx *sql.Tx, ops []*op) error {
	switch len(ops) {
	case 0:
		return nil
	case 1:
		return ops[0].fn(tx)
	}
	n := 0
	for _, o := range ops {
		n += len(o.journal)
	}
	writes, errs := make([]engine.JournalWrite, 0, n), make([]error, n)
	for _, o := range ops {
		writes = append(writes, o.journal...)
	}
	if err := s.recordManyTx(tx, writes, errs); err != nil {
		return err
	}
	for _, o := range ops {
		copy(o.errs, errs)
		errs = errs[len(o.errs):]
	}
	return nil
}

// checkpointLoop copies the WAL back into the database in the background
// (PASSIVE: writers go on meanwhile), so that no commit waits for a
// checkpoint's fsync. When writers outpace it and the WAL passes
// walRestartPages, a RESTART checkpoint makes writers wait once for the
// WAL to start over, which bounds its size.
func (s *Store) checkpointLoop(every time.Duration) {
	defer close(s.ckDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		if s.checkLog() != nil {
			return // refusing writes: nothing more to copy
		}
		var busy, logFrames, done int
		if err := s.ck.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &done); err != nil {
			s.log.Warn("checkpoint failed", "error", err)
			continue
		}
		if logFrames > walRestartPages {
			if err := s.ck.QueryRow(`PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &logFrames, &done); err != nil {
				s.log.Warn("checkpoint failed", "error", err)
			}
		}
	}
}

// walRestartPages is the WAL size (in pages of 4 KiB) past which writers
// wait for a full checkpoint: 64 MiB.
const walRestartPages = 16384

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// idList is ids as a JSON array, for json_each.
func idList(ids []int64) string {
	b := make([]byte, 0, 8*len(ids)+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

func jsonList(items []string) string {
	b, _ := json.Marshal(items)
	return string(b)
}

// Cursor implements engine.TriggerStore.
func (s *Store) Cursor(ctx context.Context, recipe string) (string, error) {
	var c string
	err := s.getCursor.QueryRowContext(ctx, recipe).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the cursor of recipe %q: %w", recipe, err)
	}
	return c, nil
}

// PriorStates implements engine.TriggerStore.
func (s *Store) PriorStates(ctx context.Context, recipe string, subjects []string) (map[string]string, error) {
	if len(subjects) == 0 {
		return map[string]string{}, nil
	}
	out, err := s.priorStates(ctx, recipe, subjects)
	if err != nil {
		return nil, fmt.Errorf("reading subject states of recipe %q: %w", recipe, err)
	}
	return out, nil
}

// encodedAdvance is what a page claim holds of each event of an Advance,
// encoded before the writer has it: the run's ordering key, as JSON, and
// its first intent (nil for a skipped event, which is never claimed).
type encodedAdvance struct {
	quotedKeys, intents [][]byte
}

// encodeAdvance encodes what adv's page claim will hold; its errors name
// the event and read as Advance's.
func encodeAdvance(recipe string, adv *engine.Advance) (*encodedAdvance, error) {
	enc := &encodedAdvance{quotedKeys: make([][]byte, len(adv.Events)), intents: make([][]byte, len(adv.Events))}
	for i := range adv.Events {
		ev := &adv.Events[i]
		if ev.Skipped {
			continue
		}
		key := ev.OrderingKey
		if key == "" {
			key = "event:" + ev.ID
		}
		q, err := json.Marshal(key)
		if err != nil {
			return nil, fmt.Errorf("advancing the trigger of recipe %q: the ordering key of event %q: %w", recipe, ev.ID, err)
		}
		enc.quotedKeys[i] = q
		if ev.Intent != nil {
			if enc.intents[i], err = encodeIntent(ev.Intent); err != nil {
				return nil, fmt.Errorf("advancing the trigger of recipe %q: the intent of event %q: %w", recipe, ev.ID, err)
			}
		}
	}
	return enc, nil
}

// EncodeAdvance implements engine.AdvanceEncoder.
func (s *Store) EncodeAdvance(recipe string, adv *engine.Advance) error {
	enc, err := encodeAdvance(recipe, adv)
	if err != nil {
		return err
	}
	adv.Encoded = enc
	return nil
}

// Advance implements engine.TriggerStore.
func (s *Store) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	out := make([]engine.Enqueued, len(adv.Events))
	var quotedKeys, intents [][]byte
	if adv.Claim != nil {
		enc, ok := adv.Encoded.(*encodedAdvance)
		if !ok || len(enc.quotedKeys) != len(adv.Events) {
			var err error
			if enc, err = encodeAdvance(recipe, &adv); err != nil {
				return nil, err
			}
		}
		quotedKeys, intents = enc.quotedKeys, enc.intents
	}
	// The page claim, kept in memory once committed (a retried
	// transaction builds it again).
	var claim claimPage
	err := s.write(ctx, func(tx *sql.Tx) error {
		claim = claimPage{}
		now := time.Now().UnixNano()
		if adv.Cursor != nil {
			if _, err := tx.Stmt(s.upCursor).Exec(recipe, *adv.Cursor, now); err != nil {
				return fmt.Errorf("saving the cursor: %w", err)
			}
		}
		// In order: a later state of a subject replaces an earlier one.
		states := make([][]any, len(adv.States))
		for i, st := range adv.States {
			states[i] = []any{recipe, st.Subject, st.State}
		}
		if err := s.logStates(tx, states); err != nil {
			return fmt.Errorf("saving the states of %d subjects: %w", len(states), err)
		}
		// The page's events, then their runs, are inserted with a
		// multi-row statement each (runs in arrival order: their IDs are
		// the claim order).
		skips := skipPage{echoes: echoesOf{tx: tx, st: s.pageEchoes, anySt: s.someEcho, recipe: recipe, events: adv.Events}, insert: s.insSkipPage}
		var stored []int                 // the events to store, by index
		var storedData []json.RawMessage // their data (a skipped echo's encoded here)
		for i := range adv.Events {
			ev := adv.Events[i]
			out[i] = engine.Enqueued{EventID: ev.ID}
			if ev.Skipped {
				if done, err := skips.add(&ev); err != nil {
					return err
				} else if done {
					out[i].Status = engine.RunSkipped
					continue
				}
			}
			stored = append(stored, i)
			storedData = append(storedData, ev.Data)
		}
		if len(stored) == 0 {
			return skips.save(tx, recipe, now)
		}
		// The transaction holds the database's write lock (even against
		// other processes), so the page's events and runs get their IDs
		// here, in arrival order (run IDs are the claim order). An event
		// seen before (in an earlier Advance, or earlier in the page) is
		// not stored again: the insert passes over it (UNIQUE (recipe,
		// event_id)), and only when it stored fewer events than it was
		// given are the IDs it stored read back, to tell which.
		var lastEvent, lastRun int64
		if err := tx.Stmt(s.lastIDs).QueryRow().Scan(&lastEvent, &lastRun); err != nil {
			return fmt.Errorf("reading the last IDs: %w", err)
		}
		firstEvent := lastEvent + 1 // the ID of stored[0]'s event
		// The values every row has, boxed once.
		recipeArg, nowArg := any(recipe), any(now)
		eventRows := make([][]any, len(stored))
		for k, i := range stored {
			ev := &adv.Events[i]
			eventRows[k] = []any{firstEvent + int64(k), recipeArg, ev.ID, ev.Subject, ev.Fingerprint, ev.Connector, nanos(ev.Time), nowArg, []byte(storedData[k])}
		}
		inserted, err := execRowsCounted(tx, &s.insEvents, eventRows)
		if err != nil {
			return fmt.Errorf("saving %d events: %w", len(eventRows), err)
		}
		var isNew map[int64]bool // nil when every event is new
		if inserted < int64(len(eventRows)) {
			if isNew, err = columnSet[int64](tx.Stmt(s.eventsFrom), "reading back the page's new events", firstEvent); err != nil {
				return err
			}
		}
		// Advance.Claim: the keys of the page that have a run queued or
		// running already.
		var keys pageKeys
		if adv.Claim != nil {
			var err error
			if keys, err = s.pageKeys(tx, adv.Events, stored); err != nil {
				return err
			}
		}
		runs := make([]pageRun, 0, len(stored))
		claimed, claimSize := 0, 0
		for k, i := range stored {
			ev := &adv.Events[i]
			eid := firstEvent + int64(k)
			if isNew != nil && !isNew[eid] {
				continue // seen before
			}
			key := ev.OrderingKey
			if key == "" {
				key = "event:" + ev.ID
			}
			// An echo already known is recorded as suppressed now, costing
			// no claim: echoes are never forgotten, so the claim-time check
			// (for writes recorded after this) could only agree.
			w, written, err := skips.echoes.of(ev)
			if err != nil {
				return err
			}
			echo := written && w.echo
			// A queued run; or a finished one, skipped (condition false,
			// its values kept) or suppressed.
			lastRun++
			r := pageRun{event: i, id: lastRun, eventID: eid, key: key, status: engine.RunQueued}
			switch {
			case echo:
				r.status, r.finished = engine.RunSuppressed, nowArg
			case ev.Skipped:
				r.status, r.cond, r.finished = engine.RunSkipped, false, nowArg
				if len(ev.Values) > 0 {
					r.values = []byte(ev.Values)
				}
			}
			out[i].Status = r.status
			if r.status == engine.RunQueued && adv.Claim != nil {
				// Claimable: the first of its key in the page, with no run
				// of the key queued or running before the page.
				if !keys.seen[key] {
					keys.seen[key] = true
					if !keys.active[key] {
						// A state another recipe's run wrote: the run
						// inherits the writer's chain, as at a claim.
						r.claimed, r.chain = true, w.chain
						claimed++
						claimSize += 2*len(quotedKeys[i]) + len(intents[i])
					}
				}
			}
			runs = append(runs, r)
		}
		// Runs claimed with the page go into one page claim, leased to the
		// claimer (pageclaims.go); the page's other runs are inserted.
		// IDs were given in arrival order, the order claims go by.
		claim.grow(claimed, claimSize)
		queued := make([][]any, 0, len(runs)-claimed)
		for _, r := range runs {
			if r.claimed {
				claim.add(r.id, r.eventID, r.key, quotedKeys[r.event], r.chain, now, adv.Events[r.event].Intent, intents[r.event])
				continue
			}
			queued = append(queued, []any{r.id, r.eventID, recipeArg, r.key, r.status, r.cond, r.values, nowArg, r.finished, nil, nil, 0, nil, ""})
		}
		if err := execRows(tx, &s.insRuns, queued); err != nil {
			return fmt.Errorf("enqueueing %d events: %w", len(queued), err)
		}
		if adv.Claim != nil {
			if err := s.saveClaim(tx, &claim, recipe, adv.Claim.Owner, adv.Claim.Now.Add(adv.Claim.Lease).UnixNano()); err != nil {
				return err
			}
		}
		for _, r := range runs {
			i := r.event
			out[i].RunID = r.id
			if r.claimed {
				ev := &adv.Events[i]
				out[i].Status = engine.RunRunning
				// As Claim would load it: an echo was suppressed above, so
				// a claimed run is never one.
				out[i].Run = &engine.ClaimedRun{ID: r.id, Recipe: recipe, EventID: ev.ID, Subject: ev.Subject,
					Fingerprint: ev.Fingerprint, Connector: ev.Connector, OrderingKey: r.key,
					Attempts: 1, Token: 1, Data: ev.Data}
				// The claim holds the intent.
				out[i].Journaled = ev.Intent != nil
			}
		}
		return skips.save(tx, recipe, now)
	})
	if err != nil {
		return nil, fmt.Errorf("advancing the trigger of recipe %q: %w", recipe, err)
	}
	s.remember(&claim)
	return out, nil
}

// eventCols and runCols are the parameters of one row of insEvents and
// insRuns.
const (
	eventCols = 9
	runCols   = 14
)

// columnSet runs st, a query of one column, and returns its values as a
// set; what names the query in its errors.
func columnSet[T comparable](st *sql.Stmt, what string, args ...any) (map[T]bool, error) {
	rows, err := st.Query(args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	set := map[T]bool{}
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		set[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return set, nil
}

// pageKeys are the ordering keys of a page, for Advance.Claim.
type pageKeys struct {
	active map[string]bool // a run of the key is queued or running, or held by a page claim
	seen   map[string]bool // a run of the key is in the page already
}

// pageKeys looks up which ordering keys of the page's stored events have
// a run queued or running, or held by a page claim.
func (s *Store) pageKeys(tx *sql.Tx, events []engine.NewEvent, stored []int) (pageKeys, error) {
	k := pageKeys{active: map[string]bool{}, seen: map[string]bool{}}
	list := make([]string, 0, len(stored))
	for _, i := range stored {
		key := events[i].OrderingKey
		if key == "" {
			continue // its own key: "event:" and its ID
		}
		list = append(list, key)
	}
	if len(list) == 0 {
		return k, nil
	}
	// The keys of the runs queued or running: for a page of many keys,
	// all of them when they are few (the usual case: the runs claimed
	// with pages are held by page claims, not rows), else those of the
	// page's keys, looked up one by one.
	var active map[string]bool
	all := false
	if len(list) >= activeScan/8 {
		var err error
		if active, all, err = activeUpTo(tx.Stmt(s.someActiveKeys), activeScan); err != nil {
			return k, err
		}
	}
	if !all {
		var err error
		if active, err = columnSet[string](tx.Stmt(s.activeKeys), "looking up the runs of the page's keys", jsonList(list)); err != nil {
			return k, err
		}
	}
	k.active = active
	// Page claims (of any runner) hold keys too: page_runs is asked only
	// about the claims that have one of the page's keys.
	claims, err := s.claimsHolding(tx, list)
	if err != nil || len(claims) == 0 {
		return k, err
	}
	held, err := columnSet[string](tx.Stmt(s.heldKeys), "looking up the page's keys held by page claims", idList(claims), jsonList(list))
	if err != nil {
		return k, err
	}
	for key := range held {
		k.active[key] = true
	}
	return k, nil
}

// activeScan is the most runs queued or running whose keys an advance
// reads all at once, for a page of at least an eighth as many keys: at
// most eight rows read for each key it would look up.
const activeScan = 256

// activeUpTo reads the keys of the runs queued or running with st
// (someActiveKeys: at most n+1 rows) when they are at most n runs; all is
// false when there are more.
func activeUpTo(st *sql.Stmt, n int) (keys map[string]bool, all bool, err error) {
	rows, err := st.Query()
	if err != nil {
		return nil, false, fmt.Errorf("reading the keys of runs queued or running: %w", err)
	}
	defer rows.Close()
	keys = map[string]bool{}
	runs := 0
	for rows.Next() {
		if runs++; runs > n {
			return nil, false, rows.Close()
		}
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, false, fmt.Errorf("reading the keys of runs queued or running: %w", err)
		}
		keys[key] = true
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("reading the keys of runs queued or running: %w", err)
	}
	return keys, true, nil
}

// pageRun is a new run of an advance: a row of runs (queued, or ended
// at once: skipped or suppressed), or claimed with the page.
type pageRun struct {
	event                  int // the index of its event in the page
	id, eventID            int64
	key, status            string
	cond, values, finished any // their columns: nil is NULL
	claimed                bool
	chain                  string // the chain a claimed run inherits
}

// candidateStmt returns the prepared query of claimable runs of recipes.
func (s *Store) candidateStmt(recipes []string) (*sql.Stmt, error) {
	sorted := append([]string(nil), recipes...)
	sort.Strings(sorted)
	key := strings.Join(sorted, "\x00")
	s.candMu.Lock()
	defer s.candMu.Unlock()
	if st, ok := s.candidates[key]; ok {
		return st, nil
	}
	quoted := make([]string, len(sorted))
	for i, r := range sorted {
		quoted[i] = "'" + strings.ReplaceAll(r, "'", "''") + "'"
	}
	st, err := s.w.Prepare(`SELECT r.id FROM runs r INDEXED BY runs_queued
		WHERE r.status = 'queued' AND r.recipe IN (` + strings.Join(quoted, ", ") + `)
		  AND NOT EXISTS (SELECT 1 FROM runs p
		                  WHERE p.okey = r.okey AND p.id < r.id AND p.status IN ('queued', 'running'))
		  AND r.okey NOT IN (SELECT okey FROM page_runs)
		ORDER BY r.id`)
	if err != nil {
		return nil, err
	}
	if s.candidates == nil {
		s.candidates = map[string]*sql.Stmt{}
	}
	s.candidates[key] = st
	return st, nil
}

// Claim implements engine.RunQueue. Runs whose lease has ended are put
// back in the queue first (at most once per second), so that the runs of
// a runner that died are taken over.
func (s *Store) Claim(ctx context.Context, req engine.ClaimRequest) ([]*engine.ClaimedRun, error) {
	if len(req.Recipes) == 0 || req.Limit <= 0 {
		return nil, nil
	}
	cand, err := s.candidateStmt(req.Recipes)
	if err != nil {
		return nil, fmt.Errorf("claiming runs: %w", err)
	}
	var out []*engine.ClaimedRun
	err = s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		now := req.Now.UnixNano()
		if req.Now.Sub(s.lastExpiry) >= time.Second || req.Now.Before(s.lastExpiry) {
			// Runs of page claims whose lease ended become rows first.
			if err := s.writeOutClaims(tx, `p.lease_until < ?`, now); err != nil {
				return err
			}
			if _, err := tx.Stmt(s.expire).Exec(now); err != nil {
				return fmt.Errorf("requeueing runs with an expired lease: %w", err)
			}
			s.lastExpiry = req.Now
		}
		// No LIMIT ?: a bound limit makes SQLite re-plan the query at
		// every call. Rows are produced lazily; closing early is the limit.
		rows, err := tx.Stmt(cand).Query()
		if err != nil {
			return err
		}
		var ids []int64
		for len(ids) < req.Limit && rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		out, err = s.claimTx(tx, ids, req.Owner, req.Now.Add(req.Lease).UnixNano(), now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claiming runs: %w", err)
	}
	return out, nil
}

// claimTx claims the runs ids for owner until the given time (nanoseconds)
// and loads them, with a statement each whatever their number. (A page's
// runs claimed at advance are inserted running instead: Advance.)
func (s *Store) claimTx(tx *sql.Tx, ids []int64, owner string, until, now int64) ([]*engine.ClaimedRun, error) {
	list := idList(ids)
	if _, err := tx.Stmt(s.claimRuns).Exec(owner, until, now, list); err != nil {
		return nil, fmt.Errorf("claiming runs %s: %w", list, err)
	}
	rows, err := tx.Stmt(s.loadRuns).Query(list)
	if err != nil {
		return nil, fmt.Errorf("loading runs %s: %w", list, err)
	}
	type chained struct {
		id    int64
		chain string
	}
	var chains []chained
	var out []*engine.ClaimedRun
	for rows.Next() {
		r := &engine.ClaimedRun{}
		var data []byte
		var chain, had string
		if err := rows.Scan(&r.ID, &r.Recipe, &r.OrderingKey, &r.Attempts, &r.EventID, &r.Subject, &r.Fingerprint, &r.Connector, &data, &r.Echo, &chain, &had); err != nil {
			rows.Close()
			return nil, fmt.Errorf("loading runs %s: %w", list, err)
		}
		if chain != had {
			chains = append(chains, chained{r.ID, chain})
		}
		r.Data = data
		r.Token = int64(r.Attempts)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading runs %s: %w", list, err)
	}
	for _, c := range chains {
		// The run follows from memberflow's own write: its writes
		// carry the chain on, so the echo never comes back to a
		// recipe already in it.
		if _, err := tx.Stmt(s.setChain).Exec(c.chain, c.id, c.chain); err != nil {
			return nil, fmt.Errorf("recording the cause of run %d: %w", c.id, err)
		}
	}
	return out, nil
}

// RenewLeases implements engine.RunQueue. The runner's row in runners
// is marked seen too. A page claim is renewed when owner names one of
// its runs; its runs owner does not name are written out first, as
// running rows under the claim's lease as it was, so that their lease
// ends (renewPaged). Then owner's unnamed runs leased until before
// releaseBefore (rows, and the runs of its page claims that name none,
// written out) go back to the queue (releaseUnnamed).
func (s *Store) RenewLeases(ctx context.Context, owner string, until time.Time, runs []int64, releaseBefore time.Time) ([]int64, error) {
	var held []int64
	var began int64
	list := idList(runs)
	err := s.write(ctx, func(tx *sql.Tx) error {
		held, began = held[:0], time.Now().UnixNano()
		var err error
		if held, err = appendIDs(held, tx.Stmt(s.renew), until.UnixNano(), list, owner); err != nil {
			return err
		}
		if held, err = s.renewPaged(tx, owner, until.UnixNano(), runs, held); err != nil {
			return err
		}
		if !releaseBefore.IsZero() {
			if err := s.releaseUnnamed(tx, owner, min(releaseBefore.UnixNano(), until.UnixNano()), list); err != nil {
				return err
			}
		}
		_, err = tx.Exec(`UPDATE runners SET seen = ? WHERE owner = ?`, time.Now().UnixNano(), owner)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("renewing the leases of %q: %w", owner, err)
	}
	s.forgetNotHeld(owner, held, began)
	return held, nil
}

// releaseUnnamed puts back in the queue the runs owner holds, does not
// name (list) and holds under a lease that ends before before
// (nanoseconds): the runner vouched that it does not work on them. The
// page claims of owner under such a lease are written out first (the
// renewal renewed those with a named run: their lease is until).
func (s *Store) releaseUnnamed(tx *sql.Tx, owner string, before int64, list string) error {
	if err := s.writeOutClaims(tx, `p.owner = ? AND p.lease_until < ?`, owner, before); err != nil {
		return fmt.Errorf("writing out the unnamed runs of page claims: %w", err)
	}
	if _, err := tx.Stmt(s.releaseUnnamedRuns).Exec(owner, before, list); err != nil {
		return fmt.Errorf("requeueing the unnamed runs: %w", err)
	}
	return nil
}

// appendIDs appends the IDs that st, a query of one column, returns.
func appendIDs(ids []int64, st *sql.Stmt, args ...any) ([]int64, error) {
	rows, err := st.Query(args...)
	if err != nil {
		return ids, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ReleaseOwner implements engine.RunQueue.
func (s *Store) ReleaseOwner(ctx context.Context, owner string) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.writeOutClaims(tx, `p.owner = ?`, owner); err != nil {
			return err
		}
		res, err := tx.Exec(`UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL
			WHERE owner = ? AND status = 'running'`, owner)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("releasing the runs of %q: %w", owner, err)
	}
	return int(n), nil
}

// Steps implements engine.Journal.
func (s *Store) Steps(ctx context.Context, runID int64) ([]engine.StepRecord, error) {
	// The journal of a run being resumed: a run in a page outcome has
	// ended, and an operator's read wrote the outcomes out already.
	if err := s.writeOutClaimsNow(ctx); err != nil {
		return nil, err
	}
	return s.steps(ctx, s.getSteps, runID)
}

func (s *Store) steps(ctx context.Context, st *sql.Stmt, runID int64) ([]engine.StepRecord, error) {
	rows, err := st.QueryContext(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("reading the journal of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []engine.StepRecord
	for rows.Next() {
		r := engine.StepRecord{RunID: runID}
		var in, outp []byte
		var errText sql.NullString
		var started, finished sql.NullInt64
		if err := rows.Scan(&r.Index, &r.StepID, &r.Action, &r.Status, &in, &outp, &errText, &r.Attempts, &started, &finished); err != nil {
			return nil, err
		}
		r.Input, r.Output, r.Error = in, outp, errText.String
		r.Started, r.Finished = fromNanos(started), fromNanos(finished)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Record implements engine.Journal.
// The committer writes the Records of concurrent callers together
// (journalTx).
func (s *Store) Record(ctx context.Context, lease engine.Lease, steps []engine.StepRecord, fin *engine.Completion) error {
	errs := s.journal(ctx, []engine.JournalWrite{{Lease: lease, Steps: steps, Fin: fin}})
	return errs[0]
}

// recordTx is one Record in tx: the lease is checked, then the steps,
// their echoes and the outcome are written.
func (s *Store) recordTx(tx *sql.Tx, lease engine.Lease, steps []engine.StepRecord, fin *engine.Completion) error {
	if err := checkWrite(lease, steps, fin); err != nil {
		return err
	}
	// A run a page claim holds is written out first (or, with its
	// outcome, written whole).
	errs := []error{nil}
	done, err := s.takePaged(tx, []engine.JournalWrite{{Lease: lease, Steps: steps, Fin: fin}}, errs)
	switch {
	case err != nil:
		return err
	case errs[0] != nil:
		return errs[0]
	case done[0]:
		return nil
	}
	var one int
	switch err := tx.Stmt(s.fence).QueryRow(lease.RunID, lease.Token).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return &engine.LeaseLostError{RunID: lease.RunID, Token: lease.Token}
	case err != nil:
		return fmt.Errorf("checking the lease of run %d: %w", lease.RunID, err)
	}
	if len(steps) > 0 {
		up := tx.Stmt(s.upStep)
		var echo *sql.Stmt
		for _, r := range steps {
			if _, err := up.Exec(stepArgs(&r)...); err != nil {
				return fmt.Errorf("journaling step %q of run %d: %w", r.StepID, r.RunID, err)
			}
			for _, w := range r.Wrote {
				if echo == nil {
					echo = tx.Stmt(s.upEcho)
				}
				if _, err := echo.Exec(echoArgs(&r, w, nil)...); err != nil {
					return fmt.Errorf("remembering the write of %q: %w", w.Subject, err)
				}
			}
		}
	}
	if fin != nil {
		if err := s.faultAt("fin", fin); err != nil {
			return err
		}
		args := finArgs(fin)
		if _, err := tx.Stmt(s.finRun).Exec(args[1], args[2], args[3], args[4], args[5], fin.RunID); err != nil {
			return fmt.Errorf("finishing run %d: %w", fin.RunID, err)
		}
		if args[6] != nil {
			// The recipe version that ran (engine.Versions).
			if _, err := tx.Stmt(s.setVersion).Exec(args[6], fin.RunID); err != nil {
				return fmt.Errorf("finishing run %d: recording its version: %w", fin.RunID, err)
			}
		}
	}
	return nil
}

// checkWrite refuses the records of another run than the lease's.
func checkWrite(lease engine.Lease, steps []engine.StepRecord, fin *engine.Completion) error {
	for _, r := range steps {
		if r.RunID != lease.RunID {
			return fmt.Errorf("journaling step %q of run %d under the lease of run %d", r.StepID, r.RunID, lease.RunID)
		}
	}
	if fin != nil && fin.RunID != lease.RunID {
		return fmt.Errorf("finishing run %d under the lease of run %d", fin.RunID, lease.RunID)
	}
	return nil
}

// stepArgs are a step line's columns, in upStep's order.
func stepArgs(r *engine.StepRecord) []any {
	return []any{r.RunID, r.Index, r.StepID, r.Action, r.Status, []byte(r.Input), []byte(r.Output),
		nullString(r.Error), r.Attempts, nanos(r.Started), nanos(r.Finished)}
}

// echoArgs are a remembered write's columns, in upEcho's order.
// by is the writing run when the caller has it (its recipe and chain),
// else nil: echo_writers then reads them from the run's row.
func echoArgs(r *engine.StepRecord, w engine.Echo, by *pagedRun) []any {
	written := r.Finished
	if written.IsZero() {
		written = time.Now()
	}
	if by == nil {
		return []any{w.Connector, w.Subject, w.Fingerprint, r.RunID, written.UnixNano(), nil, nil}
	}
	return []any{w.Connector, w.Subject, w.Fingerprint, r.RunID, written.UnixNano(), by.recipe, by.chain}
}

// finArgs are an outcome's columns: the run, its status, error,
// condition, condition values, finish time and the recipe version (nil
// unless the run ended with a version).
func finArgs(fin *engine.Completion) []any {
	var cond any
	if fin.Condition != nil {
		cond = *fin.Condition
	}
	var vals any
	if len(fin.Values) > 0 {
		vals = []byte(fin.Values)
	}
	var finished, version any = nanos(fin.Finished), nil
	if fin.Status == engine.RunQueued {
		finished = nil
	} else if fin.Version != "" {
		version = fin.Version
	}
	return []any{fin.RunID, fin.Status, nullString(fin.Error), cond, vals, finished, version}
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

const runColumns = `r.id, r.recipe, e.event_id, e.subject, r.status, r.attempts, coalesce(r.error, ''), r.created, r.finished, r.okey,
	coalesce((SELECT step_id FROM steps s WHERE s.run = r.id AND s.status IN ('failed', 'in_doubt', 'started')
	          ORDER BY idx DESC LIMIT 1), '')`

func scanRun(sc interface{ Scan(...any) error }, extra ...any) (*engine.RunInfo, error) {
	var ri engine.RunInfo
	var created int64
	var finished sql.NullInt64
	dest := append([]any{&ri.ID, &ri.Recipe, &ri.EventID, &ri.Subject, &ri.Status, &ri.Attempts, &ri.Error, &created, &finished, &ri.OrderingKey, &ri.FailedStep}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	ri.Created = time.Unix(0, created).UTC()
	if finished.Valid {
		t := time.Unix(0, finished.Int64).UTC()
		ri.Finished = &t
	}
	if ri.Status != engine.RunDead && ri.Status != engine.RunRunning {
		ri.FailedStep = ""
	}
	return &ri, nil
}

// ListRuns implements engine.Inspector, newest first.
func (s *Store) ListRuns(ctx context.Context, f engine.RunFilter) ([]engine.RunInfo, error) {
	// A list of runs queued, running or dead has none of a page outcome
	// (the runner's check for queued runs at its end, the dead letters).
	writeOut := s.writeOutPages
	if f.Status != "" && !outcomeStatus(f.Status) {
		writeOut = s.writeOutClaimsNow
	}
	if err := writeOut(ctx); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if f.Recipe != "" {
		where = append(where, "r.recipe = ?")
		args = append(args, f.Recipe)
	}
	if f.Subject != "" {
		where = append(where, "e.subject = ?")
		args = append(args, f.Subject)
	}
	if !f.Since.IsZero() {
		where = append(where, "r.created >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where = append(where, "r.created < ?")
		args = append(args, f.Until.UnixNano())
	}
	if f.Before > 0 {
		where = append(where, "r.id < ?")
		args = append(args, f.Before)
	}
	switch f.Status {
	case "":
	case engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunSkipped, engine.RunSuppressed, engine.RunDead:
		// A literal, so that the partial indexes (queued, dead) apply.
		where = append(where, "r.status = '"+f.Status+"'")
	default:
		return nil, fmt.Errorf("listing runs: unknown status %q", f.Status)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT ` + runColumns + ` FROM runs r JOIN events e ON e.id = r.event`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY r.id DESC LIMIT ?"
	args = append(args, f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing runs: %w", err)
	}
	defer rows.Close()
	var out []engine.RunInfo
	for rows.Next() {
		ri, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("listing runs: %w", err)
		}
		out = append(out, *ri)
	}
	return out, rows.Err()
}

// GetRun implements engine.Inspector.
func (s *Store) GetRun(ctx context.Context, id int64) (*engine.RunDetail, error) {
	if err := s.writeOutPages(ctx); err != nil {
		return nil, err
	}
	var event, values []byte
	var cond sql.NullBool
	ri, err := scanRun(s.r.QueryRowContext(ctx, `SELECT `+runColumns+`, e.data, r.condition, r.cond_values
		FROM runs r JOIN events e ON e.id = r.event WHERE r.id = ?`, id), &event, &cond, &values)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("run %d: %w", id, engine.ErrNoRun)
	}
	if err != nil {
		return nil, fmt.Errorf("reading run %d: %w", id, err)
	}
	d := &engine.RunDetail{RunInfo: *ri, Event: event, Values: values}
	if cond.Valid {
		d.Condition = &cond.Bool
	}
	if d.Steps, err = s.Steps(ctx, id); err != nil {
		return nil, err
	}
	return d, nil
}

// Replay implements engine.Inspector.
func (s *Store) Replay(ctx context.Context, id int64) error {
	var found bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		found = false
		// A run of a page outcome is told apart from no run.
		if _, err := s.expandOutcomes(tx, true); err != nil {
			return err
		}
		var status string
		err := tx.QueryRow(`SELECT status FROM runs WHERE id = ?`, id).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		if status != engine.RunDead {
			return fmt.Errorf("run %d is %s, not dead: only dead letters can be replayed", id, status)
		}
		return replay(tx, id)
	})
	if err != nil {
		return fmt.Errorf("replaying run %d: %w", id, err)
	}
	if !found {
		return fmt.Errorf("replaying run %d: %w", id, engine.ErrNoRun)
	}
	return nil
}

// replay requeues a dead run. The step it died on is forgotten when it
// failed (it runs again); an in-doubt step is kept, so that it is settled
// again rather than re-sent.
func replay(tx *sql.Tx, id int64) error {
	// Every attempt stays in the audit (engine.Versions).
	if err := archiveAttempt(tx, id); err != nil {
		return fmt.Errorf("keeping the failed attempt: %w", err)
	}
	if _, err := tx.Exec(`DELETE FROM steps WHERE run = ?1 AND status = 'failed'
		AND idx = (SELECT max(idx) FROM steps WHERE run = ?1)`, id); err != nil {
		return err
	}
	_, err := tx.Exec(`UPDATE runs SET status = 'queued', error = NULL, finished = NULL, owner = NULL, lease_until = NULL
		WHERE id = ?`, id)
	return err
}

// ReplayAll implements engine.Inspector.
func (s *Store) ReplayAll(ctx context.Context) (int, error) {
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		n = 0
		rows, err := tx.Query(`SELECT id FROM runs WHERE status = 'dead' ORDER BY id`)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			if err := replay(tx, id); err != nil {
				return err
			}
		}
		n = len(ids)
		return rows.Err()
	})
	if err != nil {
		return 0, fmt.Errorf("replaying dead runs: %w", err)
	}
	return n, nil
}

// Snapshot implements engine.Snapshotter: a consistent copy of the store
// at path (VACUUM INTO), for dry runs that must not touch the real store.
func (s *Store) Snapshot(ctx context.Context, path string) error {
	if _, err := s.w.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("copying the store to %s: %w", path, err)
	}
	return nil
}

var _ engine.Syncer = (*Store)(nil)

// Sync implements engine.Syncer: it flushes the write-ahead log, which
// holds every commit not yet checkpointed, to disk. Commits are not each
// flushed (synchronous=NORMAL); a process crash keeps them anyway, a
// power loss only after this.
//
// The log it flushes must be the one this process writes: a -wal file
// deleted or replaced under it (checkLog) fails Sync with ErrLogDeleted,
// so that a webhook delivery is not acknowledged on the strength of a
// file no one will read again.
func (s *Store) Sync(ctx context.Context) error {
	if err := s.checkLog(); err != nil {
		return fmt.Errorf("store %s: flushing its log: %w", s.path, err)
	}
	f, err := os.OpenFile(s.path+"-wal", os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) && s.wal == nil {
		return nil // no log: every commit is in the database file
	}
	if err != nil {
		return fmt.Errorf("store %s: flushing its log: %w", s.path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store %s: flushing its log: %w", s.path, err)
	}
	return nil
}
