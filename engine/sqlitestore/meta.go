package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/memberflow/memberflow/engine"
)

// metaMigration is the table of engine.MetaStore. A deleted value keeps
// its row (value NULL) so that its version never goes back to one a
// reader may still hold.
const metaMigration = `CREATE TABLE meta (
	key     TEXT    PRIMARY KEY,
	value   BLOB,
	version INTEGER NOT NULL
) WITHOUT ROWID;`

var _ engine.MetaStore = (*Store)(nil)

// GetMeta implements engine.MetaStore. Each read sees the last commit,
// another process's included (WAL).
func (s *Store) GetMeta(ctx context.Context, key string) ([]byte, int64, error) {
	var value []byte
	var version int64
	err := s.r.QueryRowContext(ctx, `SELECT value, version FROM meta WHERE key = ?`, key).Scan(&value, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading %q from the store: %w", key, err)
	}
	return value, version, nil
}

// SwapMeta implements engine.MetaStore.
func (s *Store) SwapMeta(ctx context.Context, key string, version int64, value []byte) (bool, error) {
	var swapped bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		swapped = false
		var res sql.Result
		var err error
		if version == 0 {
			res, err = tx.Exec(`INSERT INTO meta (key, value, version) VALUES (?, ?, 1) ON CONFLICT (key) DO NOTHING`, key, value)
		} else {
			res, err = tx.Exec(`UPDATE meta SET value = ?, version = version + 1 WHERE key = ? AND version = ?`, value, key, version)
		}
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		swapped = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("writing %q to the store: %w", key, err)
	}
	return swapped, nil
}

// ListMeta implements engine.MetaStore.
func (s *Store) ListMeta(ctx context.Context, prefix string) ([]engine.MetaEntry, error) {
	// A range rather than LIKE: keys may hold % and _.
	rows, err := s.r.QueryContext(ctx, `SELECT key, value, version FROM meta
		WHERE key >= ? AND value IS NOT NULL ORDER BY key`, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing %q in the store: %w", prefix, err)
	}
	defer rows.Close()
	var out []engine.MetaEntry
	for rows.Next() {
		var e engine.MetaEntry
		if err := rows.Scan(&e.Key, &e.Value, &e.Version); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(e.Key, prefix) {
			break
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
