package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/memberflow/memberflow/engine"
)

var _ engine.StateCopier = (*Store)(nil)

// ExportState implements engine.StateCopier.
func (s *Store) ExportState(ctx context.Context) (*engine.TriggerState, error) {
	st := &engine.TriggerState{}
	err := func() error {
		rows, err := s.r.QueryContext(ctx, `SELECT recipe, cursor FROM cursors ORDER BY recipe`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c engine.CursorState
			if err := rows.Scan(&c.Recipe, &c.Cursor); err != nil {
				rows.Close()
				return err
			}
			st.Cursors = append(st.Cursors, c)
		}
		rows.Close()
		// The newest state of each subject: its last in the log
		// (statelog.go), else subject_states'.
		// One sort, not a search of the unindexed log per state: the
		// log holds up to MergeStates rows, subject_states every subject.
		if rows, err = s.r.QueryContext(ctx, `SELECT recipe, subject, state FROM (
				SELECT recipe, subject, state,
				       row_number() OVER (PARTITION BY recipe, subject ORDER BY logged DESC, id DESC) AS newest
				FROM (SELECT recipe, subject, state, 0 AS logged, 0 AS id FROM subject_states
				      UNION ALL
				      SELECT recipe, subject, state, 1, id FROM subject_state_log))
			WHERE newest = 1
			ORDER BY recipe, subject`); err != nil {
			return err
		}
		for rows.Next() {
			var r engine.RecipeState
			if err := rows.Scan(&r.Recipe, &r.Subject, &r.State); err != nil {
				rows.Close()
				return err
			}
			st.Subjects = append(st.Subjects, r)
		}
		rows.Close()
		if rows, err = s.r.QueryContext(ctx, `SELECT connector, subject, fingerprint, written FROM echoes ORDER BY connector, subject, fingerprint`); err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var w engine.WrittenState
			var at int64
			if err := rows.Scan(&w.Connector, &w.Subject, &w.Fingerprint, &at); err != nil {
				return err
			}
			w.Written = time.Unix(0, at).UTC()
			st.Writes = append(st.Writes, w)
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, fmt.Errorf("exporting the trigger state: %w", err)
	}
	return st, nil
}

// ImportState implements engine.StateCopier.
func (s *Store) ImportState(ctx context.Context, st *engine.TriggerState) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		for _, c := range st.Cursors {
			if _, err := tx.Stmt(s.upCursor).Exec(c.Recipe, c.Cursor, now); err != nil {
				return err
			}
		}
		states := make([][]any, len(st.Subjects))
		for i, r := range st.Subjects {
			states[i] = []any{r.Recipe, r.Subject, r.State}
		}
		if err := s.logStates(tx, states); err != nil {
			return err
		}
		for _, w := range st.Writes {
			if _, err := tx.Exec(`INSERT INTO echoes (connector, subject, fingerprint, run, written) VALUES (?, ?, ?, NULL, ?)
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
