package recipetest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	_ "github.com/memberflow/memberflow/connectors/files"
)

// The runner is tested with a small connector written on the real HTTP
// runtime (apiclient): its requests go through the canned transport as a
// real connector's do.

const memberSchema = `{"type":"object","properties":{"id":{"type":"string"},"email":{"type":"string"},"status":{"type":"string"},"certId":{"type":"string"}}}`
const certSchema = `{"type":"object","properties":{"id":{"type":"integer"},"email":{"type":"string"}}}`

func clubSpec() *connectors.Spec {
	call := func(method, path string, body any, readOnly bool) func(ctx context.Context, c *apiclient.Client) (map[string]any, error) {
		return func(ctx context.Context, c *apiclient.Client) (map[string]any, error) {
			var out map[string]any
			_, err := c.JSON(ctx, apiclient.Request{Method: method, Path: path, Body: body, ReadOnly: readOnly, Idempotent: readOnly}, &out)
			return out, err
		}
	}
	return &connectors.Spec{
		Name: "club", Title: "Test club", Summary: "members and certificates", BaseURL: "https://api.club.test/v2",
		Auth: []connectors.AuthKind{connectors.AuthBearer},
		Open: func(cfg connectors.ConnectionConfig) (connectors.Conn, error) {
			return apiclient.New(apiclient.Config{Service: "club", ConnectionName: cfg.Name, BaseURL: cfg.BaseURL, Auth: cfg.Auth,
				HTTPClient: cfg.HTTPClient, Logger: cfg.Logger,
				ParseError: func(status int, h http.Header, body []byte) *connectors.APIError {
					return apiclient.ParseError("club", status, h, body)
				}})
		},
		Triggers: []*connectors.TriggerSpec{{
			Operation: connectors.Operation{Name: "member_changed", Summary: "a member changed",
				Input: json.RawMessage(`{"type":"object"}`), Output: json.RawMessage(`{"type":"object","properties":{"member":` + memberSchema + `}}`)},
			Poll: func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
				return nil, errors.New("a recipe test must never poll")
			},
		}},
		Actions: []*connectors.ActionSpec{
			{
				Operation: connectors.Operation{Name: "get_member", Summary: "get a member",
					Input:  json.RawMessage(`{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}`),
					Output: json.RawMessage(memberSchema), HTTP: &connectors.HTTPBinding{Method: "GET", Path: "/members/{id}"}},
				ReadOnly: true, Idempotent: true,
				Run: connectors.Bind(func(ctx context.Context, c *apiclient.Client, in map[string]any) (*connectors.Result, error) {
					out, err := call("GET", "/members/"+url.PathEscape(in["id"].(string)), nil, true)(ctx, c)
					return &connectors.Result{Output: out}, err
				}),
			},
			{
				Operation: connectors.Operation{Name: "find_cert", Summary: "search certificates",
					Input:  json.RawMessage(`{"type":"object","required":["email"],"properties":{"email":{"type":"string"}}}`),
					Output: json.RawMessage(certSchema), HTTP: &connectors.HTTPBinding{Method: "POST", Path: "/certs/search"}},
				ReadOnly: true, Idempotent: true,
				Run: connectors.Bind(func(ctx context.Context, c *apiclient.Client, in map[string]any) (*connectors.Result, error) {
					out, err := call("POST", "/certs/search", map[string]any{"query": map[string]any{"email": in["email"]}}, true)(ctx, c)
					return &connectors.Result{Output: out}, err
				}),
			},
			{
				Operation: connectors.Operation{Name: "issue_cert", Summary: "issue a certificate",
					Input:  json.RawMessage(`{"type":"object","required":["email"],"properties":{"email":{"type":"string"},"name":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}}}}`),
					Output: json.RawMessage(certSchema), HTTP: &connectors.HTTPBinding{Method: "POST", Path: "/certs"}},
				Idempotent: true, // the test service dedupes by email
				Run: connectors.Bind(func(ctx context.Context, c *apiclient.Client, in map[string]any) (*connectors.Result, error) {
					out, err := call("POST", "/certs", map[string]any{"cert": in}, false)(ctx, c)
					return &connectors.Result{Output: out}, err
				}),
			},
			{
				Operation: connectors.Operation{Name: "link_cert", Summary: "write the certificate id on the member",
					Input:  json.RawMessage(`{"type":"object","required":["id"],"properties":{"id":{"type":"string"},"certId":{"type":"string","maxLength":24}}}`),
					Output: json.RawMessage(memberSchema), HTTP: &connectors.HTTPBinding{Method: "PUT", Path: "/members/{id}"}},
				Idempotent: true,
				Run: connectors.Bind(func(ctx context.Context, c *apiclient.Client, in map[string]any) (*connectors.Result, error) {
					// The body carries the input's keys, as a generated
					// action's does: a key left out is not sent.
					body := map[string]any{}
					if v, ok := in["certId"]; ok {
						body["certId"] = v
					}
					out, err := call("PUT", "/members/"+url.PathEscape(in["id"].(string)), body, false)(ctx, c)
					return &connectors.Result{Output: out}, err
				}),
			},
		},
	}
}

func testRegistry() *connectors.Registry {
	reg := connectors.NewRegistry()
	reg.MustRegister(clubSpec())
	file, ok := connectors.Default.Lookup("file")
	if !ok {
		panic("the file connector is not registered")
	}
	reg.MustRegister(file)
	return reg
}
