package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// The subject states' log. A polled page remembers the state of each of
// its subjects (up to 100 members), whose keys are the members' random
// IDs: upserted into subject_states at every advance, each row landed on
// a leaf page of its own, and every such page was a WAL frame of 4 KiB
// written by the commit and copied again by the checkpointer (38 % of a
// backfill's frames, one per member; issue 14, docs/benchmarks.md).
//
// So an advance appends its states to subject_state_log instead, in
// arrival order (a few pages per advance, at the table's end), and once
// the log holds defaultMergeStates rows the advance that passes it moves
// them into subject_states in key order, in the same transaction:
// thousands of states then share each leaf page they touch. The merge
// records the last log ID it moved (subject_state_merged), and deletes
// the rows it moved.
//
// A state is the newest of the log and of subject_states: PriorStates
// reads both in one snapshot of the database. Rather than searching the
// unindexed log, a handle keeps what it has read of the log in memory
// (stateOverlay) and reads only the rows added since, plus the merge
// mark: a row at or below the mark is in subject_states, so it leaves
// the overlay. The overlay is therefore at most the log's rows.
const stateLogMigration = `CREATE TABLE subject_state_log (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	recipe  TEXT NOT NULL,
	subject TEXT NOT NULL,
	state   TEXT NOT NULL
);
CREATE TABLE subject_state_merged (through INTEGER NOT NULL);
INSERT INTO subject_state_merged (through) VALUES (0);`

// defaultMergeStates is the log's length at which an advance merges it.
// The merge of n states into a table of L leaf pages writes about
// L·(1 − e^(−n/L)) pages: at 100,000 subjects (about 2,300 leaves) 16,384
// states write about 0.14 pages each, against one when upserted a page
// of 100 at a time. The overlay costs about 150 bytes a state.
const defaultMergeStates = 16384

// stateOverlay is what a handle has read of subject_state_log: the
// newest logged state of each recipe's subject, with its log ID.
type stateOverlay struct {
	mu     sync.Mutex
	seen   int64 // the last log ID read
	merged int64 // the merge mark last read
	states map[stateKey]loggedState
}

type stateKey struct{ recipe, subject string }

type loggedState struct {
	id    int64
	state string
}

// logStates appends a page's states to the log, in order (a later
// state of a subject replaces an earlier one), and merges the log when
// it has grown to s.mergeStates rows.
func (s *Store) logStates(tx *sql.Tx, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if err := execRows(tx, &s.insStateLog, rows); err != nil {
		return err
	}
	var last, through int64
	if err := tx.Stmt(s.stateLogSpan).QueryRow().Scan(&last, &through); err != nil {
		return fmt.Errorf("reading the length of the states' log: %w", err)
	}
	if last-through < int64(s.mergeStates) {
		return nil
	}
	return s.mergeStateLog(tx, last)
}

// mergeStateLog moves the log's states up to ID through into
// subject_states, in key order and, per key, in log order. The rows are
// upserted by the multi-row statement, not by one INSERT … SELECT: a
// statement keeps a journal of the pages it changes (in memory), which for
// one statement over thousands of leaves grew the runner's resident
// memory by the pages of the whole merge.
func (s *Store) mergeStateLog(tx *sql.Tx, through int64) error {
	rows, err := tx.Query(`SELECT recipe, subject, state FROM subject_state_log WHERE id <= ? ORDER BY recipe, subject, id`, through)
	if err != nil {
		return fmt.Errorf("merging the states' log through %d: %w", through, err)
	}
	var states [][]any
	for rows.Next() {
		var recipe, subject, state string
		if err := rows.Scan(&recipe, &subject, &state); err != nil {
			rows.Close()
			return fmt.Errorf("merging the states' log through %d: %w", through, err)
		}
		states = append(states, []any{recipe, subject, state})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("merging the states' log through %d: %w", through, err)
	}
	if err := execRows(tx, &s.upStates, states); err != nil {
		return fmt.Errorf("merging the states' log through %d: %w", through, err)
	}
	if _, err := tx.Exec(`DELETE FROM subject_state_log WHERE id <= ?`, through); err != nil {
		return fmt.Errorf("merging the states' log through %d: deleting: %w", through, err)
	}
	if _, err := tx.Exec(`UPDATE subject_state_merged SET through = ?`, through); err != nil {
		return fmt.Errorf("merging the states' log through %d: marking: %w", through, err)
	}
	return nil
}

// priorStates answers PriorStates from one read transaction: the log's
// new rows and its merge mark, then subject_states, overlaid with the
// log's newer states.
func (s *Store) priorStates(ctx context.Context, recipe string, subjects []string) (map[string]string, error) {
	o := &s.overlay
	o.mu.Lock()
	defer o.mu.Unlock()
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var merged int64
	if err := tx.Stmt(s.getMerged).QueryRowContext(ctx).Scan(&merged); err != nil {
		return nil, fmt.Errorf("reading the states' merge mark: %w", err)
	}
	if merged > o.merged {
		// What was merged is in subject_states, newest first.
		for k, st := range o.states {
			if st.id <= merged {
				delete(o.states, k)
			}
		}
		o.merged = merged
	}
	rows, err := tx.Stmt(s.getStateLog).QueryContext(ctx, max(o.seen, merged))
	if err != nil {
		return nil, fmt.Errorf("reading the states' log: %w", err)
	}
	for rows.Next() {
		var st loggedState
		var k stateKey
		if err := rows.Scan(&st.id, &k.recipe, &k.subject, &st.state); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the states' log: %w", err)
		}
		if o.states == nil {
			o.states = map[stateKey]loggedState{}
		}
		o.states[k] = st
		o.seen = st.id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the states' log: %w", err)
	}
	out := make(map[string]string, len(subjects))
	rows, err = tx.Stmt(s.getStates).QueryContext(ctx, recipe, jsonList(subjects))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var sub, st string
		if err := rows.Scan(&sub, &st); err != nil {
			return nil, err
		}
		out[sub] = st
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(o.states) > 0 {
		for _, sub := range subjects {
			if st, ok := o.states[stateKey{recipe, sub}]; ok {
				out[sub] = st.state
			}
		}
	}
	return out, nil
}
