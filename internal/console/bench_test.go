package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	_ "github.com/memberflow/memberflow/connectors/all"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console"
	"github.com/memberflow/memberflow/internal/console/stats"
	"github.com/memberflow/memberflow/internal/reconcile"
)

// fillStore writes n runs of four recipes, spread over the last day,
// each with two journaled steps; one run in fifty is dead, one in five
// skipped.
func fillStore(tb testing.TB, s engine.Store, n int) {
	tb.Helper()
	ctx := context.Background()
	recipes := []string{"sync-members-to-attendees", "issue-certificate-on-eligibility", "payments-to-accelevents", "attendee-qr-codes"}
	start := time.Now().Add(-24 * time.Hour)
	data, _ := json.Marshal(map[string]any{"id": "u", "email": "someone@example.org", "membershipStatus": "active"})
	const batch = 1000
	for i := 0; i < n; i += batch {
		byRecipe := map[string][]engine.NewEvent{}
		for k := i; k < min(i+batch, n); k++ {
			r := recipes[k%len(recipes)]
			byRecipe[r] = append(byRecipe[r], engine.NewEvent{ID: fmt.Sprintf("ev-%d", k), Subject: fmt.Sprintf("user/%d", k%5000),
				Connector: "memberships", Time: start.Add(time.Duration(k) * 24 * time.Hour / time.Duration(n)), Data: data})
		}
		for r, evs := range byRecipe {
			if _, err := s.Advance(ctx, r, engine.Advance{Events: evs}); err != nil {
				tb.Fatal(err)
			}
		}
		claimed, err := s.Claim(ctx, engine.ClaimRequest{Owner: "bench", Recipes: recipes, Limit: batch, Now: time.Now(), Lease: time.Hour})
		if err != nil {
			tb.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(claimed))
		for _, c := range claimed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				status, stepStatus := engine.RunSucceeded, engine.StepSucceeded
				switch {
				case c.ID%50 == 0:
					status, stepStatus = engine.RunDead, engine.StepFailed
				case c.ID%5 == 0:
					status = engine.RunSkipped
				}
				steps := []engine.StepRecord{
					{RunID: c.ID, Index: 0, StepID: "member", Action: "members.get_user", Status: engine.StepSucceeded, Attempts: 1,
						Input: json.RawMessage(`{"userId":"u"}`), Output: data, Started: t0, Finished: t0.Add(3 * time.Millisecond)},
					{RunID: c.ID, Index: 1, StepID: "attendee", Action: "accelevents.upsert_attendee", Status: stepStatus, Attempts: 1,
						Input: json.RawMessage(`{"email":"someone@example.org"}`), Started: t0, Finished: t0.Add(20 * time.Millisecond)},
				}
				fin := &engine.Completion{RunID: c.ID, Status: status, Finished: t0.Add(25 * time.Millisecond)}
				if status == engine.RunDead {
					fin.Error = "step attendee: HTTP 406: sold out"
				}
				if err := s.Record(ctx, c.Lease(), steps, fin); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			tb.Fatal(err)
		}
	}
}

// staticCompliance is a fixed reconciliation of m members.
type staticCompliance struct{ c *console.Compliance }

func (s staticCompliance) Compliance(context.Context, bool) (*console.Compliance, error) {
	return s.c, nil
}

func syntheticCompliance(m int) *console.Compliance {
	// The records are the example connectors' own, read through their
	// declarations as a reconciliation reads them.
	snap := &reconcile.Snapshot{Taken: time.Now(), Kinds: reconcile.Declared(connectors.Default.List()...)}
	rep := &reconcile.Report{Taken: snap.Taken}
	for i := 0; i < m; i++ {
		id := fmt.Sprintf("m%06d", i)
		snap.Members = append(snap.Members, reconcile.Record{Subject: "user/" + id, Data: map[string]any{"id": id, "email": id + "@example.org",
			"firstName": "Member", "lastName": id, "membershipStatus": []string{"active", "eligible", "lapsed", "pending"}[i%4]}})
		snap.Attendees = append(snap.Attendees, reconcile.Record{Subject: fmt.Sprintf("attendee/%d", i), Data: map[string]any{"attendeeId": float64(i), "externalId": id, "status": "BOOKED"}})
		if i%100 == 0 {
			rep.Findings = append(rep.Findings, reconcile.Finding{Rule: "eligible-without-credential", Member: id, Summary: "no credential", Records: []string{"user/" + id}})
		}
	}
	return &console.Compliance{Report: rep, Snapshot: snap}
}

// BenchmarkPages measures each page's answer with 100,000 runs in each
// store (and 10,000 members on the compliance page). The target is
// 200 ms a page; ms-median is the median answer of the last round.
// Postgres is measured with its statistics up to date (see testStores);
// MEMBERFLOW_BENCH_NO_ANALYZE=1 measures it as loaded.
func BenchmarkPages(b *testing.B) {
	for _, st := range testStores {
		b.Run(st.name, func(b *testing.B) {
			s, analyze := st.open(b)
			const runs = 100_000
			t0 := time.Now()
			fillStore(b, s, runs)
			b.Logf("%d runs written in %s", runs, time.Since(t0).Round(time.Millisecond))
			if analyze != nil && os.Getenv("MEMBERFLOW_BENCH_NO_ANALYZE") == "" {
				analyze(b)
			}
			h, err := console.New(console.Options{Store: s, Compliance: staticCompliance{syntheticCompliance(10_000)}, API: console.NewAPICounter(), Logger: hclog.NewNullLogger()})
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			dead, err := s.ListRuns(context.Background(), engine.RunFilter{Status: engine.RunDead, Limit: 1})
			if err != nil || len(dead) == 0 {
				b.Fatalf("no dead run: %v", err)
			}
			newest, err := s.ListRuns(context.Background(), engine.RunFilter{Limit: 1})
			if err != nil || len(newest) == 0 {
				b.Fatalf("no run: %v", err)
			}
			for _, p := range []string{
				"compliance", "compliance?rule=any", "compliance.csv", "activity", "activity?range=24h", "activity?range=7d",
				"runs", "runs?status=dead", "runs?recipe=payments-to-accelevents&status=skipped", fmt.Sprintf("runs?before=%d", newest[0].ID-runs/2),
				"runs?subject=user/42", "runs?subject=user/42&status=dead", "runs?subject=user/42&recipe=attendee-qr-codes",
				fmt.Sprintf("runs/%d", dead[0].ID), fmt.Sprintf("dead/%d", dead[0].ID), "dead",
			} {
				b.Run(p, func(b *testing.B) {
					took := make([]time.Duration, 0, b.N)
					for i := 0; i < b.N; i++ {
						t0 := time.Now()
						res, err := http.Get(srv.URL + "/console/" + p)
						if err != nil {
							b.Fatal(err)
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						took = append(took, time.Since(t0))
						if res.StatusCode != http.StatusOK {
							b.Fatalf("%s: HTTP %d", p, res.StatusCode)
						}
					}
					slices.Sort(took)
					b.ReportMetric(float64(took[len(took)/2])/float64(time.Millisecond), "ms-median")
				})
			}
		})
	}
}

// BenchmarkActivityQueries measures the aggregate queries behind the
// activity page (computed in the background once per refresh period) on
// the same 100,000 runs, all within the last hour, in each store.
func BenchmarkActivityQueries(b *testing.B) {
	for _, st := range testStores {
		b.Run(st.name, func(b *testing.B) {
			s, analyze := st.open(b)
			a, ok := s.(stats.Activity)
			if !ok {
				b.Fatalf("the %s store has no console queries", st.name)
			}
			fillStore(b, s, 100_000)
			if analyze != nil {
				analyze(b)
			}
			ctx := context.Background()
			since := time.Now().Add(-time.Hour)
			b.Run("RunActivity", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := a.RunActivity(ctx, since, time.Minute); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("StepLatency", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := a.StepLatency(ctx, since); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
