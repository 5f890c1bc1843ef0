package engine_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// FuzzWebhook posts arbitrary bodies, signed or not, to a webhook
// trigger. The endpoint never fails with a server error and never
// panics; an unsigned delivery is never stored; a signed one is stored
// only when it parses.
//
//	go test -run '^$' -fuzz FuzzWebhook -fuzztime 30s ./engine/
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"id":"d1","member":{"id":"m1","seq":1}}`), true)
	f.Add([]byte(`{"id":"","member":null}`), true)
	f.Add([]byte(`{not json`), true)
	f.Add([]byte(`{"id":"d2","member":{"id":"m2"}}`), false)
	f.Add([]byte{}, true)
	store := openStore(f, tempDB(f))
	f.Cleanup(func() { store.Close() })
	svc := newFakeService(0, oneActive)
	e := newEngine(f, store, svc, []*recipes.Recipe{recordRecipe(f)})
	h := e.WebhookHandler()
	f.Fuzz(func(t *testing.T, body []byte, signed bool) {
		before, _ := store.ListRuns(context.Background(), engine.RunFilter{Limit: 1 << 20})
		req := httptest.NewRequest(http.MethodPost, "/hooks/members", bytes.NewReader(body))
		if signed {
			req.Header.Set("X-Fake-Signature", sign(body))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after, _ := store.ListRuns(context.Background(), engine.RunFilter{Limit: 1 << 20})
		switch {
		case rec.Code >= 500:
			t.Fatalf("status %d for %q", rec.Code, body)
		case !signed && rec.Code != http.StatusUnauthorized:
			t.Fatalf("unsigned delivery answered %d", rec.Code)
		case rec.Code != http.StatusOK && len(after) != len(before):
			t.Fatalf("a refused delivery (%d) was stored", rec.Code)
		case rec.Code == http.StatusOK && len(after) < len(before):
			t.Fatal("runs disappeared")
		}
	})
}
