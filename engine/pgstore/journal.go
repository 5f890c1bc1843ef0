package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/memberflow/memberflow/engine"
)

var _ engine.BatchJournal = (*Store)(nil)

// RecordMany implements engine.BatchJournal: the whole batch is one
// statement (recordManySQL), so that the server plans and runs once per
// batch rather than once per write. Each write is conditioned on its own
// lease, so a lost lease refuses only its write. When the statement
// fails, nothing of it is kept and every write is tried again alone, so
// that only the bad one fails.
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
	var b batchCols
	var sent []int
	for i := range writes {
		if errs[i] = b.add(&writes[i]); errs[i] == nil {
			sent = append(sent, i)
		}
	}
	if len(sent) == 0 {
		return errs
	}
	var held []int64
	var notified int
	err := s.pool.QueryRow(ctx, recordManySQL, b.args(s.channel)...).Scan(&held, &notified)
	if err == nil {
		ok := make([]bool, len(sent))
		for _, ord := range held {
			ok[ord-1] = true
		}
		for k, i := range sent {
			if !ok[k] {
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

// recordManySQL is RecordMany in one statement: recordSQL for a batch of
// writes (w), numbered in the order given.
//
// The runs are locked first, in ID order (i, f), so that a take-over and
// this batch are ordered, and two batches that share runs lock them in
// the same order (so do their echoes, upserted in key order). A
// write holds (h) when its run is running under its token and no earlier
// write of the batch ended that run under the same token (ended): after
// an outcome the lease is no longer held, as after a Record. Only the
// writes that hold change anything: their steps (a later write's line of
// an index replacing an earlier one's, as one statement may not upsert a
// row twice), their echoes (the last write of one wins) and their runs'
// outcomes (at most one per run holds). A run given back is told to the
// other runners at the commit (n). The statement answers the numbers of
// the writes that held.
//
// Each run is locked by a scalar subquery, one primary-key lookup per
// run, and updated by a join on its ID with no other condition: as
// `id = ANY($1)`, both read the whole table on a young table without
// statistics (or in a plan cached while it was small), which the planner
// then finds cheaper than as many lookups. As in recordSQL, the status is
// tested through an expression, so that the lookup goes by the primary
// key.
const recordManySQL = `WITH w AS MATERIALIZED (
	SELECT *, min(ord) FILTER (WHERE fin) OVER (PARTITION BY run, token) AS ended
	FROM unnest($1::bigint[], $2::bigint[], $3::bool[], $4::text[], $5::text[], $6::bool[], $7::bytea[], $8::bigint[], $9::text[])
		WITH ORDINALITY AS w(run, token, fin, status, error, condition, cond_values, finished, version, ord)),
i AS MATERIALIZED (
	SELECT DISTINCT run FROM w ORDER BY run),
f AS MATERIALIZED (
	SELECT i.run, (SELECT attempts FROM runs WHERE id = i.run AND (status || '') = 'running' FOR UPDATE) AS attempts FROM i),
h AS MATERIALIZED (
	SELECT w.* FROM w JOIN f ON f.run = w.run AND f.attempts = w.token
	WHERE w.ended IS NULL OR w.ord <= w.ended),
s AS (
	INSERT INTO steps (run, idx, step_id, action, status, input, output, error, attempts, started, finished)
	SELECT DISTINCT ON (h.run, u.idx) h.run, u.idx, u.step_id, u.action, u.status, u.input, u.output, u.error, u.attempts, u.started, u.finished
	FROM unnest($10::int[], $11::int[], $12::text[], $13::text[], $14::text[], $15::bytea[], $16::bytea[], $17::text[], $18::int[], $19::bigint[], $20::bigint[])
		AS u(w, idx, step_id, action, status, input, output, error, attempts, started, finished)
	JOIN h ON h.ord = u.w
	ORDER BY h.run, u.idx, u.w DESC
	` + stepUpsertSQL + `),
x AS (
	INSERT INTO echoes (connector, subject, fingerprint, run, written)
	SELECT DISTINCT ON (u.c, u.sub, u.fp) u.c, u.sub, u.fp, h.run, u.at
	FROM unnest($21::int[], $22::text[], $23::text[], $24::text[], $25::bigint[]) WITH ORDINALITY AS u(w, c, sub, fp, at, k)
	JOIN h ON h.ord = u.w
	ORDER BY u.c, u.sub, u.fp, u.k DESC
	ON CONFLICT (connector, subject, fingerprint) DO UPDATE SET run = excluded.run, written = excluded.written),
r AS (
	UPDATE runs SET status = h.status, error = h.error, condition = h.condition, cond_values = h.cond_values, finished = h.finished,
		owner = NULL, lease_until = NULL, version = coalesce(h.version, runs.version)
	FROM h WHERE runs.id = h.run AND h.fin),
n AS MATERIALIZED (
	SELECT pg_notify($26, '') FROM h WHERE h.fin AND h.status = 'queued' LIMIT 1)
SELECT coalesce((SELECT array_agg(ord) FROM h), '{}'), (SELECT count(*) FROM n)`

// batchCols are recordManySQL's parameters: the writes as columns, and
// their steps and echoes, each naming its write by its number (from 1,
// as WITH ORDINALITY counts).
type batchCols struct {
	runs, tokens []int64
	fins         []bool
	outcomes     []finRow
	stepOf       []int32
	steps        stepCols
	echoOf       []int32
	echoes       echoCols
}

// add appends w, or nothing when it is refused (another run's records).
func (b *batchCols) add(w *engine.JournalWrite) error {
	steps, echoes := len(b.steps.idx), len(b.echoes.conns)
	f, err := addRecord(w.Lease, w.Steps, w.Fin, &b.steps, &b.echoes)
	if err != nil {
		return err
	}
	ord := int32(len(b.runs) + 1)
	for range len(b.steps.idx) - steps {
		b.stepOf = append(b.stepOf, ord)
	}
	for range len(b.echoes.conns) - echoes {
		b.echoOf = append(b.echoOf, ord)
	}
	b.runs, b.tokens, b.fins = append(b.runs, w.Lease.RunID), append(b.tokens, w.Lease.Token), append(b.fins, w.Fin != nil)
	b.outcomes = append(b.outcomes, f)
	return nil
}

// args are recordManySQL's 26 parameters; channel is the one to notify
// of runs given back.
func (b *batchCols) args(channel string) []any {
	n := len(b.outcomes)
	statuses, errs, conds := make([]string, n), make([]*string, n), make([]*bool, n)
	values, finished, versions := make([][]byte, n), make([]*int64, n), make([]*string, n)
	for i, f := range b.outcomes {
		statuses[i], errs[i], conds[i], values[i], finished[i], versions[i] = f.status, f.err, f.cond, f.values, f.finished, f.version
	}
	args := []any{b.runs, b.tokens, b.fins, statuses, errs, conds, values, finished, versions, b.stepOf}
	args = append(args, b.steps.args()...)
	return append(args, b.echoOf, b.echoes.conns, b.echoes.subs, b.echoes.fps, b.echoes.written, channel)
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
