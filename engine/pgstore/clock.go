package pgstore

import (
	"context"
	"fmt"
	"time"
)

// Leases are instants compared across runners: a lease one runner takes
// ends at a time another runner reads. Each runner's clock would make
// every runner whose clock is ahead a thief (it sees live leases as
// ended, takes their runs and the triggers' polling while their holders
// still work on them: two writers for one run) and every runner whose
// clock is behind a victim. So the store puts every lease on the
// database's clock: the engine's times count only as offsets from the
// runner's own now (a run claimed "now, for a minute" is leased until
// the database's now plus a minute), and the comparisons that end a
// lease are made against the database's now.
//
// The offset between the runner's clock and the database's is measured
// with one query (the database's clock_timestamp() against the midpoint
// of the round trip), at most every clockCheck; a runner's clock set
// back or forward in between is followed at the next measure.

// clockCheck is how often the offset to the database's clock is
// measured again.
const clockCheck = 5 * time.Second

// dbSkew is how far the database's clock is ahead of the runner's (its
// Options.Now), in nanoseconds.
func (s *Store) dbSkew(ctx context.Context) (int64, error) {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	if !s.skewAt.IsZero() && time.Since(s.skewAt) < clockCheck {
		return s.skew, nil
	}
	t0 := s.now()
	var db int64
	if err := s.pool.QueryRow(ctx, `SELECT (extract(epoch from clock_timestamp()) * 1000000)::bigint`).Scan(&db); err != nil {
		return 0, fmt.Errorf("reading the database's clock: %w", err)
	}
	t1 := s.now()
	mid := t0.Add(t1.Sub(t0) / 2)
	s.skew, s.skewAt = db*1000-mid.UnixNano(), time.Now()
	return s.skew, nil
}

// dbTimes puts the runner's instants ts on the database's clock, in
// Unix nanoseconds.
func (s *Store) dbTimes(ctx context.Context, ts ...time.Time) ([]int64, error) {
	skew, err := s.dbSkew(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t.UnixNano() + skew
	}
	return out, nil
}
