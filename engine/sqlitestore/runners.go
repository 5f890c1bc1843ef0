package sqlitestore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// A runner's proof of life is an exclusive lock on a file of its own in
// the folder <store>.runners: the operating system drops it when the
// process dies, however it dies, and a runner that can take the lock of
// another owner knows that owner is gone. Locks are per open file, so two
// runners in one process (tests) see each other too.

// lockDir is where the proof-of-life files of the store's runners live.
func (s *Store) lockDir() string { return s.path + ".runners" }

func (s *Store) lockPath(owner string) string {
	sum := sha256.Sum256([]byte(owner))
	return filepath.Join(s.lockDir(), hex.EncodeToString(sum[:12])+".lock")
}

// Join implements engine.RunQueue.
func (s *Store) Join(ctx context.Context, r engine.RunnerInfo) (int, error) {
	if err := os.MkdirAll(s.lockDir(), 0o755); err != nil {
		return 0, fmt.Errorf("joining as %q: %w", r.Owner, err)
	}
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if _, ok := s.live[r.Owner]; !ok {
		l, held, err := tryLock(s.lockPath(r.Owner))
		if err != nil {
			return 0, fmt.Errorf("joining as %q: %w", r.Owner, err)
		}
		if !held {
			return 0, fmt.Errorf("joining as %q: a live runner already uses this owner name: give each runner its own --owner (or none: the default is unique)", r.Owner)
		}
		if s.live == nil {
			s.live = map[string]*liveLock{}
		}
		s.live[r.Owner] = l
	}
	now := time.Now()
	if r.Started.IsZero() {
		r.Started = now
	}
	var others []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO runners (owner, host, pid, started, seen) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (owner) DO UPDATE SET host = excluded.host, pid = excluded.pid, started = excluded.started, seen = excluded.seen`,
			r.Owner, r.Host, r.PID, r.Started.UnixNano(), now.UnixNano()); err != nil {
			return err
		}
		others = others[:0]
		rows, err := tx.Query(`SELECT owner FROM runners WHERE owner != ?1
			UNION SELECT DISTINCT owner FROM runs WHERE status = 'running' AND owner != ?1
			UNION SELECT owner FROM page_claims WHERE owner != ?1
			UNION SELECT owner FROM poll_leases WHERE owner != ?1`, r.Owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o string
			if err := rows.Scan(&o); err != nil {
				return err
			}
			others = append(others, o)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, fmt.Errorf("joining as %q: %w", r.Owner, err)
	}
	released := 0
	for _, o := range others {
		if !proofOfLife {
			break
		}
		if _, mine := s.live[o]; mine {
			continue
		}
		path := s.lockPath(o)
		if _, err := os.Stat(path); err != nil {
			continue // no proof either way: its leases decide
		}
		l, held, err := tryLock(path)
		if err != nil || !held {
			continue // alive, or unknown
		}
		n, err := s.releaseDead(ctx, o)
		if err == nil {
			os.Remove(path)
		}
		l.unlock()
		if err != nil {
			return released, fmt.Errorf("joining as %q: %w", r.Owner, err)
		}
		if n > 0 {
			s.log.Info("resuming the runs of a runner that died", "owner", o, "runs", n)
		}
		released += n
	}
	return released, nil
}

// releaseDead requeues a dead owner's runs and forgets it.
func (s *Store) releaseDead(ctx context.Context, owner string) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.writeOutClaims(tx, `p.owner = ?`, owner); err != nil {
			return err
		}
		res, err := tx.Exec(`UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL
			WHERE owner = ? AND status = 'running'`, owner)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM poll_leases WHERE owner = ?`, owner); err != nil {
			return err
		}
		_, err = tx.Exec(`DELETE FROM runners WHERE owner = ?`, owner)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("releasing the runs of %q, which died: %w", owner, err)
	}
	return int(n), nil
}

// Leave implements engine.RunQueue.
func (s *Store) Leave(ctx context.Context, owner string) error {
	s.liveMu.Lock()
	l := s.live[owner]
	delete(s.live, owner)
	s.liveMu.Unlock()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM poll_leases WHERE owner = ?`, owner); err != nil {
			return err
		}
		_, err := tx.Exec(`DELETE FROM runners WHERE owner = ?`, owner)
		return err
	})
	if l != nil {
		os.Remove(l.path)
		l.unlock()
	}
	if err != nil {
		return fmt.Errorf("leaving as %q: %w", owner, err)
	}
	return nil
}

func (s *Store) unlockAll() {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	for o, l := range s.live {
		l.unlock()
		delete(s.live, o)
	}
}

// LeadPoll implements engine.TriggerStore.
func (s *Store) LeadPoll(ctx context.Context, recipe, owner string, until time.Time) (bool, error) {
	var lead bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		res, err := tx.Exec(`INSERT INTO poll_leases (recipe, owner, lease_until) VALUES (?1, ?2, ?3)
			ON CONFLICT (recipe) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
			WHERE poll_leases.owner = excluded.owner OR poll_leases.lease_until < ?4`, recipe, owner, until.UnixNano(), now)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		lead = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("leading the poller of recipe %q: %w", recipe, err)
	}
	return lead, nil
}

// Backlog implements engine.RunQueue.
func (s *Store) Backlog(ctx context.Context, recipes []string) (int, error) {
	if len(recipes) == 0 {
		return 0, nil
	}
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM runs INDEXED BY runs_active_key
			WHERE status IN ('queued', 'running') AND recipe IN (SELECT value FROM json_each(?1)))
		+ (SELECT count(*) FROM page_runs WHERE recipe IN (SELECT value FROM json_each(?1)))`, jsonList(recipes)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the backlog: %w", err)
	}
	return n, nil
}

// Runners implements engine.RunnerLister: the runners that joined and
// have not left, with the runs they hold and the triggers they poll.
// A runner that died is listed until another joins.
func (s *Store) Runners(ctx context.Context) ([]engine.RunnerInfo, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT w.owner, w.host, w.pid, w.started, w.seen,
			(SELECT count(*) FROM runs r WHERE r.owner = w.owner AND r.status = 'running')
			+ (SELECT count(*) FROM page_runs p WHERE p.owner = w.owner),
			coalesce((SELECT group_concat(recipe, ',') FROM poll_leases p WHERE p.owner = w.owner AND p.lease_until >= ?), '')
		FROM runners w ORDER BY w.started, w.owner`, time.Now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("listing runners: %w", err)
	}
	defer rows.Close()
	var out []engine.RunnerInfo
	for rows.Next() {
		var ri engine.RunnerInfo
		var started, seen int64
		var polling string
		if err := rows.Scan(&ri.Owner, &ri.Host, &ri.PID, &started, &seen, &ri.Runs, &polling); err != nil {
			return nil, fmt.Errorf("listing runners: %w", err)
		}
		ri.Started, ri.Seen = time.Unix(0, started).UTC(), time.Unix(0, seen).UTC()
		if polling != "" {
			ri.Polling = strings.Split(polling, ",")
		}
		out = append(out, ri)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Gone = s.gone(out[i].Owner)
	}
	return out, nil
}

// gone reports whether owner's proof-of-life lock is free: its process
// ended. The probe holds the lock for an instant only.
func (s *Store) gone(owner string) bool {
	if !proofOfLife {
		return false
	}
	s.liveMu.Lock()
	_, ours := s.live[owner]
	s.liveMu.Unlock()
	if ours {
		return false
	}
	if _, err := os.Stat(s.lockPath(owner)); err != nil {
		return false // no lock file: nothing to tell by
	}
	l, free, err := tryLock(s.lockPath(owner))
	if err != nil || !free {
		return false
	}
	l.unlock()
	return true
}
