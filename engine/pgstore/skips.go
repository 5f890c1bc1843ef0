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

// Skipped events are counted in skip_pages (migration 2, Advance and
// ListSkips); Prune deletes what is older than the operator's horizon.

var _ engine.SkipLister = (*Store)(nil)

// ListSkips implements engine.SkipLister.
func (s *Store) ListSkips(ctx context.Context, f engine.RunFilter) ([]engine.SkipPage, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT id, recipe, count, sample, created FROM skip_pages`
	var args []any
	if f.Recipe != "" {
		q += ` WHERE recipe = $1`
		args = append(args, f.Recipe)
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing skipped events: %w", err)
	}
	defer rows.Close()
	var out []engine.SkipPage
	for rows.Next() {
		var p engine.SkipPage
		var sample []byte
		var created int64
		if err := rows.Scan(&p.ID, &p.Recipe, &p.Count, &sample, &created); err != nil {
			return nil, fmt.Errorf("listing skipped events: %w", err)
		}
		p.Created = time.Unix(0, created).UTC()
		if len(sample) > 0 {
			if err := json.Unmarshal(sample, &p.Sample); err != nil {
				return nil, fmt.Errorf("listing skipped events: page %d: %w", p.ID, err)
			}
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

var _ engine.Pruner = (*Store)(nil)

// Prune implements engine.Pruner, in one transaction (then VACUUM of the
// store's tables when asked).
func (s *Store) Prune(ctx context.Context, p engine.Prune) (*engine.Pruned, error) {
	out := &engine.Pruned{}
	var err error
	if out.BytesBefore, err = s.size(ctx); err != nil {
		return nil, err
	}
	before := p.Before.UnixNano()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		*out = engine.Pruned{BytesBefore: out.BytesBefore}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE prune_runs ON COMMIT DROP AS
			SELECT id, event FROM runs
			WHERE status IN ('succeeded', 'skipped', 'suppressed') AND finished IS NOT NULL AND finished < $1`, before); err != nil {
			return fmt.Errorf("selecting finished runs: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM steps WHERE run IN (SELECT id FROM prune_runs)`)
		if err != nil {
			return fmt.Errorf("deleting step journals: %w", err)
		}
		out.Steps = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `UPDATE events e SET data = ''::bytea WHERE e.id IN (SELECT event FROM prune_runs)
			AND length(e.data) > 0
			AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event = e.id AND r.id NOT IN (SELECT id FROM prune_runs))`)
		if err != nil {
			return fmt.Errorf("clearing event data: %w", err)
		}
		out.Events = tag.RowsAffected()
		// The attempts replays ended go with their run (versions.go).
		if _, err := tx.Exec(ctx, `DELETE FROM attempts WHERE run IN (SELECT id FROM prune_runs)`); err != nil {
			return fmt.Errorf("deleting earlier attempts: %w", err)
		}
		tag, err = tx.Exec(ctx, `DELETE FROM runs WHERE id IN (SELECT id FROM prune_runs)`)
		if err != nil {
			return fmt.Errorf("deleting runs: %w", err)
		}
		out.Runs = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `DELETE FROM skip_pages WHERE created < $1`, before)
		if err != nil {
			return fmt.Errorf("deleting skip pages: %w", err)
		}
		out.SkipPages = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pruning the store: %w", err)
	}
	if p.Vacuum {
		for _, table := range []string{"steps", "events", "runs", "attempts", "skip_pages"} {
			if _, err := s.pool.Exec(ctx, `VACUUM `+table); err != nil {
				return nil, fmt.Errorf("pruning the store: vacuum %s: %w", table, err)
			}
		}
	}
	if out.BytesAfter, err = s.size(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// size is the bytes of the store's tables and indexes.
func (s *Store) size(ctx context.Context) (int64, error) {
	var n *int64
	err := s.pool.QueryRow(ctx, `SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
		JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = $1 AND c.relkind = 'r'`, s.schema).Scan(&n)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("measuring the store: %w", err)
	}
	if n == nil {
		return 0, nil
	}
	return *n, nil
}
