package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

func oneActive(int) bool { return true }

func TestRetries(t *testing.T) {
	tests := []struct {
		name        string
		retryable   int
		wantStatus  string
		wantCalls   int
		wantCreates int
	}{
		{"succeeds after two transient failures", 2, engine.RunSucceeded, 3, 1},
		{"gives up after the step's attempts", 10, engine.RunDead, 4, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t, tempDB(t))
			defer store.Close()
			svc := newFakeService(1, oneActive)
			svc.createRetryable = tc.retryable
			runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)}))
			d, err := store.GetRun(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != tc.wantStatus {
				t.Errorf("run is %s (%s), want %s", d.Status, d.Error, tc.wantStatus)
			}
			if got := svc.count("create_cert"); got != tc.wantCalls {
				t.Errorf("create_cert called %d times, want %d", got, tc.wantCalls)
			}
			if svc.creates != tc.wantCreates {
				t.Errorf("%d certificates, want %d", svc.creates, tc.wantCreates)
			}
			if d.Steps[0].Attempts != tc.wantCalls {
				t.Errorf("journaled attempts = %d, want %d", d.Steps[0].Attempts, tc.wantCalls)
			}
		})
	}
}

func TestDeadLetterKeepsContextRedactedAndReplays(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(2, oneActive)
	svc.createPermanent = true
	r := issueRecipe(t)
	// A careless recipe puts a secret in a request: the journal and the
	// dead letter must not keep it.
	r.Vars["course"] = "course-" + certsKey
	e := newEngine(t, store, svc, []*recipes.Recipe{r})
	sum, err := e.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Dead() != 2 {
		t.Fatalf("dead = %d, want 2", sum.Dead())
	}
	if got := svc.count("create_cert"); got != 2 {
		t.Errorf("a permanent error was retried: %d calls for 2 runs", got)
	}
	dead, err := store.ListRuns(context.Background(), engine.RunFilter{Status: engine.RunDead})
	if err != nil || len(dead) != 2 {
		t.Fatalf("dead letters: %v, %v", dead, err)
	}
	d, err := store.GetRun(context.Background(), dead[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.FailedStep != "issue" {
		t.Errorf("failed step = %q, want issue", d.FailedStep)
	}
	wantErr := `recipe "issue": step "issue" (certs.create_cert): fake: HTTP 422 (credential_invalid): recipient`
	if !strings.HasPrefix(d.Error, wantErr) {
		t.Errorf("error = %q, want it to start with %q", d.Error, wantErr)
	}
	st := d.Steps[0]
	if st.Status != engine.StepFailed || !strings.Contains(string(st.Output), `"status":422`) {
		t.Errorf("failed step: status %s, response %s", st.Status, st.Output)
	}
	if !strings.Contains(string(st.Input), `course-[REDACTED]`) {
		t.Errorf("input = %s, want the course with the key redacted", st.Input)
	}
	all := d.Error + string(st.Input) + string(st.Output) + st.Error + string(d.Event)
	if strings.Contains(all, certsKey) {
		t.Errorf("a secret leaked into the dead letter: %s", all)
	}
	if len(d.Steps) != 1 {
		t.Errorf("steps after the failure ran: %+v", d.Steps)
	}

	// Fix the cause, replay one, then the rest.
	svc.mu.Lock()
	svc.createPermanent = false
	svc.mu.Unlock()
	if err := store.Replay(context.Background(), dead[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := store.Replay(context.Background(), dead[0].ID); err == nil {
		t.Error("replaying a queued run twice did not fail")
	}
	e.Close()
	e = newEngine(t, store, svc, []*recipes.Recipe{r})
	runOnce(t, e)
	if got := len(svc.certsFor(strings.TrimPrefix(dead[0].Subject, "member/"))); got != 1 {
		t.Errorf("replayed run: %d certificates", got)
	}
	if n, err := store.ReplayAll(context.Background()); err != nil || n != 1 {
		t.Fatalf("ReplayAll = %d, %v; want 1", n, err)
	}
	e.Close()
	runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}))
	assertExactlyOnce(t, svc)
	assertAllDone(t, store)
}

func TestInDoubtWithoutSettleIsDeadLetteredAndReplayResends(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(1, oneActive)
	svc.createLostReq = 1
	r := issueRecipe(t)
	r.Steps[0].Operation = "create_cert_nosettle"
	sum := runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}))
	if sum.Dead() != 1 {
		t.Fatalf("summary %+v, want the run dead", sum)
	}
	if got := svc.count("create_cert"); got != 1 {
		t.Errorf("an in-doubt write without a look-up was re-sent: %d calls", got)
	}
	d, err := store.GetRun(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Error, "no look-up to settle it") {
		t.Errorf("error = %q, want the reason", d.Error)
	}
	if err := store.Replay(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}))
	assertExactlyOnce(t, svc)
}

func TestSettleFailureKeepsTheStepInDoubt(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(1, oneActive)
	svc.createInDoubt = 1
	svc.settleFail = true
	runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)}))
	d, err := store.GetRun(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != engine.RunDead || d.Steps[0].Status != engine.StepInDoubt {
		t.Fatalf("run %s, step %s; want dead and in_doubt", d.Status, d.Steps[0].Status)
	}
	// Replay settles again (now it works) and finds the write: no second
	// certificate.
	svc.mu.Lock()
	svc.settleFail = false
	svc.mu.Unlock()
	if err := store.Replay(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)}))
	assertExactlyOnce(t, svc)
	if got := svc.count("create_cert"); got != 1 {
		t.Errorf("create_cert called %d times, want 1", got)
	}
}

func TestOnErrorContinue(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(1, oneActive)
	svc.createPermanent = true
	r := issueRecipe(t)
	r.Steps[0].OnError = "continue"
	// The link step sees no certificate and skips itself.
	r.Steps[1].When = mustExpr(t, `steps.issue != nil`)
	sum := runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}))
	if got := recipeSummary(t, sum, "issue"); got.Succeeded != 1 || got.Dead != 0 {
		t.Fatalf("summary %+v", got)
	}
	d, err := store.GetRun(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Steps) != 2 || d.Steps[0].Status != engine.StepFailed || d.Steps[1].Status != engine.StepSkipped {
		t.Errorf("steps = %+v, want issue failed and link skipped", d.Steps)
	}
}

func TestMappingErrorDeadLettersWithBreadcrumb(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(1, oneActive)
	r := issueRecipe(t)
	r.Steps[0].With = mustTemplate(t, map[string]any{"member": "${{ trigger.id + 1 }}"})
	runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}))
	d, err := store.GetRun(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := `recipe "issue": step "issue" (certs.create_cert): with: test.yaml:1:1: evaluating "trigger.id + 1"`
	if d.Status != engine.RunDead || !strings.HasPrefix(d.Error, want) {
		t.Errorf("run %s: %q; want dead with %q", d.Status, d.Error, want)
	}
	if svc.count("create_cert") != 0 {
		t.Error("the action ran with a broken mapping")
	}
}
