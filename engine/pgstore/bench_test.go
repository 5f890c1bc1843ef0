package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
)

// BenchmarkAdvancePage advances pages of 100 new events, each of its own
// key, as a poller does: queued only (advance), then claimed from the
// queue by a Claim of 100 (advance+claim), or claimed with the page
// (Advance.Claim); and claimed with the page with each run's first step an
// intent (advance.claim+intents), which the engine journals itself, in one
// RecordMany, for the runs the store says it did not; and as a poller's
// page (poll): that, with the cursor and each subject's state. The claimed
// runs stay running.
func BenchmarkAdvancePage(b *testing.B) {
	for _, mode := range []string{"advance", "advance+claim", "advance.claim", "advance.claim+intents", "poll"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			dsn, schema := pgstore.TestSchema(b)
			s, err := pgstore.Open(ctx, dsn, pgstore.Options{Schema: schema})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const page = 100
			b.ResetTimer()
			for n := range b.N {
				evs := make([]engine.NewEvent, page)
				for i := range evs {
					id := fmt.Sprint(n, "-", i)
					evs[i] = engine.NewEvent{ID: id, Subject: "member/" + id, OrderingKey: "member/" + id, Connector: "c", Time: time.Now(),
						Data: json.RawMessage(`{"id":"` + id + `"}`)}
					if mode == "advance.claim+intents" || mode == "poll" {
						evs[i].Intent = &engine.StepRecord{StepID: "issue", Action: "certs.create", Status: engine.StepStarted,
							Input: json.RawMessage(`{"member":"` + id + `"}`), Started: time.Now()}
					}
				}
				adv := engine.Advance{Events: evs}
				if mode == "advance.claim" || mode == "advance.claim+intents" || mode == "poll" {
					adv.Claim = &engine.ClaimRequest{Owner: "w", Now: time.Now(), Lease: time.Minute}
				}
				if mode == "poll" {
					cursor := fmt.Sprint(n)
					adv.Cursor = &cursor
					for _, e := range evs {
						adv.States = append(adv.States, engine.SubjectState{Subject: e.Subject, State: "s-" + e.ID})
					}
				}
				enq, err := s.Advance(ctx, "r", adv)
				if err != nil {
					b.Fatal(err)
				}
				var intents []engine.JournalWrite
				for i, q := range enq {
					if q.Run == nil || evs[i].Intent == nil || q.Journaled {
						continue
					}
					line := *evs[i].Intent
					line.RunID = q.RunID
					intents = append(intents, engine.JournalWrite{Lease: q.Run.Lease(), Steps: []engine.StepRecord{line}})
				}
				if len(intents) > 0 {
					if err := errors.Join(s.RecordMany(ctx, intents)...); err != nil {
						b.Fatal(err)
					}
				}
				if mode == "advance+claim" {
					runs, err := s.Claim(ctx, engine.ClaimRequest{Owner: "w", Recipes: []string{"r"}, Limit: page, Now: time.Now(), Lease: time.Minute})
					if err != nil || len(runs) != page {
						b.Fatalf("claimed %d runs, %v; want %d", len(runs), err, page)
					}
				}
			}
		})
	}
}
