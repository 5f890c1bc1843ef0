package sqlitestore

// stepsRowidMigration moves steps out of a WITHOUT ROWID table. In one,
// a record over about a quarter of a page spills into an overflow page of
// its own, and a step's output (a whole credential or user) is usually
// that long: the table was three quarters empty overflow pages, written
// to the WAL and checkpointed. A rowid table keeps records of up to a
// page in the leaf; (run, idx) stays unique through its index.
const stepsRowidMigration = `DROP VIEW dead_letters;
DROP VIEW audit;
CREATE TABLE steps_by_rowid (` + stepsColumns + `);
INSERT INTO steps_by_rowid SELECT run, idx, step_id, action, status, input, output, error, attempts, started, finished FROM steps;
DROP TABLE steps;
ALTER TABLE steps_by_rowid RENAME TO steps;
` + stepViews

// stepsColumns are the columns of steps, in both of its tables.
const stepsColumns = `
	run      INTEGER NOT NULL,
	idx      INTEGER NOT NULL,
	step_id  TEXT    NOT NULL,
	action   TEXT    NOT NULL,
	status   TEXT    NOT NULL,
	input    BLOB,
	output   BLOB,
	error    TEXT,
	attempts INTEGER NOT NULL,
	started  INTEGER,
	finished INTEGER,
	PRIMARY KEY (run, idx)
`

// stepViews are the views over steps that a user reads with sqlite3
// (docs/runner.md).
const stepViews = `CREATE VIEW dead_letters AS
	SELECT r.id AS run, r.recipe, e.event_id, e.subject, r.error, r.attempts, r.finished,
	       s.step_id, s.action, s.input, s.output AS response, s.error AS step_error, e.data AS event
	FROM runs r
	JOIN events e ON e.id = r.event
	LEFT JOIN steps s ON s.run = r.id
	     AND s.idx = (SELECT max(idx) FROM steps WHERE run = r.id)
	WHERE r.status = 'dead';
-- The audit trail is the journal itself: one row per fact, written once.
CREATE VIEW audit AS
	SELECT r.id AS run, r.recipe, e.event_id, e.data AS event, r.status, r.condition, r.cond_values,
	       s.idx, s.step_id, s.action, s.status AS step_status, s.input AS request, s.output AS result,
	       s.error, s.attempts, s.started, s.finished, r.created, r.finished AS run_finished
	FROM runs r
	JOIN events e ON e.id = r.event
	LEFT JOIN steps s ON s.run = r.id;
`
