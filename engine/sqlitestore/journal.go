package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/memberflow/memberflow/engine"
)

var (
	_ engine.BatchJournal   = (*Store)(nil)
	_ engine.GroupCommitter = (*Store)(nil)
)

// GroupsCommits implements engine.GroupCommitter: the committer writes
// the Records of concurrent callers in one transaction, with the
// multi-row statements of RecordMany (journalTx).
func (s *Store) GroupsCommits() bool { return true }

// stepCols, echoCols and finCols are the parameters of one row of
// upSteps, upEchoes and finRuns.
const (
	stepCols = 11
	echoCols = 7
	finCols  = 7
)

// prepareMulti prepares the multi-row statements of RecordMany on the
// writer.
func (s *Store) prepareMulti(p func(db *sql.DB, q string) *sql.Stmt) {
	for k := 0; k <= maxRowsLog; k++ {
		n := 1 << k
		s.upSteps[k] = p(s.w, `INSERT INTO steps (run, idx, step_id, action, status, input, output, error, attempts, started, finished)
		VALUES `+rowsOf(stepCols, n)+`
		ON CONFLICT (run, idx) DO UPDATE SET status = excluded.status, input = excluded.input, output = excluded.output,
			error = excluded.error, attempts = excluded.attempts, started = excluded.started, finished = excluded.finished`)
		s.upEchoes[k] = p(s.w, `INSERT INTO echoes (connector, subject, fingerprint, run, written, recipe, chain) VALUES `+rowsOf(echoCols, n)+`
		ON CONFLICT (connector, subject, fingerprint) DO UPDATE SET run = excluded.run, written = excluded.written,
			recipe = excluded.recipe, chain = excluded.chain`)
		// column1 … column7: the run, status, error, condition, values,
		// finish time and version (finArgs).
		s.finRuns[k] = p(s.w, `UPDATE runs SET status = v.column2, error = v.column3, condition = v.column4,
			cond_values = v.column5, finished = v.column6, owner = NULL, lease_until = NULL,
			version = coalesce(v.column7, runs.version)
		FROM (VALUES `+rowsOf(finCols, n)+`) AS v WHERE runs.id = v.column1`)
	}
	s.fenceMany = p(s.w, `SELECT id, attempts FROM runs WHERE status = 'running' AND id IN (SELECT value FROM json_each(?))`)
}

// RecordMany implements engine.BatchJournal: the writes' leases are
// checked with one query, then the steps, echoes and outcomes of every
// write whose lease holds are written with multi-row statements, all in
// one transaction of the committer, together with the other journal
// writes it batches. When a statement fails, the transaction is rolled
// back and every write is tried again alone, so that only the bad one
// fails.
func (s *Store) RecordMany(ctx context.Context, writes []engine.JournalWrite) []error {
	if len(writes) == 0 {
		return nil
	}
	return s.journal(ctx, writes)
}

// journal submits writes to the committer as one op and returns the
// outcome of each.
func (s *Store) journal(ctx context.Context, writes []engine.JournalWrite) []error {
	errs := make([]error, len(writes))
	o := &op{journal: writes, errs: errs, done: make(chan error, 1)}
	if len(writes) == 1 {
		w := &writes[0]
		o.fn = func(tx *sql.Tx) error {
			// A refusal (a lost lease, another run's records) writes
			// nothing and is not a failure: the batch commits.
			if errs[0] = checkWrite(w.Lease, w.Steps, w.Fin); errs[0] != nil {
				return nil
			}
			err := s.recordTx(tx, w.Lease, w.Steps, w.Fin)
			if _, lost := err.(*engine.LeaseLostError); lost {
				errs[0] = err
				return nil
			}
			return err
		}
	} else {
		o.fn = func(tx *sql.Tx) error { return s.recordManyTx(tx, writes, errs) }
	}
	err := s.submit(ctx, o)
	switch {
	case err == nil:
		return errs
	case len(writes) == 1:
		errs[0] = err
		return errs
	case err == errClosed || ctx.Err() != nil:
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	s.log.Debug("a batch of journal writes failed; writing each alone", "writes", len(writes), "error", err)
	return s.recordEach(ctx, writes)
}

// recordEach writes each write in its own transaction, the writes of one
// run in order, those of different runs concurrently.
func (s *Store) recordEach(ctx context.Context, writes []engine.JournalWrite) []error {
	errs := make([]error, len(writes))
	byRun := map[int64][]int{}
	var runs []int64
	for i, w := range writes {
		if _, ok := byRun[w.Lease.RunID]; !ok {
			runs = append(runs, w.Lease.RunID)
		}
		byRun[w.Lease.RunID] = append(byRun[w.Lease.RunID], i)
	}
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func(idx []int) {
			defer wg.Done()
			for _, i := range idx {
				w := &writes[i]
				errs[i] = s.recordAlone(ctx, w)
			}
		}(byRun[run])
	}
	wg.Wait()
	return errs
}

// recordAlone writes w in a transaction of its own (a failing write of a
// batch, tried alone).
func (s *Store) recordAlone(ctx context.Context, w *engine.JournalWrite) error {
	return s.write(ctx, func(tx *sql.Tx) error { return s.recordTx(tx, w.Lease, w.Steps, w.Fin) })
}

// recordManyTx writes the writes in tx and sets errs[i] for each write
// refused. It runs again from the start when the committer retries it,
// so it only assigns errs.
func (s *Store) recordManyTx(tx *sql.Tx, writes []engine.JournalWrite, errs []error) error {
	for i, w := range writes {
		errs[i] = checkWrite(w.Lease, w.Steps, w.Fin)
	}
	// The runs page claims hold are written out first; a write that
	// brings such a run's outcome writes it whole, and is done.
	done, err := s.takePaged(tx, writes, errs)
	if err != nil {
		return err
	}
	ids := make([]int64, 0, len(writes))
	for i, w := range writes {
		if errs[i] == nil && !done[i] {
			ids = append(ids, w.Lease.RunID)
		}
	}
	held := make(map[int64]int64, len(writes)) // run → the token that holds it
	rows, err := tx.Stmt(s.fenceMany).Query(idList(ids))
	if err != nil {
		return fmt.Errorf("checking the leases of %d runs: %w", len(writes), err)
	}
	for rows.Next() {
		var id, token int64
		if err := rows.Scan(&id, &token); err != nil {
			rows.Close()
			return fmt.Errorf("checking the leases of %d runs: %w", len(writes), err)
		}
		held[id] = token
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checking the leases of %d runs: %w", len(writes), err)
	}
	var steps, echoes, fins [][]any
	var finOf []int // the writes of fins
	for i, w := range writes {
		if errs[i] != nil || done[i] {
			continue
		}
		if token, ok := held[w.Lease.RunID]; !ok || token != w.Lease.Token {
			errs[i] = &engine.LeaseLostError{RunID: w.Lease.RunID, Token: w.Lease.Token}
			continue
		}
		for j := range w.Steps {
			r := &w.Steps[j]
			steps = append(steps, stepArgs(r))
			for _, e := range r.Wrote {
				echoes = append(echoes, echoArgs(r, e, nil))
			}
		}
		if w.Fin != nil {
			// The run is no longer running: a later write of it in this
			// batch is refused, as it would be after a Record.
			delete(held, w.Lease.RunID)
			fins = append(fins, finArgs(w.Fin))
			finOf = append(finOf, i)
		}
	}
	if err := execRows(tx, &s.upSteps, steps); err != nil {
		return fmt.Errorf("journaling the steps of %d runs: %w", len(writes), err)
	}
	if err := execRows(tx, &s.upEchoes, echoes); err != nil {
		return fmt.Errorf("remembering the writes of %d runs: %w", len(writes), err)
	}
	if s.fault != nil {
		for _, i := range finOf {
			if err := s.fault("fin", writes[i].Fin); err != nil {
				return err
			}
		}
	}
	if err := execRows(tx, &s.finRuns, fins); err != nil {
		return fmt.Errorf("finishing %d runs: %w", len(fins), err)
	}
	return nil
}

// faultAt fails a write at a named point when a test asked for it
// (export_test.go): the proof that a write failing half-way leaves
// nothing of itself behind.
func (s *Store) faultAt(point string, fin *engine.Completion) error {
	if s.fault == nil {
		return nil
	}
	return s.fault(point, fin)
}
