package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
)

var _ engine.StateCopier = (*Store)(nil)

// ExportState implements engine.StateCopier.
func (s *Store) ExportState(ctx context.Context) (*engine.TriggerState, error) {
	st := &engine.TriggerState{}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT recipe, cursor FROM cursors ORDER BY recipe`)
		if err != nil {
			return err
		}
		if st.Cursors, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (c engine.CursorState, err error) {
			err = r.Scan(&c.Recipe, &c.Cursor)
			return
		}); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT recipe, subject, state FROM subject_states ORDER BY recipe, subject`); err != nil {
			return err
		}
		if st.Subjects, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (v engine.RecipeState, err error) {
			err = r.Scan(&v.Recipe, &v.Subject, &v.State)
			return
		}); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT connector, subject, fingerprint, written FROM echoes ORDER BY connector, subject, fingerprint`); err != nil {
			return err
		}
		st.Writes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (w engine.WrittenState, err error) {
			var at int64
			err = r.Scan(&w.Connector, &w.Subject, &w.Fingerprint, &at)
			w.Written = time.Unix(0, at).UTC()
			return
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("exporting the trigger state: %w", err)
	}
	return st, nil
}

// ImportState implements engine.StateCopier.
func (s *Store) ImportState(ctx context.Context, st *engine.TriggerState) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		now := time.Now().UnixNano()
		for _, c := range st.Cursors {
			if _, err := tx.Exec(ctx, `INSERT INTO cursors (recipe, cursor, updated) VALUES ($1, $2, $3)
				ON CONFLICT (recipe) DO UPDATE SET cursor = excluded.cursor, updated = excluded.updated`, c.Recipe, c.Cursor, now); err != nil {
				return err
			}
		}
		for _, r := range st.Subjects {
			if _, err := tx.Exec(ctx, `INSERT INTO subject_states (recipe, subject, state) VALUES ($1, $2, $3)
				ON CONFLICT (recipe, subject) DO UPDATE SET state = excluded.state`, r.Recipe, r.Subject, r.State); err != nil {
				return err
			}
		}
		for _, w := range st.Writes {
			if _, err := tx.Exec(ctx, `INSERT INTO echoes (connector, subject, fingerprint, run, written) VALUES ($1, $2, $3, NULL, $4)
				ON CONFLICT DO NOTHING`, w.Connector, w.Subject, w.Fingerprint, w.Written.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("importing the trigger state: %w", err)
	}
	return nil
}
