package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
)

// versionsMigration adds what engine.Versions needs, as SQLite's does: the
// recipe version each run last ran with (runs.version), the versions
// themselves, and the attempts a replay ended (each with its journal, for
// the audit). Steps are kept as JSON in BYTEA, as in SQLite, so that both
// stores hold the same bytes.
const versionsMigration = `ALTER TABLE runs ADD COLUMN version TEXT;
CREATE TABLE recipe_versions (
	recipe   TEXT   NOT NULL,
	hash     TEXT   NOT NULL,
	revision TEXT,
	file     TEXT,
	source   BYTEA  NOT NULL,
	seen     BIGINT NOT NULL,
	PRIMARY KEY (recipe, hash)
);
CREATE TABLE attempts (
	run      BIGINT  NOT NULL,
	n        INTEGER NOT NULL,
	version  TEXT,
	status   TEXT    NOT NULL,
	error    TEXT,
	finished BIGINT,
	steps    BYTEA   NOT NULL,
	PRIMARY KEY (run, n)
);`

var _ engine.Versions = (*Store)(nil)

// SaveVersion implements engine.Versions.
func (s *Store) SaveVersion(ctx context.Context, v engine.RecipeVersion) error {
	if v.Seen.IsZero() {
		v.Seen = time.Now()
	}
	source := v.Source
	if source == nil {
		source = []byte{} // NOT NULL, as SQLite's empty BLOB
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO recipe_versions (recipe, hash, revision, file, source, seen) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (recipe, hash) DO UPDATE SET revision = coalesce(excluded.revision, recipe_versions.revision)`,
		v.Recipe, v.Hash, nullString(v.Revision), nullString(v.File), source, v.Seen.UnixNano())
	if err != nil {
		return fmt.Errorf("saving version %.12s of recipe %q: %w", v.Hash, v.Recipe, err)
	}
	return nil
}

// LoadVersion implements engine.Versions.
func (s *Store) LoadVersion(ctx context.Context, recipe, hash string) (*engine.RecipeVersion, error) {
	v := &engine.RecipeVersion{Recipe: recipe, Hash: hash}
	var rev, file *string
	var seen int64
	err := s.pool.QueryRow(ctx, `SELECT revision, file, source, seen FROM recipe_versions WHERE recipe = $1 AND hash = $2`, recipe, hash).
		Scan(&rev, &file, &v.Source, &seen)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("recipe %q version %.12s: %w", recipe, hash, engine.ErrNoVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("reading recipe %q version %.12s: %w", recipe, hash, err)
	}
	v.Revision, v.File, v.Seen = deref(rev), deref(file), time.Unix(0, seen).UTC()
	return v, nil
}

// RunVersion implements engine.Versions.
func (s *Store) RunVersion(ctx context.Context, run int64) (string, error) {
	var v *string
	err := s.pool.QueryRow(ctx, `SELECT version FROM runs WHERE id = $1`, run).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("run %d: %w", run, engine.ErrNoRun)
	}
	if err != nil {
		return "", fmt.Errorf("reading the version of run %d: %w", run, err)
	}
	return deref(v), nil
}

// Unpin implements engine.Versions.
func (s *Store) Unpin(ctx context.Context, run int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE runs SET version = NULL WHERE id = $1`, run); err != nil {
		return fmt.Errorf("unpinning run %d: %w", run, err)
	}
	return nil
}

// Attempts implements engine.Versions.
func (s *Store) Attempts(ctx context.Context, run int64) ([]engine.Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT n, version, status, error, finished, steps FROM attempts WHERE run = $1 ORDER BY n`, run)
	if err != nil {
		return nil, fmt.Errorf("reading the attempts of run %d: %w", run, err)
	}
	defer rows.Close()
	var out []engine.Attempt
	for rows.Next() {
		var a engine.Attempt
		var version, errText *string
		var finished *int64
		var steps []byte
		if err := rows.Scan(&a.N, &version, &a.Status, &errText, &finished, &steps); err != nil {
			return nil, fmt.Errorf("reading the attempts of run %d: %w", run, err)
		}
		a.Version, a.Error, a.Finished = deref(version), deref(errText), fromNanos(finished)
		if err := json.Unmarshal(steps, &a.Steps); err != nil {
			return nil, fmt.Errorf("run %d attempt %d: %w", run, a.N, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the attempts of run %d: %w", run, err)
	}
	return out, nil
}

// archiveAttempt keeps a dead run's outcome and journal as an attempt
// before a replay requeues it (and forgets its failed step). The caller
// holds the run's row (FOR UPDATE), so that attempt numbers do not race.
func archiveAttempt(ctx context.Context, tx pgx.Tx, id int64) error {
	recs, err := steps(ctx, tx, id)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []engine.StepRecord{}
	}
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO attempts (run, n, version, status, error, finished, steps)
		SELECT r.id, (SELECT coalesce(max(n), 0) + 1 FROM attempts WHERE run = r.id), r.version, r.status, r.error, r.finished, $2
		FROM runs r WHERE r.id = $1`, id, b)
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
