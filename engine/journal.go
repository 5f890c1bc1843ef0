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

	mu      sync.Mutex
	queue   []*journalCall
	writing bool // a caller is writing a batch
}

// journalCall is one caller's write, waiting in the queue.
type journalCall struct {
	w    JournalWrite
	err  error
	lead bool          // set instead of err: write the next batch
	done chan struct{} // one signal: err is set, or lead
}

// newJournalWriter returns nil when the store has no BatchJournal.
func newJournalWriter(s RunnerStore) *journalWriter {
	bj, ok := s.(BatchJournal)
	if !ok {
		return nil
	}
	return &journalWriter{store: bj}
}

func (j *journalWriter) record(ctx context.Context, w JournalWrite) error {
	c := &journalCall{w: w, done: make(chan struct{}, 1)}
	j.mu.Lock()
	j.queue = append(j.queue, c)
	if j.writing {
		j.mu.Unlock()
		<-c.done
		if !c.lead {
			return c.err
		}
	} else {
		j.writing = true
		j.mu.Unlock()
	}
	// This caller writes the next batch: its own write is the first
	// queued, so it is in it.
	j.mu.Lock()
	n := min(len(j.queue), maxJournalBatch)
	batch := make([]*journalCall, n)
	copy(batch, j.queue)
	j.queue = append(j.queue[:0], j.queue[n:]...)
	j.mu.Unlock()

	writes := make([]JournalWrite, n)
	for i, b := range batch {
		writes[i] = b.w
	}
	// A caller that gives up must not undo the others' writes: the batch
	// is written to the end whatever the contexts do.
	errs := j.store.RecordMany(context.WithoutCancel(ctx), writes)
	if len(errs) != n {
		err := fmt.Errorf("the store answered %d results for %d journal writes", len(errs), n)
		errs = make([]error, n)
		for i := range errs {
			errs[i] = err
		}
	}
	for i, b := range batch {
		if b == c {
			c.err = errs[i]
			continue
		}
		b.err = errs[i]
		b.done <- struct{}{}
	}

	j.mu.Lock()
	if len(j.queue) > 0 {
		next := j.queue[0]
		next.lead = true
		next.done <- struct{}{}
	} else {
		j.writing = false
	}
	j.mu.Unlock()
	return c.err
}
