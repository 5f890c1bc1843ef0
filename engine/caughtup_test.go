package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// The fake trigger is a scan: one poll per page of two members, every
// member read again at each pass.
const pageSize = 2

// holdLead takes the recipe's poller lead for the test (a runner busy
// elsewhere) and returns the function that gives it up.
func holdLead(t *testing.T, s engine.Store, recipe string) (release func()) {
	t.Helper()
	ctx := context.Background()
	if ok, err := s.LeadPoll(ctx, recipe, "test-holder", time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("holding the lead: %v, %v", ok, err)
	}
	return func() {
		if _, err := s.LeadPoll(ctx, recipe, "test-holder", time.Now().Add(-time.Second)); err != nil {
			t.Fatalf("giving the lead up: %v", err)
		}
	}
}

// waitJoined waits until n runners have joined the store (each has begun
// its RunOnce).
func waitJoined(t *testing.T, s engine.Store, n int) {
	t.Helper()
	rl, ok := s.(engine.RunnerLister)
	if !ok {
		time.Sleep(300 * time.Millisecond)
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs, err := rl.Runners(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runner(s) joined, want %d", len(rs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startOnce starts RunOnce on each engine; wait returns their summaries.
func startOnce(t *testing.T, engines ...*engine.Engine) (wait func() []*engine.Summary) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	sums := make([]*engine.Summary, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if sums[i], err = e.RunOnce(ctx); err != nil {
				t.Errorf("runner %d: %v", i, err)
			}
		}()
	}
	return func() []*engine.Summary { wg.Wait(); cancel(); return sums }
}

// noMeta hides the store's MetaStore.
type noMeta struct{ engine.Store }

// TestOneShotRunnersPollOnePass: three one-shot runners start on one
// store while the poller's lead is held elsewhere; when it is given up,
// one of them scans the members and the other two, which saw that pass
// begin after they started and end caught up, end without a poll. One
// pass of page requests in all, not one per runner, and each member
// processed once. A store without a MetaStore keeps a pass per runner.
func TestOneShotRunnersPollOnePass(t *testing.T) {
	const members, runners = 40, 3
	for kind, open := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) { testOneShotRunnersPollOnePass(t, open, members, runners, members/pageSize) })
	}
	t.Run("sqlite without MetaStore", func(t *testing.T) {
		path := tempDB(t)
		open := func(t *testing.T) engine.Store {
			s := openStore(t, path)
			t.Cleanup(func() { s.Close() })
			return noMeta{s}
		}
		testOneShotRunnersPollOnePass(t, open, members, runners, runners*members/pageSize)
	})
}

func testOneShotRunnersPollOnePass(t *testing.T, open func(t *testing.T) engine.Store, members, runners, wantPolls int) {
	svc := newFakeService(members, everyOther)
	holder := open(t)
	release := holdLead(t, holder, "issue")
	var engines []*engine.Engine
	for i := range runners {
		engines = append(engines, newEngine(t, open(t), svc, []*recipes.Recipe{issueRecipe(t)},
			func(o *engine.Options) { o.Owner = fmt.Sprintf("runner-%d", i); o.Concurrency = 3 }))
	}
	wait := startOnce(t, engines...)
	waitJoined(t, holder, runners)
	release()
	sums := wait()

	if got := svc.count("poll"); got != wantPolls {
		t.Errorf("%d page requests by %d one-shot runners, want %d", got, runners, wantPolls)
	}
	assertExactlyOnce(t, svc)
	assertAllDone(t, holder)
	if svc.creates != members/2 {
		t.Errorf("%d certificates for %d eligible members", svc.creates, members/2)
	}
	var events, succeeded int64
	for _, s := range sums {
		r := recipeSummary(t, s, "issue")
		events += r.Events
		succeeded += r.Succeeded
	}
	if succeeded != int64(members/2) {
		t.Errorf("%d runs succeeded, want one per eligible member (%d)", succeeded, members/2)
	}
}

// TestOneShotRunnerPollsAfterAPassBegunBeforeIt: a pass that began
// before a one-shot runner started does not spare it its own: a member
// changed on a page that pass had read already is found by the runner's
// pass, after the first one ended caught up.
func TestOneShotRunnerPollsAfterAPassBegunBeforeIt(t *testing.T) {
	const members = 20
	path := tempDB(t)
	svc := newFakeService(members, everyOther)
	reached, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	svc.pollHold = func(cursor string) {
		if cursor == "4" { // the third page: the first two are read
			once.Do(func() { close(reached); <-resume })
		}
	}
	first := newEngine(t, openStore(t, path), svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Owner = "first" })
	waitFirst := startOnce(t, first)
	<-reached
	// m002 (lapsed, on the first page) becomes eligible after the first
	// runner read it, and before the second runner starts.
	svc.mu.Lock()
	svc.members["m002"].Status = "active"
	svc.members["m002"].Version++
	svc.mu.Unlock()
	holder := openStore(t, path)
	defer holder.Close()
	second := newEngine(t, openStore(t, path), svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Owner = "second" })
	waitSecond := startOnce(t, second)
	waitJoined(t, holder, 2)
	close(resume)
	waitFirst()
	sum := waitSecond()[0]

	if got := svc.count("poll"); got != 2*members/pageSize {
		t.Errorf("%d page requests, want two passes (%d)", got, 2*members/pageSize)
	}
	if certs := svc.certsFor("m002"); len(certs) != 1 {
		t.Errorf("m002, eligible after the first pass read it: %d certificates, want 1", len(certs))
	}
	if r := recipeSummary(t, sum, "issue"); r.Events == 0 {
		t.Error("the second runner saw no event: it did not poll")
	}
	assertExactlyOnce(t, svc)
	assertAllDone(t, holder)
}

// TestOneShotRunnerPollsAfterAPassTakenOverMidway: a poller that took the
// lead in the middle of a pass (its leader died) ends that pass caught up
// without having read the pages before its cursor: its pass does not
// count as whole, and the next one-shot runner scans every member.
func TestOneShotRunnerPollsAfterAPassTakenOverMidway(t *testing.T) {
	const members = 20
	path := tempDB(t)
	svc := newFakeService(members, everyOther)
	holder := openStore(t, path)
	defer holder.Close()
	// A leader died after committing the first half of a pass.
	mid := fmt.Sprint(members / 2)
	if _, err := holder.Advance(context.Background(), "issue", engine.Advance{Cursor: &mid}); err != nil {
		t.Fatal(err)
	}
	release := holdLead(t, holder, "issue")
	var engines []*engine.Engine
	for _, owner := range []string{"a", "b"} {
		engines = append(engines, newEngine(t, openStore(t, path), svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Owner = owner }))
	}
	wait := startOnce(t, engines...)
	waitJoined(t, holder, 2)
	release()
	wait()

	if got, want := svc.count("poll"), members/2/pageSize+members/pageSize; got != want {
		t.Errorf("%d page requests, want the rest of the pass and one whole pass (%d)", got, want)
	}
	assertExactlyOnce(t, svc)
	assertAllDone(t, holder)
	if svc.creates != members/2 {
		t.Errorf("%d certificates for %d eligible members", svc.creates, members/2)
	}
}

// TestOneShotRunnerBesideALiveRunner: a runner that runs until stopped
// leads the poller and never gives the lead up; a one-shot runner started
// beside it ends once the live runner's next pass, begun after it, is
// caught up, without a poll of its own.
func TestOneShotRunnerBesideALiveRunner(t *testing.T) {
	path := tempDB(t)
	svc := newFakeService(20, everyOther)
	live := newEngine(t, openStore(t, path), svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Owner = "live" })
	stop := running(t, live)
	deadline := time.Now().Add(10 * time.Second)
	for svc.count("poll") < 10 { // its first pass is under way
		if time.Now().After(deadline) {
			t.Fatal("the live runner did not poll")
		}
		time.Sleep(5 * time.Millisecond)
	}
	once := newEngine(t, openStore(t, path), svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Owner = "once" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sum, err := once.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the one-shot runner waited for the lead until its deadline")
	}
	if r := recipeSummary(t, sum, "issue"); r.Events != 0 {
		t.Errorf("the one-shot runner saw %d events: it polled", r.Events)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, svc)
}
