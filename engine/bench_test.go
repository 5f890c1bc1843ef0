package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/ops"
	"github.com/memberflow/memberflow/recipes"
)

// BenchmarkBackfill measures runs per second through the durable store:
// b.N members, all eligible, each run issuing a certificate (a journaled
// intent, then its result) and writing it back (its result and the run's
// outcome in one transaction), against the in-process fake service.
//
//	go test -run '^$' -bench Backfill -benchtime 20000x ./engine/
//
// The metrics=on variants keep the Prometheus metrics of `run --http`
// (internal/ops): their cost is the difference.
func BenchmarkBackfill(b *testing.B) {
	for _, conc := range []int{8, 32} {
		for _, metrics := range []bool{false, true} {
			name := fmt.Sprintf("concurrency=%d", conc)
			if metrics {
				name += "/metrics=on"
			}
			b.Run(name, func(b *testing.B) { backfill(b, conc, metrics) })
		}
	}
}

func backfill(b *testing.B, conc int, metrics bool) {
	svc := newFakeService(b.N, oneActive)
	store := openStore(b, tempDB(b))
	defer store.Close()
	r := issueRecipe(b)
	r.Trigger.With = mustTemplate(b, map[string]any{"page_size": 500})
	// A loaded recipe has a version, which each run records.
	r.Hash, r.Source = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", []byte("version: 1")
	opts := []engineOpt{concurrency(conc)}
	if metrics {
		opts = append(opts, func(o *engine.Options) { o.Observer = ops.NewMetrics() })
	}
	e := newEngine(b, store, svc, []*recipes.Recipe{r}, opts...)
	b.ResetTimer()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sum, err := e.RunOnce(ctx)
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if s := recipeSummary(b, sum, "issue"); s.Succeeded != int64(b.N) {
		b.Fatalf("summary %+v, want %d succeeded", s, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "runs/s")
	b.ReportMetric(float64(sum.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(sum.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
}

// BenchmarkMappingAndCondition measures the per-event cost of the
// recipe's condition and of both steps' mappings.
//
//	go test -run '^$' -bench Mapping ./engine/
func BenchmarkMappingAndCondition(b *testing.B) {
	r := issueRecipe(b)
	trigger := map[string]any{"id": "m001", "status": "active", "cert": "", "version": 3}
	steps := map[string]any{"issue": map[string]any{"id": "c1"}}
	env := recipes.Env{"trigger": trigger, "steps": steps, "vars": r.Vars}
	b.ReportAllocs()
	for b.Loop() {
		ok, err := r.When.EvalBool(env)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		for _, s := range r.Steps {
			if _, err := s.With.EvalMap(env); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkJournalWrites measures journal writes per second from many
// goroutines at once, each waiting for its commit (group commit).
//
//	go test -run '^$' -bench Journal ./engine/
func BenchmarkJournalWrites(b *testing.B) {
	store := openStore(b, tempDB(b))
	defer store.Close()
	ctx := context.Background()
	evs := make([]engine.NewEvent, 64)
	for i := range evs {
		evs[i] = engine.NewEvent{ID: fmt.Sprint(i), Subject: fmt.Sprint(i), Data: json.RawMessage(`{}`)}
	}
	if _, err := store.Advance(ctx, "r", engine.Advance{Events: evs}); err != nil {
		b.Fatal(err)
	}
	claimed, err := store.Claim(ctx, engine.ClaimRequest{Owner: "bench", Recipes: []string{"r"}, Limit: 64, Now: time.Now(), Lease: time.Hour})
	if err != nil || len(claimed) != 64 {
		b.Fatalf("claimed %d runs of 64: %v", len(claimed), err)
	}
	leases := map[int64]engine.Lease{}
	for _, cr := range claimed {
		leases[cr.ID] = cr.Lease()
	}
	out := json.RawMessage(`{"id":"c123","member":"m001","url":"https://www.credential.net/c123"}`)
	var mu sync.Mutex
	n := 0
	b.SetParallelism(8) // 8 × GOMAXPROCS writers
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			run := claimed[i%64].ID
			rec := engine.StepRecord{RunID: run, Index: i, StepID: "issue", Action: "certs.create_cert",
				Status: engine.StepSucceeded, Output: out, Attempts: 1, Started: start, Finished: start}
			if err := store.Record(ctx, leases[run], []engine.StepRecord{rec}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}

// peakRSS is the process's peak resident memory in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}
