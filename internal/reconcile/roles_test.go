package reconcile_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/reconcile"
	"github.com/memberflow/memberflow/recipes"
)

// fakePoll reports the given records, all at once, as a trigger started
// at the beginning does.
func fakePoll(subject, idField string, recs []map[string]any) func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
	return func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
		res := &connectors.PollResult{}
		for _, r := range recs {
			id, _ := r[idField].(string)
			res.Events = append(res.Events, connectors.Event{ID: id, Subject: subject + id, Data: r})
		}
		return res, nil
	}
}

func fakeOp(name string) connectors.Operation {
	return connectors.Operation{Name: name, Summary: name, Input: json.RawMessage(`{"type":"object"}`), Output: json.RawMessage(`{"type":"object"}`)}
}

// TestRulesBindToDeclaredRoles checks a rule against two connectors
// reconcile has never heard of: a guild whose knights should hold a
// badge, and a badge service. Their field names are their own; only the
// declarations say what is a member, a credential, and which operations
// issue one.
func TestRulesBindToDeclaredRoles(t *testing.T) {
	knights := []map[string]any{
		{"handle": "ann", "mail": "ann@example.org", "rank": "knight", "knightedOn": "2020-01-01"},
		{"handle": "bob", "mail": "bob@example.org", "rank": "knight", "knightedOn": "2020-01-01"},
		{"handle": "cid", "mail": "cid@example.org", "rank": "squire"},
	}
	badges := []map[string]any{{"badgeId": "b1", "holder": "bob", "until": ""}}
	open := func(connectors.ConnectionConfig) (connectors.Conn, error) { return nil, nil }
	guild := &connectors.Spec{
		Name: "guild", Auth: []connectors.AuthKind{connectors.AuthNone}, Open: open,
		Triggers: []*connectors.TriggerSpec{
			{Operation: fakeOp("roster"), Poll: fakePoll("knight/", "handle", knights)},
			{Operation: fakeOp("rank_changed"), Poll: fakePoll("knight/", "handle", nil)},
		},
		Records: []*connectors.RecordSpec{{
			Kind: connectors.KindMember, Trigger: "roster",
			Fields: map[string]string{connectors.FieldID: "handle", connectors.FieldEmail: "mail", connectors.FieldStatus: "rank", connectors.FieldEligibleFrom: "knightedOn"},
			States: map[string][]string{connectors.StateEligible: {"knight"}},
		}},
	}
	guild.Triggers[1].Role = &connectors.Role{Kind: connectors.KindMember, Verb: "status_changed",
		Event: func(k map[string]any) map[string]any { return map[string]any{"who": k["handle"], "rank": k["rank"]} }}
	badgeSvc := &connectors.Spec{
		Name: "badges", Auth: []connectors.AuthKind{connectors.AuthNone}, Open: open,
		Triggers: []*connectors.TriggerSpec{{Operation: fakeOp("awarded"), Poll: fakePoll("badge/", "badgeId", badges)}},
		Actions: []*connectors.ActionSpec{{Operation: fakeOp("award"), Idempotent: true,
			Run: func(context.Context, connectors.Conn, map[string]any) (*connectors.Result, error) {
				return &connectors.Result{}, nil
			}}},
		Records: []*connectors.RecordSpec{{
			Kind: connectors.KindCredential, Trigger: "awarded",
			Fields: map[string]string{connectors.FieldID: "badgeId", connectors.FieldMember: "holder", connectors.FieldExpires: "until"},
		}},
	}
	badgeSvc.Actions[0].Role = &connectors.Role{Kind: connectors.KindCredential, Verb: "issue"}
	reg := connectors.NewRegistry()
	reg.MustRegister(guild)
	reg.MustRegister(badgeSvc)

	rc, diags := recipes.LoadBytes("knight-badge.yaml", []byte(`version: 1
name: knight-badge
connections:
  g: { connector: guild, auth: { type: none } }
  b: { connector: badges, auth: { type: none } }
trigger: { uses: g.rank_changed }
when: trigger.rank == "knight"
steps:
  - { uses: b.award, with: { holder: "${{ trigger.who }}" } }
`), recipes.Options{Registry: reg})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r, err := reconcile.New(reconcile.Options{Recipes: []*recipes.Recipe{rc},
		Connections: map[string]map[string]engine.Connection{rc.Name: {"g": {Spec: guild}, "b": {Spec: badgeSvc}}},
		Now:         func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	rep, _, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ru := range rep.Rules {
		if want := ru.ID == "eligible-without-credential"; ru.Checked != want {
			t.Errorf("rule %s checked %v, want %v", ru.ID, ru.Checked, want)
		}
	}
	if len(rep.Findings) != 1 {
		t.Fatalf("findings: %+v", rep.Findings)
	}
	f := rep.Findings[0]
	if f.Rule != "eligible-without-credential" || strings.Join(f.Records, " ") != "knight/ann" || f.Member != "ann" || f.Recipe != "knight-badge" {
		t.Errorf("finding: %+v", f)
	}
	// The fix is the event the guild's trigger would report, built by
	// its declaration.
	if f.Fix == nil || f.Fix.Data["who"] != "ann" || f.Fix.Connector != "guild" {
		t.Errorf("fix: %+v", f.Fix)
	}
}
