package engine_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// whoService is the fake service as a connection that says which account
// it reaches: each connection fails its first failures answers, and no
// connection answers before all of them have asked once.
type whoService struct {
	*fakeService
	account  string
	failures int
	asked    *sync.WaitGroup // done at each connection's first ask

	mu    sync.Mutex
	calls int
}

func (w *whoService) Identify(ctx context.Context) (connectors.Identity, error) {
	w.mu.Lock()
	w.calls++
	n := w.calls
	w.mu.Unlock()
	if n == 1 {
		w.asked.Done()
		all := make(chan struct{})
		go func() { w.asked.Wait(); close(all) }()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
			return connectors.Identity{}, errors.New("the other connections were not asked meanwhile: asked one after the other")
		}
	}
	if n <= w.failures {
		return connectors.Identity{}, &connectors.APIError{Service: "fake", Status: 503, Message: "down for maintenance", Retryable: true}
	}
	return connectors.Identity{Account: w.account}, nil
}

// whoConnections are connections() whose connections say which account
// they reach.
func whoConnections(svc *fakeService, account string, failures int) map[string]engine.Connection {
	conns := connections(svc)
	asked := &sync.WaitGroup{}
	asked.Add(len(conns))
	for name, c := range conns {
		who := &whoService{fakeService: svc, account: account + "/" + name, failures: failures, asked: asked}
		spec := *c.Spec
		spec.Open = func(connectors.ConnectionConfig) (connectors.Conn, error) { return who, nil }
		c.Spec = &spec
		conns[name] = c
	}
	return conns
}

// CheckIdentities asks every connection at once, says at each retry why
// the runner has not started, and records what the services answered:
// a later start that reaches another account is refused.
func TestCheckIdentitiesRetriesAloudAndAtOnce(t *testing.T) {
	path := tempDB(t)
	check := func(account string, logs *bytes.Buffer) error {
		store := openStore(t, path)
		defer store.Close()
		e, err := engine.New(engine.Options{Store: store, Owner: "test-runner",
			Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: logs}),
			Retry:  recipes.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if err := e.Add(issueRecipe(t), whoConnections(newFakeService(2, everyOther), account, 2)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return e.CheckIdentities(ctx)
	}

	var logs bytes.Buffer
	if err := check("acct-1", &logs); err != nil {
		t.Fatalf("two failures then an answer, within 3 attempts: %v\n%s", err, logs.String())
	}
	for _, conn := range []string{"members", "certs"} {
		for _, attempt := range []string{"attempt=1 ", "attempt=2 "} {
			found := false
			for _, line := range strings.Split(logs.String(), "\n") {
				found = found || strings.Contains(line, "retrying") && strings.Contains(line, "connection="+conn) && strings.Contains(line, attempt) && strings.Contains(line, "down for maintenance")
			}
			if !found {
				t.Errorf("no warning for %s's %s:\n%s", conn, attempt, logs.String())
			}
		}
	}

	logs.Reset()
	err := check("acct-2", &logs)
	var changed *engine.IdentityError
	if !errors.As(err, &changed) {
		t.Fatalf("another account on the same store: %v, want an *engine.IdentityError", err)
	}
}
