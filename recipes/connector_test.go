package recipes

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// testRegistry holds two small connectors built with the SDK, so that the
// loader's semantic layer is tested without the real connectors.
func testRegistry() *connectors.Registry {
	reg := connectors.NewRegistry()
	reg.MustRegister(crmSpec())
	reg.MustRegister(certsSpec())
	return reg
}

func action(name, input, output string) *connectors.ActionSpec {
	return &connectors.ActionSpec{
		Operation: connectors.Operation{Name: name, Summary: name, Input: json.RawMessage(input), Output: json.RawMessage(output)},
		Run: func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, error) {
			return &connectors.Result{Output: in}, nil
		},
	}
}

const userSchema = `{"type":"object","properties":{
	"id":{"type":"string"},"email":{"type":"string"},"fullName":{"type":"string"},
	"membershipStatus":{"type":"string"},"eligibilityDate":{"type":"string","format":"date"},
	"planId":{"type":"integer"},"score":{"type":"number"},"active":{"type":"boolean"},
	"tags":{"type":"array","items":{"type":"string"}},
	"roles":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"}}}},
	"meta":{"type":"object"}}}`

func crmSpec() *connectors.Spec {
	poll := func(ctx context.Context, conn connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
		return &connectors.PollResult{}, nil
	}
	hook := &connectors.WebhookSpec{
		Verify: func(connectors.Conn, http.Header, []byte, time.Time) error { return nil },
		Parse: func(context.Context, connectors.Conn, []byte, connectors.WebhookRequest) ([]connectors.Event, error) {
			return nil, nil
		},
	}
	return &connectors.Spec{
		Name:    "crm",
		Title:   "Test CRM",
		Auth:    []connectors.AuthKind{connectors.AuthBearer, connectors.AuthOAuth2},
		Options: json.RawMessage(`{"type":"object","additionalProperties":false,"required":["locationId"],"properties":{"locationId":{"type":"string","minLength":3},"pageSize":{"type":"integer","maximum":100}}}`),
		Open:    func(cfg connectors.ConnectionConfig) (connectors.Conn, error) { return cfg, nil },
		Triggers: []*connectors.TriggerSpec{
			{
				Operation: connectors.Operation{Name: "membership_status_changed", Summary: "a member's status changed",
					Input:  json.RawMessage(`{"type":"object","additionalProperties":false,"properties":{"to":{"type":"string","enum":["eligible","active","lapsed"]},"planId":{"type":"integer"}}}`),
					Output: json.RawMessage(`{"type":"object","properties":{"user":` + userSchema + `,"from":{"type":"string"},"to":{"type":"string"}}}`)},
				Poll: poll, Webhook: hook,
			},
			{
				Operation: connectors.Operation{Name: "user_created", Summary: "a user was created",
					Input:  json.RawMessage(`{"type":"object"}`),
					Output: json.RawMessage(`{"type":"object","properties":{"user":` + userSchema + `}}`)},
				Webhook: hook,
			},
		},
		Actions: []*connectors.ActionSpec{
			action("get_user", `{"type":"object","additionalProperties":false,"required":["userId"],"properties":{"userId":{"type":"string"}}}`, userSchema),
			action("find_user", `{"type":"object","additionalProperties":false,"properties":{"email":{"type":"string"},
				"status":{"anyOf":[{"type":"string","enum":["eligible","active","lapsed"]},{"type":"array","items":{"type":"string","enum":["eligible","active","lapsed"]}}]}}}`,
				`{"type":"object","$defs":{"user":`+userSchema+`,"none":{"type":"null"}},"properties":{
				"found":{"type":"boolean"},
				"user":{"anyOf":[{"$ref":"#/$defs/user"},{"type":"null"}]},
				"owner":{"oneOf":[{"$ref":"#/$defs/none"},`+userSchema+`]},
				"profile":{"allOf":[{"type":"object","properties":{"id":{"type":"string"}}},{"properties":{"bio":{"type":"string"}}}]},
				"manager":{"$ref":"#/$defs/user"}}}`),
			action("update_user", `{"type":"object","additionalProperties":false,"required":["userId"],"properties":{"userId":{"type":"string"},"certificateId":{"type":"string"},"certificateStatus":{"type":"string","enum":["issued","revoked"]},"planId":{"type":"integer"}}}`, userSchema),
		},
	}
}

func certsSpec() *connectors.Spec {
	return &connectors.Spec{
		Name:  "certs",
		Title: "Test certificates",
		Auth:  []connectors.AuthKind{connectors.AuthAPIKey},
		Open:  func(cfg connectors.ConnectionConfig) (connectors.Conn, error) { return cfg, nil },
		Actions: []*connectors.ActionSpec{
			action("upsert_credential",
				`{"type":"object","additionalProperties":false,"required":["recipient","group_id"],"properties":{
					"recipient":{"type":"object","additionalProperties":false,"required":["name","email"],"properties":{"name":{"type":"string"},"email":{"type":"string"},"id":{"type":"string"}}},
					"group_id":{"type":"integer"},"issued_on":{"type":"string"},"approve":{"type":"boolean"},"meta_data":{"type":"object"}}}`,
				`{"type":"object","properties":{"id":{"type":"integer"},"url":{"type":"string"},"recipient":{"type":"object","properties":{"name":{"type":"string"},"email":{"type":"string"}}},"issued_on":{"type":"string"}}}`),
			action("list_groups", `{"type":"object"}`, `{"type":"array","items":{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"}}}}`),
		},
	}
}
