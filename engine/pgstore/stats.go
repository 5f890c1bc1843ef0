package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// QueueStats counts queued, running and dead runs and finds the oldest
// queued one, for metrics, through the partial indexes on status.
func (s *Store) QueueStats(ctx context.Context) (engine.QueueStats, error) {
	var st engine.QueueStats
	var oldest *int64
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM runs WHERE status = 'queued'),
		(SELECT created FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1),
		(SELECT count(*) FROM runs WHERE status = 'running'),
		(SELECT count(*) FROM runs WHERE status = 'dead')`).Scan(&st.Queued, &oldest, &st.Running, &st.Dead)
	if err != nil {
		return st, fmt.Errorf("pgstore: queue stats: %w", err)
	}
	if oldest != nil {
		st.OldestQueued = time.Unix(0, *oldest).UTC()
	}
	return st, nil
}

var _ engine.QueueStatser = (*Store)(nil)
