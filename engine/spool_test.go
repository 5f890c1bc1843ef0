package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/recipes"
)

// storeOutage is a store whose writes can be made to fail for a while,
// as in production: down starts the outage, up ends it.
type storeOutage struct {
	store    engine.Store
	down, up func()
}

// storeOutages are the outages the spool is tested against: Postgres
// behind a TCP proxy that cuts every connection and refuses new ones (a
// failover), and SQLite whose write lock another process holds (its
// writes fail as on a full disk: the store's reads answer, its commits
// do not).
var storeOutages = map[string]func(t *testing.T) storeOutage{
	"postgres": func(t *testing.T) storeOutage {
		s, net := faultyPGStore(t)
		return storeOutage{store: s, down: net.cut, up: net.heal}
	},
	"sqlite": func(t *testing.T) storeOutage {
		path := tempDB(t)
		s, err := sqlitestore.Open(path, sqlitestore.Options{BusyTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Close() })
		conn, err := other.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return storeOutage{store: s,
			down: func() {
				if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
					t.Fatal(err)
				}
			},
			up: func() {
				if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
					t.Fatal(err)
				}
			}}
	},
}

// sendWithRetries delivers as a webhook sender does: up to attempts
// tries, the pause doubling from gap, until one is answered 2xx. It says
// whether one was.
func sendWithRetries(t *testing.T, url, id string, m map[string]any, attempts int, gap time.Duration) bool {
	for i := 0; i < attempts; i++ {
		if code, _ := deliver(t, url, id, m, ""); code >= 200 && code < 300 {
			return true
		}
		if i < attempts-1 {
			time.Sleep(gap << i)
		}
	}
	return false
}

// settled waits until the store's every run has succeeded and n have
// run: the runner is up (a store outage before it joined would stop
// it), and no run is in flight when the outage begins (one whose
// outcome could not be written is run again later, a different matter).
func settled(t *testing.T, s engine.Store, svc *fakeService, n int) {
	t.Helper()
	if !waitUntil(10*time.Second, func() bool {
		if svc.count("record") < n {
			return false
		}
		runs, err := s.ListRuns(context.Background(), engine.RunFilter{Limit: 1000})
		if err != nil {
			return false
		}
		for _, r := range runs {
			if r.Status != engine.RunSucceeded {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the runner did not settle %d runs", n)
	}
}

// warmUp delivers one delivery and waits for its run: the runner is up.
func warmUp(t *testing.T, url string, s engine.Store, svc *fakeService) {
	t.Helper()
	if code, out := deliver(t, url, "warm-up", map[string]any{"id": "warm", "seq": 1}, ""); code != 200 {
		t.Fatalf("warm-up delivery: %d %v", code, out)
	}
	settled(t, s, svc, 1)
}

func withSpool(sp *engine.Spool) engineOpt { return func(o *engine.Options) { o.Spool = sp } }

func openSpool(t *testing.T, dir string) *engine.Spool {
	t.Helper()
	sp, err := engine.OpenSpool(dir, engine.SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "spool-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runsOf is what the fake service's record action ran, by member.
func runsOf(svc *fakeService) map[string][]int {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	out := map[string][]int{}
	for id, seqs := range svc.log {
		out[id] = append([]int(nil), seqs...)
	}
	return out
}

// TestSpoolKeepsDeliveriesThroughAStoreOutage: the store refuses writes
// for longer than the senders retry (each tries 5 times over about
// 300 ms; the store is down until every one of them has answered or
// given up), with deliveries before, during and after the outage. With a
// spool, every delivery is acknowledged and runs exactly once, a
// member's deliveries run in the order they were sent, the runner stays
// ready (it takes deliveries), and the spool is empty at the end.
// Without one (as before the spool), the deliveries whose sender gave up
// are lost: that is the case the spool is for.
func TestSpoolKeepsDeliveriesThroughAStoreOutage(t *testing.T) {
	for kind, outage := range storeOutages {
		for _, spooled := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/spool=%v", kind, spooled), func(t *testing.T) {
				o := outage(t)
				svc := newFakeService(0, oneActive)
				dir := filepath.Join(t.TempDir(), "spool")
				var opts []engineOpt
				if spooled {
					opts = append(opts, withSpool(openSpool(t, dir)))
				}
				e := newEngine(t, o.store, svc, []*recipes.Recipe{recordRecipe(t)}, opts...)
				srv := httptest.NewServer(e.WebhookHandler())
				defer srv.Close()
				url := srv.URL + "/hooks/members"
				stop := running(t, e)

				var acked, sent atomic.Int32
				send := func(id, member string, seq int) {
					sent.Add(1)
					if sendWithRetries(t, url, id, map[string]any{"id": member, "seq": seq}, 5, 20*time.Millisecond) {
						acked.Add(1)
					}
				}
				for i := range 5 {
					send(fmt.Sprintf("before-%d", i), fmt.Sprintf("b%d", i), 1)
				}
				settled(t, o.store, svc, 5)
				o.down()
				var wg sync.WaitGroup
				for i := range 20 {
					wg.Add(1)
					go func() { defer wg.Done(); send(fmt.Sprintf("during-%d", i), fmt.Sprintf("d%d", i), 1) }()
				}
				send("order-1", "ordered", 1)
				wg.Wait()
				if spooled && !ready(e) {
					t.Errorf("not ready while the spool takes the deliveries: %+v", e.Checks(context.Background()))
				}
				o.up()
				// The member's second delivery, sent after its first was
				// acknowledged, runs after it.
				send("order-2", "ordered", 2)
				for i := range 5 {
					send(fmt.Sprintf("after-%d", i), fmt.Sprintf("a%d", i), 1)
				}
				if !waitUntil(30*time.Second, func() bool { return svc.count("record") >= int(acked.Load()) }) {
					st, _ := e.SpoolStats()
					all, _ := o.store.ListRuns(context.Background(), engine.RunFilter{Limit: 1000})
					for _, r := range all {
						if r.Status != engine.RunSucceeded {
							t.Logf("run %d %s %s: %s", r.ID, r.EventID, r.Status, r.Error)
						}
					}
					t.Fatalf("%d runs of %d acknowledged deliveries after the store came back (%d runs in the store; spool %+v; ran %v)", svc.count("record"), acked.Load(), len(all), st, runsOf(svc))
				}
				time.Sleep(100 * time.Millisecond) // a run too many would show now
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				runs := runsOf(svc)
				total := 0
				for member, seqs := range runs {
					total += len(seqs)
					if member != "ordered" && len(seqs) != 1 {
						t.Errorf("member %s ran %d times: %v", member, len(seqs), seqs)
					}
				}
				if int32(total) != acked.Load() {
					t.Errorf("%d runs for %d acknowledged deliveries", total, acked.Load())
				}
				lost := sent.Load() - acked.Load()
				if !spooled {
					// The loss the spool prevents (docs/runner.md).
					if lost == 0 {
						t.Errorf("without a spool no delivery was lost: the outage did not outlast the senders' retries")
					}
					t.Logf("without a spool: %d of %d deliveries lost", lost, sent.Load())
					return
				}
				if lost != 0 {
					t.Errorf("%d of %d deliveries were never acknowledged with a spool", lost, sent.Load())
				}
				if got := runs["ordered"]; len(got) != 2 || got[0] != 1 || got[1] != 2 {
					t.Errorf("member ordered ran %v, want [1 2]", got)
				}
				st, _ := e.SpoolStats()
				if st.Deliveries != 0 || len(spoolFiles(t, dir)) != 0 {
					t.Errorf("the spool still holds %d deliveries in %v", st.Deliveries, spoolFiles(t, dir))
				}
			})
		}
	}
}

// TestSpoolReplaysAfterACrash: a runner is killed at each point of the
// spool's life — before an append, mid-append (a torn record), after the
// write before the fsync, after the fsync before the answer, and during
// a replay after the store committed a file's deliveries but before the
// file was removed — with deliveries spooled because the store was down.
// A runner started on the same spool directory replays it first: every
// acknowledged delivery runs exactly once; the one the crash cut off was
// never acknowledged, and its sender's retry runs it once.
func TestSpoolReplaysAfterACrash(t *testing.T) {
	for _, point := range []string{"before-write", "torn-write", "before-sync", "after-sync", "before-remove"} {
		t.Run(point, func(t *testing.T) {
			o := storeOutages["sqlite"](t)
			svc := newFakeService(0, oneActive)
			dir := filepath.Join(t.TempDir(), "spool")
			sp, err := engine.OpenSpool(dir, engine.SpoolOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var appends atomic.Int32
			armed := point != "before-remove"
			sp.SetCrashPoint(func(p string) bool {
				if p == "before-write" {
					appends.Add(1)
				}
				// The third append dies (or, for a replay point, the first
				// removal).
				return p == point && (!armed || appends.Load() == 3)
			})
			e := newEngine(t, o.store, svc, []*recipes.Recipe{recordRecipe(t)}, withSpool(sp))
			srv := httptest.NewServer(e.WebhookHandler())
			url := srv.URL + "/hooks/members"
			stop := running(t, e)
			warmUp(t, url, o.store, svc)
			o.down()
			acked := map[string]bool{}
			for i := range 3 {
				id := fmt.Sprintf("d%d", i)
				code, out := deliver(t, url, id, map[string]any{"id": fmt.Sprintf("m%d", i), "seq": 1}, "")
				acked[id] = code == 200
				t.Logf("%s: %d %v", id, code, out)
			}
			if armed && (!acked["d0"] || !acked["d1"] || acked["d2"]) {
				t.Fatalf("answers %v: want d0 and d1 acknowledged, d2 (cut by the crash) not", acked)
			}
			if !armed && len(acked) != 3 {
				t.Fatalf("answers %v", acked)
			}
			if !armed {
				// The store comes back; the replay commits and dies before it
				// removes the file.
				o.up()
				if !waitUntil(10*time.Second, func() bool { return sp.Dead() }) {
					t.Fatal("the replay did not reach its crash point")
				}
			}
			// The process is gone: nothing of it goes on.
			srv.Close()
			stop()
			e.Close()
			sp.Close()
			if armed {
				o.up()
			}
			if len(spoolFiles(t, dir)) == 0 {
				t.Fatal("the crashed runner left no spool file")
			}

			// A new runner on the same store and spool.
			sp2 := openSpool(t, dir)
			e2 := newEngine(t, o.store, svc, []*recipes.Recipe{recordRecipe(t)}, withSpool(sp2))
			srv2 := httptest.NewServer(e2.WebhookHandler())
			defer srv2.Close()
			stop2 := running(t, e2)
			want := 0
			for id, ok := range acked {
				if ok {
					want++
					continue
				}
				// The sender tries again what was not acknowledged.
				if !sendWithRetries(t, srv2.URL+"/hooks/members", id, map[string]any{"id": "m" + id[1:], "seq": 1}, 5, 20*time.Millisecond) {
					t.Fatalf("%s was refused after the restart", id)
				}
				want++
			}
			want++ // the warm-up
			if !waitUntil(10*time.Second, func() bool { return svc.count("record") >= want }) {
				t.Fatalf("%d runs after the restart, want %d", svc.count("record"), want)
			}
			time.Sleep(100 * time.Millisecond)
			if err := stop2(); err != nil {
				t.Fatal(err)
			}
			for member, seqs := range runsOf(svc) {
				if len(seqs) != 1 {
					t.Errorf("member %s ran %d times", member, len(seqs))
				}
			}
			if n := svc.count("record"); n != 4 {
				t.Errorf("%d runs, want 4 (the warm-up and 3)", n)
			}
			if files := spoolFiles(t, dir); len(files) != 0 {
				t.Errorf("spool files left after the replay: %v", files)
			}
		})
	}
}

// TestSpoolRefusesWhenFull: a spool at its size limit refuses the next
// delivery with 503 and a clear error, and readiness names it; once the
// store takes the spooled deliveries, it accepts again.
func TestSpoolRefusesWhenFull(t *testing.T) {
	o := storeOutages["sqlite"](t)
	svc := newFakeService(0, oneActive)
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := engine.OpenSpool(dir, engine.SpoolOptions{MaxBytes: 600})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	e := newEngine(t, o.store, svc, []*recipes.Recipe{recordRecipe(t)}, withSpool(sp))
	srv := httptest.NewServer(e.WebhookHandler())
	defer srv.Close()
	url := srv.URL + "/hooks/members"
	stop := running(t, e)
	warmUp(t, url, o.store, svc)
	o.down()
	codes := []int{}
	for i := range 6 {
		code, out := deliver(t, url, fmt.Sprintf("d%d", i), map[string]any{"id": fmt.Sprintf("m%d", i), "seq": 1}, "")
		codes = append(codes, code)
		if code == 503 && !strings.Contains(fmt.Sprint(out["error"]), "spool is full") {
			t.Errorf("refusal says %v", out)
		}
	}
	if codes[0] != 200 || codes[len(codes)-1] != 503 {
		t.Fatalf("answers %v: want the first spooled and the last refused", codes)
	}
	var spoolCheck engine.Check
	for _, c := range e.Checks(context.Background()) {
		if c.Name == "spool" {
			spoolCheck = c
		}
	}
	if spoolCheck.OK || !strings.Contains(spoolCheck.Error, "--spool-max-bytes") || !strings.Contains(spoolCheck.Error, dir) {
		t.Errorf("spool check when full: %+v", spoolCheck)
	}
	if ready(e) {
		t.Error("ready with a full spool and a failing store")
	}
	o.up()
	if !waitUntil(10*time.Second, func() bool { st, _ := e.SpoolStats(); return st.Deliveries == 0 && st.Full == nil }) {
		st, _ := e.SpoolStats()
		t.Fatalf("the spool was not emptied: %+v", st)
	}
	if code, out := deliver(t, url, "d-after", map[string]any{"id": "m-after", "seq": 1}, ""); code != 200 {
		t.Errorf("after the store came back: %d %v", code, out)
	}
	accepted := 0
	for _, c := range codes {
		if c == 200 {
			accepted++
		}
	}
	if !waitUntil(10*time.Second, func() bool { return svc.count("record") == accepted+2 }) {
		t.Errorf("%d runs, want %d", svc.count("record"), accepted+2)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestSpoolRefusesUnloadedRecipes: a runner started with deliveries
// spooled for a recipe it does not load refuses to start, naming it and
// the spool, rather than leaving them there for good; and one spool
// directory serves one runner at a time.
func TestSpoolRefusesUnloadedRecipes(t *testing.T) {
	o := storeOutages["sqlite"](t)
	svc := newFakeService(0, oneActive)
	dir := filepath.Join(t.TempDir(), "spool")
	sp := openSpool(t, dir)
	if _, err := engine.OpenSpool(dir, engine.SpoolOptions{}); err == nil || !strings.Contains(err.Error(), "another runner uses it") {
		t.Errorf("a second open of a spool in use: %v", err)
	}
	e := newEngine(t, o.store, svc, []*recipes.Recipe{recordRecipe(t)}, withSpool(sp))
	srv := httptest.NewServer(e.WebhookHandler())
	stop := running(t, e)
	warmUp(t, srv.URL+"/hooks/members", o.store, svc)
	o.down()
	if code, _ := deliver(t, srv.URL+"/hooks/members", "d1", map[string]any{"id": "m1", "seq": 1}, ""); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	srv.Close()
	stop()
	e.Close()
	sp.Close()
	o.up()

	sp2 := openSpool(t, dir)
	e2 := newEngine(t, o.store, svc, []*recipes.Recipe{issueRecipe(t)}, withSpool(sp2))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e2.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), `"record" (1)`) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a runner without the spooled deliveries' recipe: %v", err)
	}
	if _, err := e2.RunOnce(ctx); err == nil {
		t.Fatal("RunOnce started with deliveries of an unloaded recipe in the spool")
	}
}

// priorConnections are connections(svc) whose webhook parser reads the
// remembered state of the delivery's subject, as the Memberships status
// trigger does: parsing needs the store.
func priorConnections(svc *fakeService) map[string]engine.Connection {
	conns := connections(svc)
	spec := *conns["members"].Spec
	trig := *spec.Triggers[0]
	hook := *trig.Webhook
	hook.Parse = func(ctx context.Context, c connectors.Conn, body []byte, req connectors.WebhookRequest) ([]connectors.Event, error) {
		if _, err := req.Prior.Lookup(ctx, []string{"member/any"}); err != nil {
			return nil, fmt.Errorf("fake webhook: reading remembered states: %w", err)
		}
		return parse(ctx, c, body, req)
	}
	trig.Webhook = &hook
	spec.Triggers = []*connectors.TriggerSpec{&trig}
	for name, c := range conns {
		c.Spec = &spec
		conns[name] = c
	}
	return conns
}

// TestSpoolKeepsADeliveryWhoseParsingNeedsTheStore: a trigger that reads
// remembered states to parse a delivery cannot parse it while Postgres is
// down. That is the store's failure, not the delivery's: without a spool
// it is answered 503 (it was 400, which tells the sender not to try
// again); with one, its verified body is spooled and answered 200, and
// parsed and run once when the store is back.
func TestSpoolKeepsADeliveryWhoseParsingNeedsTheStore(t *testing.T) {
	for _, spooled := range []bool{false, true} {
		t.Run(fmt.Sprintf("spool=%v", spooled), func(t *testing.T) {
			o := storeOutages["postgres"](t)
			svc := newFakeService(0, oneActive)
			opts := engine.Options{Store: o.store, Concurrency: 4, Owner: "test-runner",
				Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Off}), Grace: 5 * time.Second}
			if spooled {
				opts.Spool = openSpool(t, filepath.Join(t.TempDir(), "spool"))
			}
			e, err := engine.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if err := e.Add(recordRecipe(t), priorConnections(svc)); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(e.WebhookHandler())
			defer srv.Close()
			url := srv.URL + "/hooks/members"
			stop := running(t, e)
			warmUp(t, url, o.store, svc)
			o.down()
			code, out := deliver(t, url, "d1", map[string]any{"id": "m1", "seq": 1}, "")
			want := 503
			if spooled {
				want = 200
			}
			if code != want {
				t.Fatalf("a delivery parsed while the store is down: %d %v, want %d", code, out, want)
			}
			o.up()
			if !spooled {
				if !sendWithRetries(t, url, "d1", map[string]any{"id": "m1", "seq": 1}, 20, 20*time.Millisecond) {
					t.Fatal("the delivery was refused after the store came back")
				}
			}
			if !waitUntil(10*time.Second, func() bool { return svc.count("record") == 2 }) {
				t.Fatalf("%d runs, want 2 (the warm-up and d1)", svc.count("record"))
			}
			time.Sleep(100 * time.Millisecond)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if n := svc.count("record"); n != 2 {
				t.Errorf("%d runs, want 2", n)
			}
		})
	}
}
