package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

func everyOther(i int) bool { return i%2 == 1 }

func TestRunOnceIssuesExactlyOnceAndSecondRunChangesNothing(t *testing.T) {
	path := tempDB(t)
	svc := newFakeService(9, everyOther) // m001, m003, ... m009 active: 5
	store := openStore(t, path)
	e := newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)})
	sum := recipeSummary(t, runOnce(t, e), "issue")
	if sum.Events != 9 || sum.Succeeded != 5 || sum.Skipped != 4 || sum.Dead != 0 {
		t.Errorf("summary = %+v, want 9 events, 5 succeeded, 4 skipped", sum)
	}
	if got := sum.Writes["certs.create_cert"]; got != 5 {
		t.Errorf("writes of certs.create_cert = %d, want 5", got)
	}
	assertExactlyOnce(t, svc)
	assertAllDone(t, store)
	if svc.creates != 5 || svc.updates != 5 {
		t.Errorf("service effects: %d creates, %d updates; want 5 and 5", svc.creates, svc.updates)
	}
	e.Close()
	store.Close()

	// A second run sees the members it updated: their echoes are
	// suppressed and nothing changes.
	store = openStore(t, path)
	defer store.Close()
	e = newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)})
	sum = recipeSummary(t, runOnce(t, e), "issue")
	if sum.Events != 5 || sum.Suppressed != 5 || sum.Succeeded != 0 {
		t.Errorf("second summary = %+v, want the 5 echoes suppressed", sum)
	}
	if svc.creates != 5 || svc.updates != 5 {
		t.Errorf("second run changed the service: %d creates, %d updates", svc.creates, svc.updates)
	}
	assertAllDone(t, store)
}

func TestAuditRecordsConditionValuesAndSteps(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(2, func(i int) bool { return i == 1 })
	e := newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)})
	runOnce(t, e)
	runs, err := store.ListRuns(context.Background(), engine.RunFilter{Recipe: "issue"})
	if err != nil {
		t.Fatal(err)
	}
	byStatus := map[string]engine.RunInfo{}
	for _, r := range runs {
		byStatus[r.Status] = r
	}
	ok := byStatus[engine.RunSucceeded]
	if _, found := byStatus[engine.RunSkipped]; found {
		t.Errorf("a skipped event has a run: %+v", runs)
	}
	d, err := store.GetRun(context.Background(), ok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Condition == nil || !*d.Condition {
		t.Errorf("condition of a succeeded run = %v, want true", d.Condition)
	}
	if got := string(d.Values); got != `{"trigger.cert":"","trigger.status":"active"}` {
		t.Errorf("condition values = %s", got)
	}
	if len(d.Steps) != 2 || d.Steps[0].StepID != "issue" || d.Steps[0].Status != engine.StepSucceeded ||
		d.Steps[1].StepID != "link" || d.Steps[1].Status != engine.StepSucceeded {
		t.Fatalf("steps = %+v", d.Steps)
	}
	if got := string(d.Steps[0].Input); got != `{"course":"go-101","member":"m001"}` {
		t.Errorf("issue input = %s", got)
	}
	if !strings.Contains(string(d.Steps[1].Input), `"cert":"c1"`) {
		t.Errorf("link input = %s, want the certificate id of step issue", d.Steps[1].Input)
	}
	if d.Steps[0].Finished.Before(d.Steps[0].Started) || d.Steps[0].Started.IsZero() {
		t.Errorf("issue timings: %v .. %v", d.Steps[0].Started, d.Steps[0].Finished)
	}
	// The skipped event is counted on its page, with what the condition read.
	pages, err := store.(engine.SkipLister).ListSkips(context.Background(), engine.RunFilter{Recipe: "issue"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 1 || pages[0].Count != 1 || len(pages[0].Sample) != 1 ||
		string(pages[0].Sample[0].Values) != `{"trigger.cert":"","trigger.status":"lapsed"}` {
		t.Errorf("skip pages: %+v", pages)
	}
}

func TestStepWhenFalseIsJournaledSkipped(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(1, func(int) bool { return true })
	r := issueRecipe(t)
	r.Steps[1].When = mustExpr(t, `steps.issue.id == "never"`)
	e := newEngine(t, store, svc, []*recipes.Recipe{r})
	sum := recipeSummary(t, runOnce(t, e), "issue")
	if sum.Succeeded != 1 {
		t.Fatalf("summary %+v", sum)
	}
	d, err := store.GetRun(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Steps) != 2 || d.Steps[1].Status != engine.StepSkipped {
		t.Errorf("steps = %+v, want link skipped", d.Steps)
	}
	if svc.updates != 0 {
		t.Errorf("the skipped step ran: %d updates", svc.updates)
	}
}

func TestSummaryText(t *testing.T) {
	s := &engine.Summary{Requests: 9, OtherRequests: 2, Recipes: []engine.RecipeSummary{{Recipe: "issue", Events: 3, Succeeded: 2, Skipped: 1,
		Writes: map[string]int64{"certs.create_cert": 2, "members.set_cert": 2}, Requests: 7, RequestsPerEvent: 7.0 / 3}}}
	var b strings.Builder
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "RECIPE  EVENTS  SUCCEEDED  SKIPPED  SUPPRESSED  DEAD  REQUESTS  PER EVENT  WRITES\n" +
		"issue   3       2          1        0           0     7         2.333      certs.create_cert=2 members.set_cert=2\n" +
		"9 API request(s): 7 by the recipes, 2 by the checks at start\n"
	if b.String() != want {
		t.Errorf("summary text:\n%s\nwant:\n%s", b.String(), want)
	}
}

// failingAdvance fails the advance numbered at (from 1) once, applying
// nothing, as a store that refused a transaction.
type failingAdvance struct {
	engine.Store
	mu    sync.Mutex
	n, at int
}

func (f *failingAdvance) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	f.mu.Lock()
	f.n++
	fail := f.n == f.at
	f.mu.Unlock()
	if fail {
		return nil, errors.New("the store refused the transaction")
	}
	return f.Store.Advance(ctx, recipe, adv)
}

// TestAFailedPageCommitLosesNothing: a page whose commit fails while the
// next page is read (and evaluated) ahead: the page read ahead is dropped,
// not committed after it, and the next run polls again from the last
// committed cursor. Every eligible member gets exactly one certificate,
// whichever page failed.
func TestAFailedPageCommitLosesNothing(t *testing.T) {
	for _, at := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprintf("advance %d fails", at), func(t *testing.T) {
			path := tempDB(t)
			svc := newFakeService(12, everyOther) // 6 eligible, 6 pages of 2
			store := &failingAdvance{Store: openStore(t, path), at: at}
			runOnceRefused(t, store, svc, at)
			store.Store.Close()
			resumeIssuesEachOnce(t, path, svc)
		})
	}
}

// runOnceRefused runs the issue recipe once on store, whose advance
// numbered at is refused: the run ends with the store's error.
func runOnceRefused(t *testing.T, store engine.Store, svc *fakeService, at int) {
	t.Helper()
	e := newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)})
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.RunOnce(ctx); err == nil || !strings.Contains(err.Error(), "refused the transaction") {
		t.Fatalf("RunOnce with advance %d failing: %v, want the store's error", at, err)
	}
}

// resumeIssuesEachOnce runs the issue recipe again on the store at path:
// each of svc's 6 eligible members ends with exactly one certificate.
func resumeIssuesEachOnce(t *testing.T, path string, svc *fakeService) {
	t.Helper()
	again := openStore(t, path)
	defer again.Close()
	runOnce(t, newEngine(t, again, svc, []*recipes.Recipe{issueRecipe(t)}))
	assertExactlyOnce(t, svc)
	assertAllDone(t, again)
	if svc.creates != 6 {
		t.Errorf("%d certificates for 6 eligible members", svc.creates)
	}
}

// queuedBehindFailingAdvance fails the advance numbered at (from 1) once
// the page after it has been handed to the store (EncodeAdvance is
// called as a page is queued to commit): that page then waits behind the
// one that fails.
type queuedBehindFailingAdvance struct {
	engine.Store
	at       int
	advances atomic.Int32
	encoded  atomic.Int32
	queued   atomic.Bool // the page after it was queued when it failed
}

func (f *queuedBehindFailingAdvance) EncodeAdvance(recipe string, adv *engine.Advance) error {
	f.encoded.Add(1)
	return f.Store.(engine.AdvanceEncoder).EncodeAdvance(recipe, adv)
}

func (f *queuedBehindFailingAdvance) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	if int(f.advances.Add(1)) != f.at {
		return f.Store.Advance(ctx, recipe, adv)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if int(f.encoded.Load()) > f.at {
			f.queued.Store(true)
			break
		}
	}
	return nil, errors.New("the store refused the transaction")
}

// TestAFailedPageCommitCommitsNoPageQueuedBehindIt: pages commit in
// order, a few queued behind the one committing. When one fails, the
// page queued behind it commits nothing (its cursor would skip the
// failed page's events): the next run polls again from the last
// committed cursor, and every eligible member gets exactly one
// certificate.
func TestAFailedPageCommitCommitsNoPageQueuedBehindIt(t *testing.T) {
	for _, at := range []int{1, 3} {
		t.Run(fmt.Sprintf("advance %d fails", at), func(t *testing.T) {
			path := tempDB(t)
			svc := newFakeService(12, everyOther) // 6 eligible, 6 pages of 2
			store := &queuedBehindFailingAdvance{Store: openStore(t, path), at: at}
			runOnceRefused(t, store, svc, at)
			if !store.queued.Load() {
				t.Fatalf("no page was queued behind advance %d when it failed", at)
			}
			if n := int(store.advances.Load()); n != at {
				t.Errorf("%d advances reached the store, want %d: a page queued behind the failed one was committed", n, at)
			}
			store.Store.Close()
			resumeIssuesEachOnce(t, path, svc)
		})
	}
}

// An order_by that fails on an event (here a field the records lack)
// orders it by its subject: it does not stop the trigger for every
// event, as it did (0 events, every poll failing the same way).
func TestAnOrderByErrorOrdersByTheSubject(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(6, everyOther)
	r := issueRecipe(t)
	r.Trigger.OrderBy = mustExpr(t, `lower(trigger.nickname)`)
	sum := runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}))
	if s := recipeSummary(t, sum, "issue"); s.Succeeded != 3 {
		t.Fatalf("summary %+v, want the 3 eligible members issued", s)
	}
	assertExactlyOnce(t, svc)
}
