package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// serve sends one request to s in-process and fails unless it answers
// want.
func serve(t *testing.T, s *Server, method, path string, body any, want int) {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	req.Header.Set("Version", APIVersion)
	req.Header.Set("Authorization", "Bearer "+DemoKey)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, rec.Code, want, rec.Body)
	}
}

// checkBlocks recounts the logs' blocks from scratch and compares them,
// and each record's remembered log position, with what the store kept
// up to date change by change.
func checkBlocks(t *testing.T, st *store, when string) {
	t.Helper()
	check := func(name string, lb *liveBlocks, log []logEntry, records int, counted func(int) bool, changed func(int32) int64) {
		t.Helper()
		want := make([]int32, (len(log)+logBlock-1)/logBlock)
		for i := range log {
			if counted(i) {
				want[i/logBlock]++
			}
		}
		if !slices.Equal(lb.counts, want) {
			t.Fatalf("%s: %s block counts drifted:\n got %v\nwant %v", when, name, lb.counts, want)
		}
		if len(lb.pos) != records {
			t.Fatalf("%s: %s positions for %d records, want %d", when, name, len(lb.pos), records)
		}
		for idx, pos := range lb.pos {
			if e := log[pos]; e.idx != int32(idx) || e.at != changed(int32(idx)) {
				t.Fatalf("%s: %s %d remembered at log position %d, which is %+v", when, name, idx, pos, e)
			}
		}
	}
	check("user", &st.userLive, st.userLog, len(st.users), st.userCounted, func(i int32) int64 { return st.users[i].dateUpdated })
	check("payment", &st.paymentLive, st.paymentLog, len(st.payments), st.paymentCounted, func(i int32) int64 { return st.payments[i].updatedAt })
}

// checkSearches compares the block-counted searches with the walks they
// replace, at cursors across the logs, both orders, and skips that jump
// whole blocks.
func checkSearches(t *testing.T, st *store, rng *rand.Rand, when string) {
	t.Helper()
	cursors := func(log []logEntry) []int64 {
		out := []int64{0, 1, st.last, st.last + 1}
		for range 12 {
			if len(log) > 0 {
				at := log[rng.IntN(len(log))].at
				out = append(out, at, at+1)
			}
		}
		return out
	}
	compare := func(what string, got, want []int32, gotCount, wantCount int) {
		t.Helper()
		if gotCount != wantCount || !slices.Equal(got, want) {
			t.Fatalf("%s: %s: by blocks count %d page %v; by walk count %d page %v", when, what, gotCount, got, wantCount, want)
		}
	}
	for _, after := range cursors(st.userLog) {
		_, total := st.walkUsers(&userFilter{status: -1, updatedAfter: after}, true, false, 0, 1)
		for _, desc := range []bool{false, true} {
			for _, skip := range []int{0, 1, rng.IntN(total + 2), rng.IntN(total + 2), total, total + 1} {
				limit := []int{1, 7, 100}[rng.IntN(3)]
				f := userFilter{status: -1, updatedAfter: after}
				got, gotCount := changedSince(st.userLog, &st.userLive, st.userCounted, after, desc, skip, limit)
				want, wantCount := st.walkUsers(&f, true, desc, skip, limit)
				compare(fmt.Sprintf("users after %d desc %v skip %d limit %d", after, desc, skip, limit), got, want, gotCount, wantCount)
				if got, gotCount := st.searchUsers(&f, true, desc, skip, limit); gotCount != wantCount || !slices.Equal(got, want) {
					t.Fatalf("%s: searchUsers does not answer as the walk", when)
				}
			}
		}
	}
	for _, after := range cursors(st.paymentLog) {
		_, total := st.walkPayments(&paymentFilter{status: -1, user: -1, updatedAfter: after}, true, false, 0, 1)
		for _, desc := range []bool{false, true} {
			for _, skip := range []int{0, 1, rng.IntN(total + 2), total, total + 1} {
				limit := []int{1, 7, 100}[rng.IntN(3)]
				f := paymentFilter{status: -1, user: -1, updatedAfter: after}
				got, gotCount := changedSince(st.paymentLog, &st.paymentLive, st.paymentCounted, after, desc, skip, limit)
				want, wantCount := st.walkPayments(&f, true, desc, skip, limit)
				compare(fmt.Sprintf("payments after %d desc %v skip %d limit %d", after, desc, skip, limit), got, want, gotCount, wantCount)
			}
		}
	}
}

// TestBlockCountsMatchTheWalk seeds random stores, changes them the ways
// the API and the mutations do (updates, deletions, email changes, new
// members and payments, enough updates to compact the logs), and after
// each round checks the block counts against a recount and the counted
// searches against the walks.
func TestBlockCountsMatchTheWalk(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
			s.Seed(sandboxkit.Seed{Members: 1500 + rng.IntN(1000), Seed: int64(seed), Now: anchor})
			st := s.st
			checkBlocks(t, st, "after the seed")
			checkSearches(t, st, rng, "after the seed")
			compacted := [2]bool{}
			for round := range 6 {
				for range 120 + rng.IntN(800) {
					u := st.users[rng.IntN(len(st.users))]
					for u.deleted {
						u = st.users[rng.IntN(len(st.users))]
					}
					switch x := rng.IntN(100); {
					case x < 70:
						serve(t, s, "PUT", "/users/"+u.id.String(), map[string]any{"firstName": fmt.Sprint("F", rng.IntN(1000))}, 200)
					case x < 78:
						serve(t, s, "PUT", "/users/"+u.id.String(), map[string]any{"email": fmt.Sprintf("x%d@example.com", rng.IntN(1e6))}, 200)
					case x < 85:
						serve(t, s, "DELETE", "/users/"+u.id.String(), nil, 200)
					case x < 90:
						serve(t, s, "POST", "/payments", map[string]any{"userId": u.id.String(), "amount": 10, "currency": "USD"}, 201)
					default:
						p := st.payments[rng.IntN(len(st.payments))]
						if p.deleted {
							continue
						}
						if rng.IntN(3) == 0 {
							serve(t, s, "DELETE", "/payments/"+p.id.String(), nil, 200)
						} else {
							serve(t, s, "PUT", "/payments/"+p.id.String(), map[string]any{"status": "refunded"}, 200)
						}
					}
				}
				for _, kind := range mutationKinds {
					if _, err := s.Mutate(sandboxkit.Mutation{Kind: kind, Count: 1 + rng.IntN(30)}); err != nil {
						t.Fatal(err)
					}
				}
				// Many updates of a few records compact the logs.
				if round%2 == 0 {
					for range len(st.users) + 1100 {
						u := st.users[rng.IntN(50)]
						if !u.deleted {
							before := len(st.userLog)
							serve(t, s, "PUT", "/users/"+u.id.String(), map[string]any{"phone": "+1 555-0100"}, 200)
							compacted[0] = compacted[0] || len(st.userLog) < before
						}
					}
				} else {
					for range len(st.payments) + 1100 {
						p := st.payments[rng.IntN(min(len(st.payments), 50))]
						if !p.deleted {
							before := len(st.paymentLog)
							serve(t, s, "PUT", "/payments/"+p.id.String(), map[string]any{"source": "test"}, 200)
							compacted[1] = compacted[1] || len(st.paymentLog) < before
						}
					}
				}
				when := fmt.Sprintf("after round %d", round)
				checkBlocks(t, st, when)
				checkSearches(t, st, rng, when)
			}
			if !compacted[0] || !compacted[1] {
				t.Fatalf("the rounds compacted the user log: %v, the payment log: %v; the test must cover both", compacted[0], compacted[1])
			}
		})
	}
}
