package accredible

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// docServer serves the documented shapes of the five resources whose
// creates settle by search (the Accredible sandbox does not serve them
// yet): each create is applied, then its answer is lost once when drop is
// set — the write happened, the caller does not know.
type docServer struct {
	mu      sync.Mutex
	drop    bool
	nextID  float64
	keys    []map[string]any
	colls   []map[string]any
	exports []map[string]any
	groups  []map[string]any
	designs []map[string]any
}

func (d *docServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var in map[string]any
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &in)
	unwrap := func(k string) map[string]any {
		if m, ok := in[k].(map[string]any); ok {
			return m
		}
		return in
	}
	add := func(list *[]map[string]any, item map[string]any) map[string]any {
		d.nextID++
		item["id"] = d.nextID
		*list = append(*list, item)
		return item
	}
	var out any
	created := false
	p := r.URL.Path
	switch {
	case r.Method == "POST" && p == "/v1/attribute_keys":
		out, created = map[string]any{"attribute_key": add(&d.keys, unwrap("attribute_key"))}, true
	case r.Method == "POST" && p == "/v1/attribute_keys/search":
		out = map[string]any{"attribute_keys": d.keys, "meta": map[string]any{"current_page": 1, "next_page": nil}}
	case r.Method == "POST" && p == "/v1/collections":
		out, created = map[string]any{"collection": add(&d.colls, unwrap("collection"))}, true
	case r.Method == "POST" && p == "/v1/collections/search":
		out = map[string]any{"collections": d.colls, "meta": map[string]any{"current_page": 1}}
	case r.Method == "POST" && p == "/v1/data_exports":
		e := unwrap("data_export")
		e["status"] = "scheduled"
		out, created = map[string]any{"data_export": add(&d.exports, e)}, true
	case r.Method == "GET" && p == "/v1/data_exports":
		out = map[string]any{"data_exports": d.exports}
	case r.Method == "GET" && p == "/v1/issuer/groups/7":
		out = map[string]any{"group": map[string]any{"id": 7, "name": "Gold"}}
	case r.Method == "POST" && p == "/v1/issuer/groups/7/clone":
		g := unwrap("group")
		if g["name"] == nil {
			g["name"] = "Copy Gold"
		}
		out, created = map[string]any{"group": add(&d.groups, g)}, true
	case r.Method == "POST" && p == "/v1/issuer/groups/search":
		out = map[string]any{"groups": d.groups, "meta": map[string]any{"current_page": 1}}
	case r.Method == "GET" && p == "/v1/designs/9":
		out = map[string]any{"design": map[string]any{"id": 9, "name": "Gold Design", "department_id": 34}}
	case r.Method == "POST" && p == "/v1/designs/9/copy":
		out, created = map[string]any{"design": add(&d.designs, map[string]any{"name": "Gold Design", "department_id": unwrap("design")["department_id"]})}, true
	case r.Method == "POST" && p == "/v1/designs/search":
		out = map[string]any{"designs": append([]map[string]any{{"id": 9, "name": "Gold Design", "department_id": 34}}, d.designs...), "meta": map[string]any{"current_page": 1}}
	default:
		http.Error(w, `{"errors":"Doesn't exist"}`, http.StatusNotFound)
		return
	}
	if created && d.drop {
		d.drop = false
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func TestGeneratedCreatesSettleAfterALostAnswer(t *testing.T) {
	for _, tc := range []struct {
		action string
		in     map[string]any
	}{
		{"create_attribute_key", map[string]any{"name": "Chapter", "kind": "text", "department_id": 34}},
		{"create_collection", map[string]any{"name": "Leadership", "public": true}},
		{"create_data_export", map[string]any{"entity": "credentials", "department_id": 34}},
		{"clone_group", map[string]any{"group_id": "7"}},
		{"clone_group", map[string]any{"group_id": "7", "name": "Gold 2027"}},
		{"copy_design", map[string]any{"design_id": 9, "department_id": 34}},
	} {
		t.Run(tc.action, func(t *testing.T) {
			docs := &docServer{drop: true}
			srv := httptest.NewServer(docs)
			defer srv.Close()
			conn, err := Open(connectors.ConnectionConfig{BaseURL: srv.URL, RateLimit: &connectors.RateLimit{},
				Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "k"}})
			if err != nil {
				t.Fatal(err)
			}
			a := testSpec.Action(tc.action)
			ctx := context.Background()
			if _, happened, err := a.Settle(ctx, conn, tc.in); err != nil || happened {
				t.Fatalf("before the create: happened=%v err=%v", happened, err)
			}
			if _, err := a.Run(ctx, conn, tc.in); !errors.Is(err, connectors.ErrInDoubt) {
				t.Fatalf("answer lost after the create: err = %v, want in doubt", err)
			}
			res, happened, err := a.Settle(ctx, conn, tc.in)
			if err != nil || !happened {
				t.Fatalf("after the create: happened=%v err=%v", happened, err)
			}
			if b, _ := json.Marshal(res.Output); !strings.Contains(string(b), `"id":`) {
				t.Fatalf("settled output %s has no id", b)
			}
		})
	}
}
