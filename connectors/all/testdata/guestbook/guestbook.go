// Package guestbook is a fourth connector that lives only in testdata: a
// guest book where visitors sign and the host countersigns. The meta-test
// (connectors/all/meta_test.go) builds memberflow with it, through the
// memberflow_metatest build tag, and shows it in the catalogue, the
// sandbox, the demo summary and the docs with no edit anywhere else.
package guestbook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

func init() { connectors.MustRegister(Spec()) }

// Spec describes the connector.
func Spec() *connectors.Spec {
	return &connectors.Spec{
		Name:        "guestbook",
		Title:       "Guestbook",
		Summary:     "Visitors sign a guest book; the host countersigns.",
		Description: "A small fake API for the connector-is-one-folder meta-test. Authenticate with `Authorization: Key KEY`.",
		Auth:        []connectors.AuthKind{connectors.AuthAPIKey},
		BaseURL:     "https://guestbook.invalid",
		Open:        open,
		Actions: []*connectors.ActionSpec{{
			Operation: connectors.Operation{
				Name:    "countersign",
				Summary: "Countersign a visitor's entry (PUT /entries/{name}): the same name twice is one entry.",
				Input:   json.RawMessage(`{"type":"object","additionalProperties":false,"required":["name"],"properties":{"name":{"type":"string","minLength":1,"description":"The entry's name."}}}`),
				Output:  json.RawMessage(`{"type":"object","required":["id","name"],"properties":{"id":{"type":"integer"},"name":{"type":"string"}}}`),
				Example: map[string]any{"name": "Ann (host)"},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodPut, Path: "/entries/{name}"},
				Effect:  "entries countersigned",
			},
			Idempotent: true,
			Run:        connectors.Bind(countersign),
		}},
		Triggers: []*connectors.TriggerSpec{{
			Operation: connectors.Operation{
				Name:    "entry_signed",
				Summary: "Someone signed the guest book.",
				Input:   json.RawMessage(`{"type":"object","additionalProperties":false,"properties":{}}`),
				Output:  json.RawMessage(`{"type":"object","required":["id","name"],"properties":{"id":{"type":"integer"},"name":{"type":"string"}}}`),
				Example: map[string]any{},
				Effect:  "entries seen",
			},
			Poll:            poll,
			DefaultInterval: time.Minute,
		}},
	}
}

type client struct {
	base, key string
	http      *http.Client
}

func open(cfg connectors.ConnectionConfig) (connectors.Conn, error) {
	base := cfg.BaseURL
	if base == "" {
		base = "https://guestbook.invalid"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &client{base: base, key: cfg.Auth.Key, http: hc}, nil
}

func (c *client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(nil))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Key "+c.key)
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("guestbook: %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode/100 != 2 {
		return &connectors.APIError{Service: "guestbook", Status: res.StatusCode, Message: string(body)}
	}
	return json.Unmarshal(body, out)
}

func countersign(ctx context.Context, c *client, in map[string]any) (*connectors.Result, error) {
	name, _ := in["name"].(string)
	var e entry
	if err := c.do(ctx, http.MethodPut, "/entries/"+url.PathEscape(name), &e); err != nil {
		return nil, err
	}
	return &connectors.Result{Output: map[string]any{"id": e.ID, "name": e.Name},
		Wrote: []connectors.Record{{Subject: "entry/" + strconv.FormatInt(e.ID, 10), State: e.Name}}}, nil
}

type entry struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// poll reads the entries after the cursor's id, oldest first.
func poll(ctx context.Context, conn connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
	c, err := connectors.As[*client](conn)
	if err != nil {
		return nil, err
	}
	after := req.Cursor
	if after == "" {
		after = "0"
	}
	var page struct {
		Entries []entry `json:"entries"`
	}
	if err := c.do(ctx, http.MethodGet, "/entries?after="+url.QueryEscape(after), &page); err != nil {
		return nil, err
	}
	res := &connectors.PollResult{Cursor: after}
	for _, e := range page.Entries {
		subject := "entry/" + strconv.FormatInt(e.ID, 10)
		res.Events = append(res.Events, connectors.Event{ID: subject, Subject: subject, Fingerprint: e.Name,
			Data: map[string]any{"id": e.ID, "name": e.Name}})
		res.Cursor = strconv.FormatInt(e.ID, 10)
	}
	return res, nil
}
