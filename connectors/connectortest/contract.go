// Package connectortest holds checks every connector's tests run: the
// contract test builds each action's request from its example and
// validates it against the connector's OpenAPI document.
package connectortest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/openapi"
)

// Recorded is a request the contract server received.
type Recorded struct {
	Method, Path string
	Query        map[string][]string
	Header       http.Header
	Body         []byte
}

// Contract runs every action that names an HTTP binding with its Example
// against a recording server, and fails the test for an action that sends
// nothing or sends a request the document does not accept. cfg supplies
// auth and options; its BaseURL is replaced by the recording server's.
// The server answers every request 200 with a body built for the
// operation's documented answer, so that multi-call actions proceed.
func Contract(t *testing.T, spec *connectors.Spec, doc *openapi.Document, cfg connectors.ConnectionConfig) {
	t.Helper()
	var mu sync.Mutex
	var got []Recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, Recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if op, _, ok := doc.Find(r.Method, r.URL.Path); ok {
			_ = json.NewEncoder(w).Encode(op.ExampleResponse())
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()
	cfg.BaseURL = srv.URL
	conn, err := spec.Open(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", spec.Name, err)
	}
	for _, a := range spec.Actions {
		if a.HTTP == nil {
			continue
		}
		t.Run(a.Name, func(t *testing.T) {
			mu.Lock()
			got = got[:0]
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, runErr := a.Run(ctx, conn, cloneMap(a.Example))
			mu.Lock()
			reqs := append([]Recorded(nil), got...)
			mu.Unlock()
			if len(reqs) == 0 {
				t.Fatalf("example sent no request (run error: %v)", runErr)
			}
			for _, r := range reqs {
				var body []byte
				if len(strings.TrimSpace(string(r.Body))) > 0 {
					body = r.Body
				}
				if err := doc.ValidateRequest(r.Method, r.Path, r.Query, body); err != nil {
					t.Errorf("request does not match the OpenAPI document: %v", err)
				}
			}
		})
	}
}

// cloneMap deep-copies an example through JSON, so that a Run cannot
// change the spec's example, and numbers look as they do when decoded from
// YAML or JSON.
func cloneMap(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}
