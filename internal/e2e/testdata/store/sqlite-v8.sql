-- The schema of a SQLite store at version 8, as memberflow c688f12 created it (SELECT sql FROM sqlite_schema).
CREATE TABLE schema_version (version INTEGER NOT NULL);
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
, chain TEXT NOT NULL DEFAULT '', version TEXT);
CREATE INDEX runs_queued     ON runs(id)        WHERE status = 'queued';
CREATE INDEX runs_active_key ON runs(okey, id)  WHERE status IN ('queued', 'running');
CREATE INDEX runs_owner      ON runs(owner)     WHERE status = 'running';
CREATE INDEX runs_dead       ON runs(id)        WHERE status = 'dead';
CREATE INDEX runs_by_recipe  ON runs(recipe, id);
CREATE TABLE steps (
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
) WITHOUT ROWID;
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
CREATE VIEW dead_letters AS
	SELECT r.id AS run, r.recipe, e.event_id, e.subject, r.error, r.attempts, r.finished,
	       s.step_id, s.action, s.input, s.output AS response, s.error AS step_error, e.data AS event
	FROM runs r
	JOIN events e ON e.id = r.event
	LEFT JOIN steps s ON s.run = r.id
	     AND s.idx = (SELECT max(idx) FROM steps WHERE run = r.id)
	WHERE r.status = 'dead';
CREATE VIEW audit AS
	SELECT r.id AS run, r.recipe, e.event_id, e.data AS event, r.status, r.condition, r.cond_values,
	       s.idx, s.step_id, s.action, s.status AS step_status, s.input AS request, s.output AS result,
	       s.error, s.attempts, s.started, s.finished, r.created, r.finished AS run_finished
	FROM runs r
	JOIN events e ON e.id = r.event
	LEFT JOIN steps s ON s.run = r.id;
CREATE TABLE "echoes" (
	connector   TEXT    NOT NULL,
	subject     TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	run         INTEGER,
	written     INTEGER NOT NULL,
	PRIMARY KEY (connector, subject, fingerprint)
) WITHOUT ROWID;
CREATE TABLE meta (
	key     TEXT    PRIMARY KEY,
	value   BLOB,
	version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE skip_pages (
	id      INTEGER PRIMARY KEY,
	recipe  TEXT    NOT NULL,
	count   INTEGER NOT NULL,
	sample  BLOB,
	created INTEGER NOT NULL
);
CREATE INDEX skip_pages_by_recipe ON skip_pages(recipe, id);
CREATE TABLE runners (
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
) WITHOUT ROWID;
CREATE TABLE recipe_versions (
	recipe   TEXT    NOT NULL,
	hash     TEXT    NOT NULL,
	revision TEXT,
	file     TEXT,
	source   BLOB    NOT NULL,
	seen     INTEGER NOT NULL,
	PRIMARY KEY (recipe, hash)
) WITHOUT ROWID;
CREATE TABLE attempts (
	run      INTEGER NOT NULL,
	n        INTEGER NOT NULL,
	version  TEXT,
	status   TEXT    NOT NULL,
	error    TEXT,
	finished INTEGER,
	steps    BLOB    NOT NULL,
	PRIMARY KEY (run, n)
) WITHOUT ROWID;
CREATE INDEX events_subject ON events(subject);
CREATE INDEX runs_by_event ON runs(event);
CREATE TABLE page_claims (
	id          INTEGER PRIMARY KEY,
	recipe      TEXT    NOT NULL,
	owner       TEXT    NOT NULL,
	lease_until INTEGER NOT NULL,
	first_run   INTEGER NOT NULL,
	last_run    INTEGER NOT NULL,
	pending     INTEGER NOT NULL
);
CREATE INDEX page_claims_owner ON page_claims(owner);
CREATE TABLE page_claim_runs (
	claim INTEGER PRIMARY KEY REFERENCES page_claims(id) ON DELETE CASCADE,
	keys  TEXT NOT NULL, -- {"ordering key": run ID}
	runs  TEXT NOT NULL  -- [{"id", "event", "okey", "chain", "created", "intent"}]
);
CREATE VIEW page_runs AS
	SELECT p.id AS claim, p.recipe, p.owner, p.lease_until, j.key AS okey, j.value AS run
	FROM page_claims p JOIN page_claim_runs c ON c.claim = p.id, json_each(c.keys) j
	WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = j.value);
