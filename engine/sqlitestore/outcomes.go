package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Page outcomes. The runs of a page claim that one journal write ends,
// each cleanly (succeeded, skipped or suppressed), are written as one
// row of page_outcomes — their
// rows of runs and of steps, exactly the values they would have had —
// instead of two or more rows each. When the claim holds other runs
// still, the ended ones are listed in page_ended (one small row each,
// deleted with the claim), so that no queue, key or lease check counts
// them as held; when they were its last, the claim is deleted as it
// would be.
//
// A page outcome is written out as the rows it holds (expandOutcomes)
// before every read that lists or counts finished runs: an operator's
// read (memberflow runs, the console, reconcile: writeOutPages), a prune,
// a replay. The single writer then inserts the rows in its own
// transaction, off the path of the runs being run; rows and outcome are
// swapped in one transaction, so a reader never sees both or neither.
// Until then the sqlite3 shell's audit view does not list them.
//
// Why: the file job's writer spent about a third of its time inserting
// each finished page run as a row of runs (and its indexes) and a row per
// step, row by row; one row per page is one insert.
const pageOutcomesMigration = `CREATE TABLE page_outcomes (
	id             INTEGER PRIMARY KEY,
	first_run      INTEGER NOT NULL,
	last_run       INTEGER NOT NULL,
	runs           INTEGER NOT NULL,
	first_finished INTEGER NOT NULL, -- when its runs ended: a prune drops
	last_finished  INTEGER NOT NULL, -- it whole, or writes it out first
	rows           BLOB    NOT NULL  -- the runs' rows (encodeOutcomes)
);
-- The next run ID is above the last any outcome holds: found in the index
-- at every advance, not by a scan of the outcomes.
CREATE INDEX page_outcomes_last_run ON page_outcomes(last_run);
-- The runs of live page claims that ended in a page outcome.
CREATE TABLE page_ended (run INTEGER PRIMARY KEY);
CREATE TRIGGER page_claim_deleted AFTER DELETE ON page_claims BEGIN
	DELETE FROM page_ended WHERE run BETWEEN old.first_run AND old.last_run;
END;
DROP VIEW page_runs;
-- The runs held by page claims that are not rows of runs yet and did
-- not end.
CREATE VIEW page_runs AS
	SELECT p.id AS claim, p.recipe, p.owner, p.lease_until, j.key AS okey, j.value AS run
	FROM page_claims p JOIN page_claim_runs c ON c.claim = p.id, json_each(c.keys) j
	WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = j.value)
	  AND NOT EXISTS (SELECT 1 FROM page_ended x WHERE x.run = j.value);`

// outcomeStatuses are the outcomes a page outcome may hold: the ended
// runs no queue, dead-letter or replay query looks for.
func outcomeStatus(status string) bool {
	switch status {
	case "succeeded", "skipped", "suppressed":
		return true
	}
	return false
}

// outcomeRun is one run of a page outcome: its row of runs (insFinal's
// columns) and its steps' rows (upSteps' columns).
type outcomeRun struct {
	final []any
	steps [][]any
}

// The values of a page outcome's rows keep their Go types, so that
// writing them out binds what the journal would have bound: NULL, an
// integer, text, a blob (nil or not) and a boolean are distinct.
const (
	valNull byte = iota
	valInt
	valText
	valBlob
	valNilBlob
	valFalse
	valTrue
)

// encodeOutcomes encodes runs as a page outcome's rows: the count of runs,
// then each run's final row and its steps, each row its values in order.
func encodeOutcomes(b []byte, runs []outcomeRun) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(len(runs)))
	var err error
	for _, r := range runs {
		if len(r.final) != finalCols {
			return nil, fmt.Errorf("run row of %d values, want %d", len(r.final), finalCols)
		}
		if b, err = appendValues(b, r.final); err != nil {
			return nil, fmt.Errorf("run %v: %w", r.final[0], err)
		}
		b = binary.AppendUvarint(b, uint64(len(r.steps)))
		for _, st := range r.steps {
			if len(st) != stepCols {
				return nil, fmt.Errorf("run %v: step row of %d values, want %d", r.final[0], len(st), stepCols)
			}
			if b, err = appendValues(b, st); err != nil {
				return nil, fmt.Errorf("run %v: step: %w", r.final[0], err)
			}
		}
	}
	return b, nil
}

func appendValues(b []byte, row []any) ([]byte, error) {
	for _, v := range row {
		switch v := v.(type) {
		case nil:
			b = append(b, valNull)
		case int64:
			b = binary.AppendVarint(append(b, valInt), v)
		case int:
			b = binary.AppendVarint(append(b, valInt), int64(v))
		case string:
			b = append(binary.AppendUvarint(append(b, valText), uint64(len(v))), v...)
		case []byte:
			if v == nil {
				b = append(b, valNilBlob)
				continue
			}
			b = append(binary.AppendUvarint(append(b, valBlob), uint64(len(v))), v...)
		case bool:
			if v {
				b = append(b, valTrue)
			} else {
				b = append(b, valFalse)
			}
		default:
			return nil, fmt.Errorf("a value of type %T cannot be kept in a page outcome", v)
		}
	}
	return b, nil
}

var errOutcomeTruncated = errors.New("truncated")

// decodeOutcomes reads what encodeOutcomes wrote. Text and blobs are
// copied out of b.
func decodeOutcomes(b []byte) ([]outcomeRun, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("the count of runs: %w", errOutcomeTruncated)
	}
	b = b[k:]
	runs := make([]outcomeRun, n)
	var err error
	for i := range runs {
		if runs[i].final, b, err = readValues(b, finalCols); err != nil {
			return nil, fmt.Errorf("run %d of %d: %w", i+1, n, err)
		}
		m, k := binary.Uvarint(b)
		if k <= 0 || m > uint64(len(b)) {
			return nil, fmt.Errorf("run %d of %d: the count of steps: %w", i+1, n, errOutcomeTruncated)
		}
		b = b[k:]
		runs[i].steps = make([][]any, m)
		for j := range runs[i].steps {
			if runs[i].steps[j], b, err = readValues(b, stepCols); err != nil {
				return nil, fmt.Errorf("run %d of %d: step %d: %w", i+1, n, j+1, err)
			}
		}
	}
	if len(b) > 0 {
		return nil, fmt.Errorf("%d bytes after the last run", len(b))
	}
	return runs, nil
}

func readValues(b []byte, n int) ([]any, []byte, error) {
	row := make([]any, n)
	for i := range row {
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("value %d: %w", i+1, errOutcomeTruncated)
		}
		tag := b[0]
		b = b[1:]
		switch tag {
		case valNull:
		case valInt:
			v, k := binary.Varint(b)
			if k <= 0 {
				return nil, nil, fmt.Errorf("value %d: %w", i+1, errOutcomeTruncated)
			}
			row[i], b = v, b[k:]
		case valText, valBlob:
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return nil, nil, fmt.Errorf("value %d: %w", i+1, errOutcomeTruncated)
			}
			v := b[k : k+int(l)]
			if tag == valText {
				row[i] = string(v)
			} else {
				row[i] = slices.Clone(v)
				if l == 0 {
					row[i] = []byte{}
				}
			}
			b = b[k+int(l):]
		case valNilBlob:
			row[i] = []byte(nil)
		case valFalse:
			row[i] = false
		case valTrue:
			row[i] = true
		default:
			return nil, nil, fmt.Errorf("value %d: unknown type %d", i+1, tag)
		}
	}
	return row, b, nil
}

// saveOutcomes writes runs, the ended runs of one page claim, as a page
// outcome; held says the claim holds other runs still.
func (s *Store) saveOutcomes(tx *sql.Tx, runs []outcomeRun, held bool) error {
	first, last := runs[0].final[0].(int64), runs[0].final[0].(int64)
	firstFin, lastFin := finishedOf(runs[0]), finishedOf(runs[0])
	for _, r := range runs[1:] {
		id, fin := r.final[0].(int64), finishedOf(r)
		first, last = min(first, id), max(last, id)
		firstFin, lastFin = min(firstFin, fin), max(lastFin, fin)
	}
	// The buffer is the writer's, reused: the driver copies what it binds.
	blob, err := encodeOutcomes(slices.Grow(s.outcomeBuf[:0], outcomeSize(runs)), runs)
	if err != nil {
		return fmt.Errorf("keeping the outcomes of runs %d–%d: %w", first, last, err)
	}
	if _, err := tx.Stmt(s.insOutcomes).Exec(first, last, len(runs), firstFin, lastFin, blob); err != nil {
		return fmt.Errorf("keeping the outcomes of runs %d–%d: %w", first, last, err)
	}
	s.outcomeBuf = blob
	if !held {
		return nil
	}
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.final[0].(int64)
	}
	if _, err := tx.Stmt(s.insEnded).Exec(idList(ids)); err != nil {
		return fmt.Errorf("counting runs %d–%d out of their page claim: %w", first, last, err)
	}
	return nil
}

// finishedOf is when r ended, in nanoseconds (its row's finished).
func finishedOf(r outcomeRun) int64 {
	fin, _ := r.final[finishedCol].(int64)
	return fin
}

// finishedCol is the finished column of a final row (pagedRun.finalRow).
const finishedCol = 9

// outcomeSize is about the length of runs encoded: their text and blobs
// and a few bytes a value.
func outcomeSize(runs []outcomeRun) int {
	n := 8
	for _, r := range runs {
		n += rowSize(r.final) + 2
		for _, st := range r.steps {
			n += rowSize(st)
		}
	}
	return n
}

func rowSize(row []any) int {
	n := 0
	for _, v := range row {
		switch v := v.(type) {
		case string:
			n += len(v) + 3
		case []byte:
			n += len(v) + 3
		default:
			n += 10
		}
	}
	return n
}

// expandChunk is how many page outcomes one pass of expandOutcomes
// writes out: a few hundred runs, so that a pass's memory is bounded.
const expandChunk = 8

// expandOutcomes writes page outcomes out as the rows they hold, oldest
// first, and deletes them: up to expandChunk of them, or all with all.
// It reports whether any is left.
func (s *Store) expandOutcomes(tx *sql.Tx, all bool) (more bool, err error) {
	return s.expandOutcomesWhere(tx, all, `1`)
}

// expandOutcomesWhere is expandOutcomes for the page outcomes that match
// cond.
func (s *Store) expandOutcomesWhere(tx *sql.Tx, all bool, cond string, args ...any) (more bool, err error) {
	for {
		outs, err := readOutcomes(tx, cond, args...)
		if err != nil || len(outs) == 0 {
			return false, err
		}
		ids := make([]int64, len(outs))
		var finals, steps [][]any
		for i, o := range outs {
			ids[i] = o.id
			for _, r := range o.runs {
				finals = append(finals, r.final)
				steps = append(steps, r.steps...)
			}
		}
		if err := execRows(tx, &s.insFinal, finals); err != nil {
			return false, fmt.Errorf("writing out the %d runs of page outcomes %d–%d: %w", len(finals), ids[0], ids[len(ids)-1], err)
		}
		if err := execRows(tx, &s.upSteps, steps); err != nil {
			return false, fmt.Errorf("writing out the steps of page outcomes %d–%d: %w", ids[0], ids[len(ids)-1], err)
		}
		if _, err := tx.Exec(`DELETE FROM page_outcomes WHERE id IN (SELECT value FROM json_each(?))`, idList(ids)); err != nil {
			return false, fmt.Errorf("deleting page outcomes written out: %w", err)
		}
		// A full chunk may have more behind it.
		if more = len(outs) == expandChunk; !all || !more {
			return more, nil
		}
	}
}

// pageOutcome is one row of page_outcomes, decoded.
type pageOutcome struct {
	id   int64
	runs []outcomeRun
}

// readOutcomes reads and decodes up to expandChunk page outcomes that
// match cond, in ID order.
func readOutcomes(tx *sql.Tx, cond string, args ...any) ([]pageOutcome, error) {
	rows, err := tx.Query(`SELECT id, rows FROM page_outcomes WHERE `+cond+` ORDER BY id LIMIT `+strconv.Itoa(expandChunk), args...)
	if err != nil {
		return nil, fmt.Errorf("reading page outcomes: %w", err)
	}
	defer rows.Close()
	var out []pageOutcome
	for rows.Next() {
		var o pageOutcome
		var blob []byte
		if err := rows.Scan(&o.id, &blob); err != nil {
			return nil, fmt.Errorf("reading page outcomes: %w", err)
		}
		if o.runs, err = decodeOutcomes(blob); err != nil {
			return nil, fmt.Errorf("reading page outcome %d: %w", o.id, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading page outcomes: %w", err)
	}
	return out, nil
}

// expandAllOutcomes writes every page outcome out, a chunk per
// transaction (a large backlog does not hold the writer in one).
func (s *Store) expandAllOutcomes(ctx context.Context) error {
	for more := true; more; {
		if err := s.write(ctx, func(tx *sql.Tx) error {
			var err error
			more, err = s.expandOutcomes(tx, false)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}
