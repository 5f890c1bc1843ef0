package engine_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/recipes"
)

// netFault is a TCP proxy between a store and its Postgres server that
// fails the network on demand: cut closes every connection and refuses new
// ones (the server restarted, connections killed); hang keeps connections
// open and forwards nothing (a network partition: packets vanish, nothing
// is refused); heal ends either.
type netFault struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string // "", "cut" or "hang"
	conns map[net.Conn]bool
	healC chan struct{} // closed by heal: hung copies go on
}

func newNetFault(t *testing.T, target string) *netFault {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &netFault{ln: ln, target: target, conns: map[net.Conn]bool{}, healC: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	go f.serve()
	return f
}

func (f *netFault) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		mode := f.mode
		f.mu.Unlock()
		if mode == "cut" {
			c.Close()
			continue
		}
		go f.pipe(c)
	}
}

func (f *netFault) pipe(c net.Conn) {
	s, err := net.Dial("tcp", f.target)
	if err != nil {
		c.Close()
		return
	}
	f.mu.Lock()
	f.conns[c], f.conns[s] = true, true
	f.mu.Unlock()
	copy := func(dst, src net.Conn) {
		defer dst.Close()
		defer src.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				f.mu.Lock()
				hang, healed := f.mode == "hang", f.healC
				f.mu.Unlock()
				if hang {
					<-healed // the bytes vanish until the network heals
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					return
				}
				return
			}
		}
	}
	go copy(s, c)
	copy(c, s)
}

// cut closes every connection and refuses new ones until heal.
func (f *netFault) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = "cut"
	for c := range f.conns {
		c.Close()
		delete(f.conns, c)
	}
}

// hang holds every byte until heal.
func (f *netFault) hang() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = "hang"
}

func (f *netFault) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = ""
	close(f.healC)
	f.healC = make(chan struct{})
}

// faultyPGStore opens a Postgres store (a fresh schema) reached through a
// netFault.
func faultyPGStore(t *testing.T) (engine.Store, *netFault) {
	t.Helper()
	dsn, schema := pgstore.TestSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	f := newNetFault(t, u.Host)
	u.Host = f.ln.Addr().String()
	s, err := pgstore.Open(context.Background(), u.String(), pgstore.Options{Schema: schema, MaxConns: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.mu.Lock()
		mode := f.mode
		f.mu.Unlock()
		if mode != "" {
			f.heal()
		}
		s.Close()
	})
	return s, f
}

// waitUntil polls cond every 20 ms until it holds or d has passed.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func runStatus(t *testing.T, s engine.Store, id int64) string {
	t.Helper()
	d, err := s.GetRun(context.Background(), id)
	if err != nil {
		return "error: " + err.Error()
	}
	return d.Status
}

// TestARunAbandonedWhenTheStoreFailedIsResumed: the connections to
// Postgres are cut while a run's write is in flight, so that the run's
// outcome cannot be journaled and the run is abandoned; the network comes
// back within a lease. The runner's renewals would keep that run leased to
// it for as long as it lives (it was stuck "running", with every later
// run of its member behind it, until the runner was restarted); it must
// go back to the queue once the store answers and be resumed: one
// certificate, the run succeeded.
func TestARunAbandonedWhenTheStoreFailedIsResumed(t *testing.T) {
	store, net := faultyPGStore(t)
	svc := newFakeService(1, oneActive)
	svc.block = make(chan struct{})
	svc.entered = make(chan string, 1)
	e := newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease = 3 * time.Second })
	stop := running(t, e)
	<-svc.entered // the intent is journaled, the create in flight

	net.cut()
	svc.mu.Lock()
	close(svc.block)
	svc.block, svc.entered = nil, nil
	svc.mu.Unlock()
	// The create lands; its outcome cannot be written.
	if !waitUntil(10*time.Second, func() bool { return e.Summary().Recipes[0].Abandoned > 0 }) {
		t.Fatal("the run was not abandoned while the store was unreachable")
	}
	net.heal()

	runs, err := store.ListRuns(context.Background(), engine.RunFilter{Recipe: "issue"})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v, %v", runs, err)
	}
	id := runs[0].ID
	// A few leases: the run is given back at the first renewal that
	// works, and resumed.
	if !waitUntil(15*time.Second, func() bool { return runStatus(t, store, id) == engine.RunSucceeded }) {
		t.Fatalf("the run abandoned while the store failed is still %s after the store came back: nobody resumes it", runStatus(t, store, id))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, svc)
}

// TestARunnerCutOffFromItsStoreStopsActingWithinALease: the network to
// Postgres stops answering (a partition: nothing is refused, every packet
// is lost) while a run's write is in flight. Another runner may take the
// run once its lease ends, so this runner must stop acting on it within
// the lease, whatever the store's connections do: a renewal that hangs
// must not keep it working (it did, for as long as the socket stayed
// open: minutes). Once the network is back, the run is resumed and
// settled: one certificate.
func TestARunnerCutOffFromItsStoreStopsActingWithinALease(t *testing.T) {
	store, net := faultyPGStore(t)
	svc := newFakeService(1, oneActive)
	svc.block = make(chan struct{}) // the create hangs until cancelled
	svc.entered = make(chan string, 1)
	const lease = 1500 * time.Millisecond
	e := newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease = lease })
	stop := running(t, e)
	<-svc.entered

	net.hang()
	began := time.Now()
	// Dropped at two thirds of a lease without a renewal; allow a loaded
	// machine several leases more.
	if !waitUntil(6*lease, func() bool { return e.Summary().Recipes[0].Abandoned > 0 }) {
		t.Fatalf("the runner still acts on its run %s after the store stopped answering (its lease is %s)", time.Since(began).Round(time.Millisecond), lease)
	}
	net.heal()
	svc.mu.Lock()
	svc.block, svc.entered = nil, nil // the resumed run's create goes through
	svc.mu.Unlock()
	runs, err := store.ListRuns(context.Background(), engine.RunFilter{Recipe: "issue"})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v, %v", runs, err)
	}
	if !waitUntil(20*time.Second, func() bool { return runStatus(t, store, runs[0].ID) == engine.RunSucceeded }) {
		t.Fatalf("the run is %s after the network came back", runStatus(t, store, runs[0].ID))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertNothingEnding(t, e)
	assertExactlyOnce(t, svc)
}
