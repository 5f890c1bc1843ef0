package engine

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// record durably writes a run's step records and outcome (Journal.Record)
// and returns after the commit. With a BatchJournal store, the writes of
// concurrent runs share one store call and one transaction.
func (e *Engine) record(ctx context.Context, lease Lease, steps []StepRecord, fin *Completion) error {
	start := time.Now()
	var err error
	if e.journal != nil {
		err = e.journal.record(ctx, JournalWrite{Lease: lease, Steps: steps, Fin: fin})
	} else {
		err = e.store.Record(ctx, lease, steps, fin)
	}
	e.obs.StoreWrite("record", time.Since(start))
	return err
}

// maxJournalBatch bounds the writes of one RecordMany.
const maxJournalBatch = 256

// journalWriter batches journal writes the way a database batches
// commits: a write that finds no batch being written is written at once,
// alone; the writes that arrive while a batch is being written wait and
// go together in the next one. Nothing waits for a timer, so an idle
// runner pays no latency, and a busy one pays one store call (one
// transaction, one round trip) per batch rather than per write.
//
// The caller whose write is first in the queue writes the next batch (its
// own write among them), then hands the turn to the first of those that
// arrived meanwhile: no goroutine of its own, and every caller returns
// once its own write is committed or refused.
type journalWriter struct {
	store BatchJournal

	// depth is how many batches may be written at once.
	depth int

	mu      sync.Mutex
	queue   []*journalCall
	writing int // batches being written
}

// journalCall is one caller's write, waiting in the queue.
type journalCall struct {
	w   JournalWrite
	err error
	// batch is set instead of err when this caller is to write the next
	// batch (its own write first in it).
	batch []*journalCall
	done  chan struct{} // one signal: err is set, or batch
}

// newJournalWriter returns nil when the store has no BatchJournal, or
// batches concurrent Records itself (GroupCommitter).
func newJournalWriter(s RunnerStore) *journalWriter {
	bj, ok := s.(BatchJournal)
	if !ok {
		return nil
	}
	if gc, ok := s.(GroupCommitter); ok && gc.GroupsCommits() {
		return nil
	}
	return &journalWriter{store: bj, depth: journalDepth}
}

// journalDepth is how many batches are written at once: while one
// commits, the next is already on its way, so that the database is never
// left idle waiting for the engine.
const journalDepth = 2

func (j *journalWriter) record(ctx context.Context, w JournalWrite) error {
	c := &journalCall{w: w, done: make(chan struct{}, 1)}
	j.mu.Lock()
	j.queue = append(j.queue, c)
	var batch []*journalCall
	if j.writing < j.depth {
		// Fewer batches than depth are being written only when nobody
		// waits: the queue is this write alone.
		j.writing++
		batch = j.take()
		j.mu.Unlock()
	} else {
		j.mu.Unlock()
		<-c.done
		if c.batch == nil {
			return c.err
		}
		batch = c.batch
	}
	j.write(ctx, batch, c)
	// The writes that came meanwhile are the next batch, which the first
	// of them writes.
	j.mu.Lock()
	if len(j.queue) > 0 {
		next := j.queue[0]
		next.batch = j.take()
		next.done <- struct{}{}
	} else {
		j.writing--
	}
	j.mu.Unlock()
	return c.err
}

// take removes the next batch from the queue. j.mu is held.
func (j *journalWriter) take() []*journalCall {
	n := min(len(j.queue), maxJournalBatch)
	batch := make([]*journalCall, n)
	copy(batch, j.queue)
	j.queue = append(j.queue[:0], j.queue[n:]...)
	return batch
}

// write writes batch with one RecordMany and tells each caller but self
// its outcome.
func (j *journalWriter) write(ctx context.Context, batch []*journalCall, self *journalCall) {
	writes := make([]JournalWrite, len(batch))
	for i, b := range batch {
		writes[i] = b.w
	}
	// A caller that gives up must not undo the others' writes: the batch
	// is written to the end whatever the contexts do.
	errs := j.store.RecordMany(context.WithoutCancel(ctx), writes)
	if len(errs) != len(batch) {
		err := fmt.Errorf("the store answered %d results for %d journal writes", len(errs), len(batch))
		errs = make([]error, len(batch))
		for i := range errs {
			errs[i] = err
		}
	}
	for i, b := range batch {
		b.err = errs[i]
		if b != self {
			b.done <- struct{}{}
		}
	}
}
