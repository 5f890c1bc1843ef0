package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// versionsMigration adds what engine.Versions needs: the recipe version
// each run last ran with (runs.version), the versions themselves, and the
// attempts a replay ended (each with its journal, for the audit).
const versionsMigration = `ALTER TABLE runs ADD COLUMN version TEXT;
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
) WITHOUT ROWID;`

var _ engine.Versions = (*Store)(nil)

// SaveVersion implements engine.Versions.
func (s *Store) SaveVersion(ctx context.Context, v engine.RecipeVersion) error {
	if v.Seen.IsZero() {
		v.Seen = time.Now()
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO recipe_versions (recipe, hash, revision, file, source, seen) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (recipe, hash) DO UPDATE SET revision = coalesce(excluded.revision, recipe_versions.revision)`,
			v.Recipe, v.Hash, nullString(v.Revision), nullString(v.File), v.Source, v.Seen.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("saving version %.12s of recipe %q: %w", v.Hash, v.Recipe, err)
	}
	return nil
}

// LoadVersion implements engine.Versions.
func (s *Store) LoadVersion(ctx context.Context, recipe, hash string) (*engine.RecipeVersion, error) {
	v := &engine.RecipeVersion{Recipe: recipe, Hash: hash}
	var rev, file sql.NullString
	var seen int64
	err := s.r.QueryRowContext(ctx, `SELECT revision, file, source, seen FROM recipe_versions WHERE recipe = ? AND hash = ?`, recipe, hash).
		Scan(&rev, &file, &v.Source, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("recipe %q version %.12s: %w", recipe, hash, engine.ErrNoVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("reading recipe %q version %.12s: %w", recipe, hash, err)
	}
	v.Revision, v.File, v.Seen = rev.String, file.String, time.Unix(0, seen).UTC()
	return v, nil
}

// RunVersion implements engine.Versions.
func (s *Store) RunVersion(ctx context.Context, run int64) (string, error) {
	if err := s.writeOutPages(ctx); err != nil {
		return "", err
	}
	var v sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT version FROM runs WHERE id = ?`, run).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("run %d: %w", run, engine.ErrNoRun)
	}
	if err != nil {
		return "", fmt.Errorf("reading the version of run %d: %w", run, err)
	}
	return v.String, nil
}

// Unpin implements engine.Versions.
func (s *Store) Unpin(ctx context.Context, run int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE runs SET version = NULL WHERE id = ?`, run)
		return err
	})
}

// Attempts implements engine.Versions.
func (s *Store) Attempts(ctx context.Context, run int64) ([]engine.Attempt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT n, version, status, error, finished, steps FROM attempts WHERE run = ? ORDER BY n`, run)
	if err != nil {
		return nil, fmt.Errorf("reading the attempts of run %d: %w", run, err)
	}
	defer rows.Close()
	var out []engine.Attempt
	for rows.Next() {
		var a engine.Attempt
		var version, errText sql.NullString
		var finished sql.NullInt64
		var steps []byte
		if err := rows.Scan(&a.N, &version, &a.Status, &errText, &finished, &steps); err != nil {
			return nil, err
		}
		a.Version, a.Error, a.Finished = version.String, errText.String, fromNanos(finished)
		if err := json.Unmarshal(steps, &a.Steps); err != nil {
			return nil, fmt.Errorf("run %d attempt %d: %w", run, a.N, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// archiveAttempt keeps a dead run's outcome and journal as an attempt
// before a replay requeues it (and forgets its failed step).
func archiveAttempt(tx *sql.Tx, id int64) error {
	var version, errText sql.NullString
	var status string
	var finished sql.NullInt64
	if err := tx.QueryRow(`SELECT version, status, error, finished FROM runs WHERE id = ?`, id).Scan(&version, &status, &errText, &finished); err != nil {
		return err
	}
	rows, err := tx.Query(`SELECT idx, step_id, action, status, input, output, error, attempts, started, finished FROM steps WHERE run = ? ORDER BY idx`, id)
	if err != nil {
		return err
	}
	steps := []engine.StepRecord{}
	for rows.Next() {
		r := engine.StepRecord{RunID: id}
		var in, outp []byte
		var e sql.NullString
		var started, fin sql.NullInt64
		if err := rows.Scan(&r.Index, &r.StepID, &r.Action, &r.Status, &in, &outp, &e, &r.Attempts, &started, &fin); err != nil {
			rows.Close()
			return err
		}
		r.Input, r.Output, r.Error = in, outp, e.String
		r.Started, r.Finished = fromNanos(started), fromNanos(fin)
		steps = append(steps, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	b, err := json.Marshal(steps)
	if err != nil {
		return err
	}
	_, err = tx.Exec(`INSERT INTO attempts (run, n, version, status, error, finished, steps)
		VALUES (?1, (SELECT coalesce(max(n), 0) + 1 FROM attempts WHERE run = ?1), ?2, ?3, ?4, ?5, ?6)`,
		id, version, status, errText, finished, b)
	return err
}
