package memberflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/memberflow"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/recipes"
)

// TestTriggersAreTheEngineCauses keeps the connector and the engine in
// step: one trigger per cause the engine feeds, fed by the engine.
func TestTriggersAreTheEngineCauses(t *testing.T) {
	want := []string{engine.CauseAuthFailing, engine.CauseRateLimited, engine.CauseRecovered, engine.CauseRunFailed, engine.CauseStepRetrying, engine.CauseTriggerFailing}
	var got []string
	for _, tr := range memberflow.Spec().Triggers {
		if !tr.Engine || tr.Poll != nil || tr.Webhook != nil {
			t.Errorf("trigger %s is not fed by the engine alone", tr.Name)
		}
		got = append(got, tr.Name)
	}
	sort.Strings(got)
	if len(got) != len(want) {
		t.Fatalf("triggers %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("triggers %v, want %v", got, want)
		}
	}
}

type svc struct {
	mu       sync.Mutex
	captured []map[string]any
}

func op(name string) connectors.Operation {
	obj := json.RawMessage(`{"type":"object"}`)
	return connectors.Operation{Name: name, Summary: name, Input: obj, Output: obj}
}

// failing is a service whose one record cannot be written, and which
// captures what alert recipes hand it.
func failing(s *svc) *connectors.Spec {
	return &connectors.Spec{Name: "svc", Auth: []connectors.AuthKind{connectors.AuthNone},
		Open: func(connectors.ConnectionConfig) (connectors.Conn, error) { return s, nil },
		Triggers: []*connectors.TriggerSpec{{Operation: op("changed"), DefaultInterval: time.Hour,
			Poll: func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
				return &connectors.PollResult{Cursor: "1", Events: []connectors.Event{{ID: "r1", Subject: "rec/1", Data: map[string]any{"id": "1"}}}}, nil
			}}},
		Actions: []*connectors.ActionSpec{
			{Operation: op("write"), Idempotent: true, Run: func(context.Context, connectors.Conn, map[string]any) (*connectors.Result, error) {
				return nil, &connectors.APIError{Service: "svc", Status: 422, Message: "refused"}
			}},
			{Operation: op("capture"), Idempotent: true, Run: func(_ context.Context, _ connectors.Conn, in map[string]any) (*connectors.Result, error) {
				s.mu.Lock()
				s.captured = append(s.captured, in["event"].(map[string]any))
				s.mu.Unlock()
				return &connectors.Result{}, nil
			}},
		}}
}

func tmpl(t *testing.T, v any) *recipes.Template {
	tp, err := recipes.CompileTemplate(v, recipes.Pos{File: "t.yaml", Line: 1, Column: 1})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// TestRunFailedEventMatchesItsSchema: what the engine feeds an alert
// recipe validates against the trigger's declared output schema, the one
// alert recipes are type-checked against.
func TestRunFailedEventMatchesItsSchema(t *testing.T) {
	s := &svc{}
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "m.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, err := engine.New(engine.Options{Store: store, Owner: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	conns := map[string]engine.Connection{"svc": {Spec: failing(s)}, "ops": {Spec: memberflow.Spec()}}
	work := &recipes.Recipe{File: "w.yaml", Version: 1, Name: "work",
		Trigger: &recipes.Trigger{Connection: "svc", Operation: "changed", Mode: "poll", Start: connectors.StartBeginning},
		Steps:   []*recipes.Step{{ID: "put", Connection: "svc", Operation: "write", With: tmpl(t, map[string]any{})}}}
	alert := &recipes.Recipe{File: "a.yaml", Version: 1, Name: "alert",
		Trigger: &recipes.Trigger{Connection: "ops", Operation: "run_failed", Mode: "engine", With: tmpl(t, map[string]any{"window": "15m"})},
		Steps:   []*recipes.Step{{ID: "tell", Connection: "svc", Operation: "capture", With: tmpl(t, map[string]any{"event": "${{ trigger }}"})}}}
	for _, r := range []*recipes.Recipe{work, alert} {
		if err := e.Add(r, conns); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		if _, err := e.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.captured) != 1 {
		t.Fatalf("%d alerts, want 1", len(s.captured))
	}
	sch, err := connectors.CompileSchema("run_failed", memberflow.Spec().Trigger("run_failed").Output)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(s.captured[0])
	var doc any
	json.Unmarshal(raw, &doc)
	if err := sch.Validate(doc); err != nil {
		t.Errorf("the event %s does not match the schema: %v", raw, err)
	}
	if ev := s.captured[0]; ev["recipe"] != "work" || ev["step"] != "put" || fmt.Sprint(ev["count"]) != "1" {
		t.Errorf("event %s", raw)
	}
}
