package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
)

const runColumns = `r.id, r.recipe, e.event_id, e.subject, r.status, r.attempts, coalesce(r.error, ''), r.created, r.finished, r.okey,
	coalesce((SELECT step_id FROM steps s WHERE s.run = r.id AND s.status IN ('failed', 'in_doubt', 'started')
	          ORDER BY idx DESC LIMIT 1), '')`

func scanRun(row pgx.Row, extra ...any) (*engine.RunInfo, error) {
	var ri engine.RunInfo
	var created int64
	var finished *int64
	dest := append([]any{&ri.ID, &ri.Recipe, &ri.EventID, &ri.Subject, &ri.Status, &ri.Attempts, &ri.Error, &created, &finished, &ri.OrderingKey, &ri.FailedStep}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	ri.Created = time.Unix(0, created).UTC()
	if finished != nil {
		t := time.Unix(0, *finished).UTC()
		ri.Finished = &t
	}
	if ri.Status != engine.RunDead && ri.Status != engine.RunRunning {
		ri.FailedStep = ""
	}
	return &ri, nil
}

// ListRuns implements engine.Inspector, newest first.
func (s *Store) ListRuns(ctx context.Context, f engine.RunFilter) ([]engine.RunInfo, error) {
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Recipe != "" {
		arg("r.recipe = $%d", f.Recipe)
	}
	switch f.Status {
	case "":
	case engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunSkipped, engine.RunSuppressed, engine.RunDead:
		arg("r.status = $%d", f.Status)
	default:
		return nil, fmt.Errorf("listing runs: unknown status %q", f.Status)
	}
	if f.Subject != "" {
		arg("e.subject = $%d", f.Subject)
	}
	if !f.Since.IsZero() {
		arg("r.created >= $%d", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		arg("r.created < $%d", f.Until.UnixNano())
	}
	if f.Before > 0 {
		arg("r.id < $%d", f.Before)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT ` + runColumns + ` FROM runs r JOIN events e ON e.id = r.event`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(" ORDER BY r.id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
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
	var event, values []byte
	var cond *bool
	ri, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runColumns+`, e.data, r.condition, r.cond_values
		FROM runs r JOIN events e ON e.id = r.event WHERE r.id = $1`, id), &event, &cond, &values)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("run %d: %w", id, engine.ErrNoRun)
	}
	if err != nil {
		return nil, fmt.Errorf("reading run %d: %w", id, err)
	}
	d := &engine.RunDetail{RunInfo: *ri, Event: event, Values: values, Condition: cond}
	if d.Steps, err = s.Steps(ctx, id); err != nil {
		return nil, err
	}
	return d, nil
}

// Replay implements engine.Inspector.
func (s *Store) Replay(ctx context.Context, id int64) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM runs WHERE id = $1 FOR UPDATE`, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return engine.ErrNoRun
		}
		if err != nil {
			return err
		}
		if status != engine.RunDead {
			return fmt.Errorf("run %d is %s, not dead: only dead letters can be replayed", id, status)
		}
		if err := replay(ctx, tx, id); err != nil {
			return err
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("replaying run %d: %w", id, err)
	}
	return nil
}

// replay requeues a dead run. The step it died on is forgotten when it
// failed (it runs again); an in-doubt step is kept, so that it is settled
// again rather than re-sent.
func replay(ctx context.Context, tx pgx.Tx, id int64) error {
	// Every attempt stays in the audit (engine.Versions).
	if err := archiveAttempt(ctx, tx, id); err != nil {
		return fmt.Errorf("keeping the failed attempt: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM steps WHERE run = $1 AND status = 'failed'
		AND idx = (SELECT max(idx) FROM steps WHERE run = $1)`, id); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE runs SET status = 'queued', error = NULL, finished = NULL, owner = NULL, lease_until = NULL WHERE id = $1`, id)
	return err
}

// ReplayAll implements engine.Inspector.
func (s *Store) ReplayAll(ctx context.Context) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM runs WHERE status = 'dead' ORDER BY id FOR UPDATE`)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := replay(ctx, tx, id); err != nil {
				return err
			}
		}
		n = len(ids)
		if n > 0 {
			return s.notify(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("replaying dead runs: %w", err)
	}
	return n, nil
}
