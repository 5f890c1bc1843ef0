package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// QueueStats counts queued, running and dead runs and finds the oldest
// queued one, for metrics. Queued and dead runs are counted through their
// partial indexes; running ones through the owner index, with the runs
// page claims hold.
func (s *Store) QueueStats(ctx context.Context) (engine.QueueStats, error) {
	var st engine.QueueStats
	var oldest sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM runs WHERE status = 'queued'),
		(SELECT created FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1),
		(SELECT count(*) FROM runs WHERE status = 'running') + (SELECT count(*) FROM page_runs),
		(SELECT count(*) FROM runs WHERE status = 'dead')`).Scan(&st.Queued, &oldest, &st.Running, &st.Dead)
	if err != nil {
		return st, fmt.Errorf("sqlitestore: queue stats: %w", err)
	}
	if oldest.Valid {
		st.OldestQueued = time.Unix(0, oldest.Int64).UTC()
	}
	return st, nil
}

// WriterStats implements engine.WriterStatser: the committer's time in
// transactions, and the writes it committed together.
func (s *Store) WriterStats() engine.WriterStats {
	return engine.WriterStats{Busy: time.Duration(s.busy.Load()), Commits: s.commits.Load(), Writes: s.writes.Load()}
}

var (
	_ engine.QueueStatser  = (*Store)(nil)
	_ engine.WriterStatser = (*Store)(nil)
)
