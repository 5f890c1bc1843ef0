package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// The -update flag may be declared by another test of this package too.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files")
	}
}

func updating() bool { return flag.Lookup("update").Value.String() == "true" }

func catalogueRegistry(t *testing.T) *connectors.Registry {
	t.Helper()
	echo := func(_ context.Context, _ connectors.Conn, in map[string]any) (*connectors.Result, error) {
		return &connectors.Result{Output: in}, nil
	}
	open := func(connectors.ConnectionConfig) (connectors.Conn, error) { return struct{}{}, nil }
	obj := func(s string) json.RawMessage { return json.RawMessage(s) }
	reg := connectors.NewRegistry()
	reg.MustRegister(&connectors.Spec{
		Name: "certs", Title: "Certs", Summary: "Certificates for tests.", Auth: []connectors.AuthKind{connectors.AuthAPIKey},
		BaseURL: "https://certs.example.test", RateLimit: connectors.RateLimit{Requests: 2000, Per: 5 * time.Minute},
		Options: obj(`{"type":"object","properties":{"region":{"type":"string"},"departmentId":{"type":"integer"}},"required":["region"]}`),
		Open:    open,
		Triggers: []*connectors.TriggerSpec{{
			Operation: connectors.Operation{Name: "credential_created", Summary: "A credential was issued.", Input: obj(`{"type":"object"}`), Output: obj(`{"type":"object","properties":{"id":{"type":"integer"}}}`)},
			Poll: func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
				return &connectors.PollResult{}, nil
			},
		}},
		Actions: []*connectors.ActionSpec{
			{Operation: connectors.Operation{Name: "create_credential", Summary: "Issue a credential.", Description: "Answers 200, not 201.",
				Input:   obj(`{"type":"object","required":["group_id"],"properties":{"group_id":{"type":"integer","description":"The group."}}}`),
				Output:  obj(`{"type":"object","properties":{"id":{"type":"integer"}}}`),
				Example: map[string]any{"group_id": 7, "recipient": map[string]any{"email": "ada@example.org"}},
				HTTP:    &connectors.HTTPBinding{Method: "POST", Path: "/v1/credentials"}},
				Run: echo, Settle: func(context.Context, connectors.Conn, map[string]any) (*connectors.Result, bool, error) {
					return nil, false, nil
				}},
			{Operation: connectors.Operation{Name: "get_credential", Summary: "Get a credential.", Input: obj(`{"type":"object"}`), Output: obj(`{"type":"object"}`),
				HTTP: &connectors.HTTPBinding{Method: "GET", Path: "/v1/credentials/{id}"}}, ReadOnly: true, Idempotent: true, Run: echo},
		},
	})
	reg.MustRegister(&connectors.Spec{
		Name: "hooks", Summary: "Webhooks only.", Open: open,
		Triggers: []*connectors.TriggerSpec{{
			Operation: connectors.Operation{Name: "order_paid", Summary: "An order was paid.", Input: obj(`{"type":"object"}`), Output: obj(`{"type":"object"}`)},
			Poll: func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
				return &connectors.PollResult{}, nil
			},
			Webhook: &connectors.WebhookSpec{},
		}},
	})
	return reg
}

func TestConnectorsCommand(t *testing.T) {
	tests := []struct {
		name   string
		format string
		args   []string
		code   int
		stderr string
	}{
		{"list_text", "text", nil, exitOK, ""},
		{"list_json", "json", nil, exitOK, ""},
		{"connector_text", "text", []string{"certs"}, exitOK, ""},
		{"connector_json", "json", []string{"certs"}, exitOK, ""},
		{"operation_text", "text", []string{"certs", "create_credential"}, exitOK, ""},
		{"operation_json", "json", []string{"certs", "create_credential"}, exitOK, ""},
		{"trigger_text", "text", []string{"hooks", "order_paid"}, exitOK, ""},
		{"unknown_connector", "text", []string{"cert"}, exitUsage, `unknown connector "cert"; did you mean "certs"?; connectors: certs, hooks`},
		{"unknown_operation", "text", []string{"certs", "create_credentail"}, exitUsage, `connector "certs" has no operation "create_credentail"; did you mean "create_credential"?`},
		{"too_many_args", "text", []string{"certs", "a", "b"}, exitUsage, `too many arguments`},
		{"bad_format", "yaml", nil, exitUsage, `--format must be text or json, got "yaml"`},
	}
	reg := catalogueRegistry(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runConnectors(reg, tc.format, tc.args, stdio{out: &out, err: &errb})
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errb.String())
			}
			if tc.stderr != "" {
				if !strings.Contains(errb.String(), tc.stderr) {
					t.Fatalf("stderr %q, want it to contain %q", errb.String(), tc.stderr)
				}
				return
			}
			if tc.format == "json" && !json.Valid(out.Bytes()) {
				t.Fatalf("not JSON: %s", out.String())
			}
			golden := filepath.Join("testdata", "connectors", tc.name+".golden")
			if updating() {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./cmd/memberflow -run TestConnectorsCommand -update)", err)
			}
			if out.String() != string(want) {
				t.Fatalf("output differs from %s:\n%s", golden, out.String())
			}
		})
	}
}

func TestConnectorsListTotals(t *testing.T) {
	var out bytes.Buffer
	if code := runConnectors(catalogueRegistry(t), "json", nil, stdio{out: &out, err: &out}); code != exitOK {
		t.Fatal(out.String())
	}
	var got struct {
		Totals catalogueTotals
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Totals != (catalogueTotals{Connectors: 2, Triggers: 2, Actions: 2, Operations: 4}) {
		t.Fatalf("totals %+v", got.Totals)
	}
}
