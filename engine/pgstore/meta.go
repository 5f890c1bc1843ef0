package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
)

var _ engine.MetaStore = (*Store)(nil)

// GetMeta implements engine.MetaStore.
func (s *Store) GetMeta(ctx context.Context, key string) ([]byte, int64, error) {
	var value []byte
	var version int64
	err := s.pool.QueryRow(ctx, `SELECT value, version FROM meta WHERE key = $1`, key).Scan(&value, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading %q from the store: %w", key, err)
	}
	return value, version, nil
}

// SwapMeta implements engine.MetaStore: compare-and-swap on the version,
// so that runners of one database agree on one value.
func (s *Store) SwapMeta(ctx context.Context, key string, version int64, value []byte) (bool, error) {
	var q string
	if version == 0 {
		q = `INSERT INTO meta (key, value, version) VALUES ($1, $2, 1) ON CONFLICT (key) DO NOTHING`
	} else {
		q = `UPDATE meta SET value = $2, version = version + 1 WHERE key = $1 AND version = $3`
	}
	args := []any{key, value}
	if version != 0 {
		args = append(args, version)
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("writing %q to the store: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ListMeta implements engine.MetaStore.
func (s *Store) ListMeta(ctx context.Context, prefix string) ([]engine.MetaEntry, error) {
	// A range rather than LIKE: keys may hold % and _; COLLATE "C" so that
	// the range is by bytes whatever the database's collation.
	rows, err := s.pool.Query(ctx, `SELECT key, value, version FROM meta
		WHERE key COLLATE "C" >= $1 AND value IS NOT NULL ORDER BY key COLLATE "C"`, prefix)
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
