package sqlitestore

import (
	"database/sql"
	"math/bits"
	"strings"
)

// maxRows bounds the rows of one multi-row statement. A batch is written
// in chunks of powers of two rows up to it, so that each chunk size is
// one statement prepared once (a statement per row count would be
// prepared again at every batch of a new size).
const (
	maxRowsLog = 6
	maxRows    = 1 << maxRowsLog
)

// multiStmt is one multi-row statement prepared for 1, 2, 4 … maxRows rows.
type multiStmt [maxRowsLog + 1]*sql.Stmt

// rowsOf is n rows of cols parameters: (?, ?), (?, ?).
func rowsOf(cols, n int) string {
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	return strings.Repeat(row+", ", n-1) + row
}

// execRows runs st over rows, in chunks of the largest prepared size
// that fits, in order (a later row of a key replaces an earlier one).
func execRows(tx *sql.Tx, st *multiStmt, rows [][]any) error {
	_, err := execRowsCounted(tx, st, rows)
	return err
}

// execRowsCounted is execRows, and returns the rows the statements
// changed (fewer than rows when st ignores a conflict).
func execRowsCounted(tx *sql.Tx, st *multiStmt, rows [][]any) (int64, error) {
	var args []any
	var changed int64
	for len(rows) > 0 {
		k := bits.Len(uint(min(len(rows), maxRows))) - 1
		n := 1 << k
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		res, err := tx.Stmt(st[k]).Exec(args...)
		if err != nil {
			return changed, err
		}
		c, err := res.RowsAffected()
		if err != nil {
			return changed, err
		}
		changed += c
		rows = rows[n:]
	}
	return changed, nil
}
