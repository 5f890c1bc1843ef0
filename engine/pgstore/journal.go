package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
)

var _ engine.BatchJournal = (*Store)(nil)

// RecordMany implements engine.BatchJournal: one recordSQL per write,
// sent as one batch, which the server runs as one implicit transaction
// (one round trip, one commit). Each statement is conditioned on its own
// lease, so a lost lease refuses only its write. The writes go in the
// order of their runs (one run's writes in the order given), so that two
// batches lock the runs they share in the same order. When a statement
// fails, the server rolls the whole batch back and every write is tried
// again alone, so that only the bad one fails.
func (s *Store) RecordMany(ctx context.Context, writes []engine.JournalWrite) []error {
	errs := make([]error, len(writes))
	switch len(writes) {
	case 0:
		return errs
	case 1:
		w := &writes[0]
		errs[0] = s.Record(ctx, w.Lease, w.Steps, w.Fin)
		return errs
	}
	order := make([]int, len(writes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return writes[order[a]].Lease.RunID < writes[order[b]].Lease.RunID })
	batch := &pgx.Batch{}
	var sent []int
	giveBack := false
	for _, i := range order {
		w := &writes[i]
		args, err := recordArgs(w.Lease, w.Steps, w.Fin)
		if err != nil {
			errs[i] = err
			continue
		}
		batch.Queue(recordSQL, args...)
		sent = append(sent, i)
		giveBack = giveBack || w.Fin != nil && w.Fin.Status == engine.RunQueued
	}
	if len(sent) == 0 {
		return errs
	}
	if giveBack {
		// A run given back is claimable at once: the other runners are
		// told at the commit.
		batch.Queue(`SELECT pg_notify($1, '')`, s.channel)
	}
	held := make([]int, len(sent))
	br := s.pool.SendBatch(ctx, batch)
	var err error
	for k := range sent {
		if err = br.QueryRow().Scan(&held[k]); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		for k, i := range sent {
			if held[k] == 0 {
				w := &writes[i]
				errs[i] = &engine.LeaseLostError{RunID: w.Lease.RunID, Token: w.Lease.Token}
			}
		}
		return errs
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		for _, i := range sent {
			errs[i] = fmt.Errorf("journaling run %d: %w", writes[i].Lease.RunID, err)
		}
		return errs
	}
	s.log.Debug("a batch of journal writes failed; writing each alone", "writes", len(sent), "error", err)
	s.recordEach(ctx, writes, sent, errs)
	return errs
}

// recordEach writes writes[i] for each i in sent with its own Record,
// the writes of one run in order, those of different runs concurrently.
func (s *Store) recordEach(ctx context.Context, writes []engine.JournalWrite, sent []int, errs []error) {
	byRun := map[int64][]int{}
	var runs []int64
	for _, i := range sent {
		run := writes[i].Lease.RunID
		if _, ok := byRun[run]; !ok {
			runs = append(runs, run)
		}
		byRun[run] = append(byRun[run], i)
	}
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func(idx []int) {
			defer wg.Done()
			for _, i := range idx {
				w := &writes[i]
				errs[i] = s.Record(ctx, w.Lease, w.Steps, w.Fin)
			}
		}(byRun[run])
	}
	wg.Wait()
}
