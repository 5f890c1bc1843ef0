package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
)

// skipPagesMigration: an event the recipe's condition rejects is counted
// in one row per Advance, with a bounded sample of what the condition
// read, instead of an events row and a runs row each (as in SQLite's
// migration 4).
const skipPagesMigration = `
CREATE TABLE skip_pages (
	id      BIGSERIAL PRIMARY KEY,
	recipe  TEXT    NOT NULL,
	count   INTEGER NOT NULL,
	sample  BYTEA,
	created BIGINT  NOT NULL
);
CREATE INDEX skip_pages_by_recipe ON skip_pages(recipe, id);`

// skipPage gathers the skipped events of one Advance.
type skipPage struct {
	count  int
	sample []engine.SkippedEvent
	// some says, per connector, whether memberflow ever wrote to its
	// records: when it never did, no event can be an echo.
	some map[string]bool
}

// mayEcho is whether any event of connector can be an echo: one query per
// connector and page instead of one per event.
func (p *skipPage) mayEcho(ctx context.Context, tx pgx.Tx, connector string) (bool, error) {
	if some, ok := p.some[connector]; ok {
		return some, nil
	}
	var some bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM echoes WHERE connector = $1)`, connector).Scan(&some); err != nil {
		return false, fmt.Errorf("looking up echoes of connector %q: %w", connector, err)
	}
	if p.some == nil {
		p.some = map[string]bool{}
	}
	p.some[connector] = some
	return some, nil
}

// add counts a skipped event, unless it is the echo of a write memberflow
// made: an echo is recorded as a suppressed run, as when its condition
// holds, so add then encodes its data and returns done false.
func (p *skipPage) add(ctx context.Context, tx pgx.Tx, recipe string, ev *engine.NewEvent) (done bool, err error) {
	some, err := p.mayEcho(ctx, tx, ev.Connector)
	if err != nil {
		return false, err
	}
	if ev.Fingerprint != "" && some {
		var echo bool
		if err := tx.QueryRow(ctx, `SELECT `+echoFor, ev.Connector, ev.Subject, ev.Fingerprint, recipe).Scan(&echo); err != nil {
			return false, fmt.Errorf("looking up echoes of %q: %w", ev.Subject, err)
		}
		if echo {
			if ev.Data == nil && ev.Encode != nil {
				if ev.Data, err = ev.Encode(); err != nil {
					return false, fmt.Errorf("event %q: encoding its data: %w", ev.ID, err)
				}
			}
			return false, nil
		}
	}
	p.count++
	if len(ev.Values) > 0 && len(p.sample) < engine.SkipSample {
		p.sample = append(p.sample, engine.SkippedEvent{EventID: ev.ID, Subject: ev.Subject, Values: ev.Values})
	}
	return true, nil
}

// save writes the page's row, in the Advance's transaction.
func (p *skipPage) save(ctx context.Context, tx pgx.Tx, recipe string, now int64) error {
	if p.count == 0 {
		return nil
	}
	var sample []byte
	if len(p.sample) > 0 {
		var err error
		if sample, err = json.Marshal(p.sample); err != nil {
			return fmt.Errorf("encoding the sample of skipped events: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO skip_pages (recipe, count, sample, created) VALUES ($1, $2, $3, $4)`,
		recipe, p.count, sample, now); err != nil {
		return fmt.Errorf("counting %d skipped event(s): %w", p.count, err)
	}
	return nil
}

var _ engine.SkipLister = (*Store)(nil)

// ListSkips implements engine.SkipLister.
func (s *Store) ListSkips(ctx context.Context, f engine.RunFilter) ([]engine.SkipPage, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT id, recipe, count, sample, created FROM skip_pages
		WHERE ($1 = '' OR recipe = $1) ORDER BY id DESC LIMIT $2`, f.Recipe, f.Limit)
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
		p.Created = fromNanos(&created)
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
		for _, table := range []string{"steps", "events", "runs", "skip_pages"} {
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
