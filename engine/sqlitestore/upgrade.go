package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// ErrRunnersLive is engine.ErrRunnersLive: the store is not migrated
// under runners that use it.
var ErrRunnersLive = engine.ErrRunnersLive

// Upgrades. A migration changes what every runner of the store must know:
// a runner of an older memberflow that keeps running on a migrated store
// writes by the old rules (version 8's page claims hold run IDs that an
// older runner, which does not know page_claims, gives to its own runs;
// the claimed runs are then never run). So a store is migrated only when
// no runner is using it: the proof-of-life lock files say which runners
// live (versions 5 and later); without one (older versions, or a system
// without file locks), a runner holding an unexpired lease on a run or a
// trigger counts as alive.

// liveRunners lists the owners of runners that may still be using a store
// of schema version v, read in the migration's transaction on conn;
// byLeases says some were told alive by their leases alone.
func (s *Store) liveRunners(ctx context.Context, conn *sql.Conn, v int) (live []string, byLeases bool, err error) {
	now := time.Now().UnixNano()
	var leased string
	var owners string
	switch {
	case v < 5: // no runners, no poll leases, no lock files
		leased = `SELECT DISTINCT owner FROM runs WHERE status = 'running' AND owner IS NOT NULL AND lease_until > ?1`
	default:
		leased = `SELECT owner FROM runs WHERE status = 'running' AND owner IS NOT NULL AND lease_until > ?1
			UNION SELECT owner FROM poll_leases WHERE lease_until > ?1`
		owners = `SELECT owner FROM runners
			UNION SELECT owner FROM runs WHERE status = 'running' AND owner IS NOT NULL
			UNION SELECT owner FROM poll_leases`
		if v >= 8 {
			leased += ` UNION SELECT owner FROM page_claims WHERE lease_until > ?1`
			owners += ` UNION SELECT owner FROM page_claims`
		}
	}
	withLease, err := ownerSet(ctx, conn, leased, now)
	if err != nil {
		return nil, false, fmt.Errorf("looking for runners holding leases: %w", err)
	}
	if owners == "" || !proofOfLife {
		return sortedKeys(withLease), len(withLease) > 0, nil
	}
	all, err := ownerSet(ctx, conn, owners)
	if err != nil {
		return nil, false, fmt.Errorf("looking for the store's runners: %w", err)
	}
	alive := map[string]bool{}
	for o := range all {
		path := s.lockPath(o)
		if _, err := os.Stat(path); err != nil {
			// No lock file to tell by: its leases do.
			if withLease[o] {
				alive[o] = true
				byLeases = true
			}
			continue
		}
		l, free, err := tryLock(path)
		if err != nil {
			return nil, false, fmt.Errorf("probing the proof of life of runner %q (%s): %w", o, path, err)
		}
		if !free {
			alive[o] = true
			continue
		}
		l.unlock()
	}
	return sortedKeys(alive), byLeases, nil
}

func ownerSet(ctx context.Context, conn *sql.Conn, q string, args ...any) (map[string]bool, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	set := map[string]bool{}
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return nil, err
		}
		set[o] = true
	}
	return set, rows.Err()
}

func sortedKeys(set map[string]bool) []string {
	return slices.Sorted(maps.Keys(set))
}

// runnersInTheWay is the refusal to migrate a store that runners use.
// byLeases says the runners were told by their leases: one that died is
// told from a live one only when its leases end.
func runnersInTheWay(from, to int, owners []string, byLeases bool) error {
	return engine.RunnersInTheWay(from, to, owners, leaseNote(byLeases))
}

func leaseNote(byLeases bool) string {
	if !byLeases {
		return ""
	}
	return "they hold unexpired leases on runs, and a runner that died frees the store when its leases end (a minute by default)"
}
