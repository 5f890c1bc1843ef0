package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
)

// Upgrades. A migration changes what every runner of the store must know:
// a runner of an older memberflow that keeps running on a migrated schema
// writes by the old rules, unseen by the new (version 3's runs finished
// by a runner of version 2 carry no recipe version, so that a replay no
// longer runs the version that failed). So a schema is migrated only when
// no runner is using it: a runner lives while its session holds its
// proof-of-life advisory lock, in every version.

// ErrRunnersLive is engine.ErrRunnersLive: the schema is not migrated
// under runners that use it.
var ErrRunnersLive = engine.ErrRunnersLive

// liveRunners lists the owners of the runners whose proof of life is
// held, read in the migration's transaction.
func (s *Store) liveRunners(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT owner FROM runners
		UNION SELECT owner FROM runs WHERE status = 'running' AND owner IS NOT NULL
		UNION SELECT owner FROM poll_leases ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("looking for the store's runners: %w", err)
	}
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("looking for the store's runners: %w", err)
	}
	var live []string
	for _, o := range owners {
		key := lockKey("runner", s.schema, o)
		var free bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&free); err != nil {
			return nil, fmt.Errorf("probing the proof of life of runner %q: %w", o, err)
		}
		if !free {
			live = append(live, o)
			continue
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
			return nil, fmt.Errorf("probing the proof of life of runner %q: %w", o, err)
		}
	}
	return live, nil
}

// runnersInTheWay is the refusal to migrate a schema that runners use.
func runnersInTheWay(from, to int, owners []string) error {
	return engine.RunnersInTheWay(from, to, owners, "")
}
