package sqlitestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// BenchmarkAdvancePage advances pages as the file job's poller does: 180
// kept events of a page of 1,000 (the rest skipped), each of its own
// subject and key, claimed with the page with their first intents, while
// the runs of the three pages before are still held (as the workers are
// on them); the runs of older pages are then recorded finished, outside
// the timing.
func BenchmarkAdvancePage(b *testing.B) {
	const page, kept, held = 1000, 180, 3
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "s.db"))
	defer s.Close()
	data := json.RawMessage(`{"id":"m","firstName":"Ada","lastName":"Lovelace","email":"ada@example.org","eligible":true,"score":91,"planId":"gold","eligibilityDate":"2026-01-02"}`)
	var pages [][]engine.JournalWrite
	b.ResetTimer()
	for n := range b.N {
		evs := make([]engine.NewEvent, page)
		for i := range evs {
			id := fmt.Sprint(n*page + i)
			evs[i] = engine.NewEvent{ID: "members.jsonl:" + id, Subject: "member/" + id, OrderingKey: "member/" + id, Connector: "file", Time: time.Now()}
			if i%(page/kept) != 0 {
				evs[i].Skipped = true
				continue
			}
			evs[i].Data = data
			evs[i].Intent = &engine.StepRecord{StepID: "issue", Action: "files.append", Status: engine.StepStarted,
				Input: json.RawMessage(`{"member":"` + id + `"}`), Started: time.Now()}
		}
		cursor := fmt.Sprint(n)
		enq, err := s.Advance(ctx, "r", engine.Advance{Cursor: &cursor, Events: evs,
			Claim: &engine.ClaimRequest{Owner: "w", Now: time.Now(), Lease: time.Minute}})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		var fins []engine.JournalWrite
		for _, q := range enq {
			if q.Run != nil {
				fins = append(fins, engine.JournalWrite{Lease: q.Run.Lease(),
					Fin: &engine.Completion{RunID: q.RunID, Status: engine.RunSucceeded, Finished: time.Now()}})
			}
		}
		pages = append(pages, fins)
		if len(pages) > held {
			if err := errors.Join(s.RecordMany(ctx, pages[0])...); err != nil {
				b.Fatal(err)
			}
			pages = pages[1:]
		}
		b.StartTimer()
	}
}
