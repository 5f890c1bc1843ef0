package openapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

func loadTestDoc(t *testing.T) *Document {
	t.Helper()
	data, err := os.ReadFile("testdata/doc.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLoadRejectsNonOpenAPI3(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":  `{`,
		"swagger 2": `{"swagger":"2.0","paths":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Load([]byte(doc)); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestActionsNamesAndFlags(t *testing.T) {
	d := loadTestDoc(t)
	acts, err := d.Actions(Options{
		Names:  map[string]string{"POST /v1/things": "create_thing"},
		Client: func(connectors.Conn) (*apiclient.Client, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]bool{}
	for _, a := range acts {
		got[a.Name] = [2]bool{a.ReadOnly, a.Idempotent}
	}
	want := map[string][2]bool{
		"create_thing":      {false, false},
		"search_for_things": {true, true},
		"get_thing":         {true, true},
		"view_all_things":   {true, true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("actions = %v, want %v", got, want)
	}
}

func TestDottedNamesNestAndBodyWraps(t *testing.T) {
	d := loadTestDoc(t)
	op, _, ok := d.Find("POST", "/v1/things")
	if !ok {
		t.Fatal("POST /v1/things not found")
	}
	if op.BodyWrap != "thing" {
		t.Errorf("BodyWrap = %q, want thing", op.BodyWrap)
	}
	owner, _ := op.Body["properties"].(map[string]any)["owner"].(map[string]any)
	if owner == nil || owner["properties"].(map[string]any)["email"] == nil {
		t.Fatalf("owner.email was not nested: %v", op.Body)
	}
	if req := op.Body["required"]; !reflect.DeepEqual(req, []any{"name", "owner"}) {
		t.Errorf("required = %v, want [name owner]", req)
	}
	r, err := op.Request(map[string]any{"name": "W", "owner": map[string]any{"email": "x@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(r.Body)
	if string(body) != `{"thing":{"name":"W","owner":{"email":"x@example.com"}}}` {
		t.Errorf("body = %s", body)
	}
	if err := d.ValidateRequest("POST", "/v1/things", nil, body); err != nil {
		t.Errorf("ValidateRequest: %v", err)
	}
	if err := d.ValidateRequest("POST", "/v1/things", nil, []byte(`{"thing":{"name":"W"}}`)); err == nil {
		t.Error("a body without owner must not validate")
	}
}

func TestExampleRepairedToFitSchema(t *testing.T) {
	d := loadTestDoc(t)
	acts, _ := d.Actions(Options{Client: func(connectors.Conn) (*apiclient.Client, error) { return nil, nil }})
	for _, a := range acts {
		s, err := connectors.CompileSchema(a.Name, a.Input)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		b, _ := json.Marshal(a.Example)
		var v any
		_ = json.Unmarshal(b, &v)
		if err := s.Validate(v); err != nil {
			t.Errorf("%s: example does not validate: %v", a.Name, err)
		}
	}
}

func TestFindPrefersLiteralPath(t *testing.T) {
	d := loadTestDoc(t)
	op, vals, ok := d.Find("GET", "/v1/things/42")
	if !ok || op.Path != "/v1/things/{id}" || vals["id"] != "42" {
		t.Fatalf("Find = %v %v %v", op, vals, ok)
	}
	if _, _, ok := d.Find("DELETE", "/v1/things/42"); ok {
		t.Error("DELETE is not documented")
	}
}

func TestValidateResponse(t *testing.T) {
	d := loadTestDoc(t)
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"valid", `{"thing":{"id":1,"name":"x","expired_on":null}}`, true},
		{"nullable accepts a string", `{"thing":{"id":1,"name":"x","expired_on":"2026-01-01"}}`, true},
		{"missing required", `{"thing":{"name":"x"}}`, false},
		{"wrong type", `{"thing":{"id":"one","name":"x"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.ValidateResponse("GET", "/v1/things/1", 200, []byte(tc.body))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if err := d.ValidateResponse("GET", "/v1/things/1", 418, []byte(`{}`)); err == nil {
		t.Error("an undocumented status must not validate")
	}
}

func TestGeneratedRunSendsDocumentedRequest(t *testing.T) {
	d := loadTestDoc(t)
	var gotPath, gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		w.Write([]byte(`{"thing":{"id":7,"name":"W"}}`))
	}))
	defer srv.Close()
	c, err := apiclient.New(apiclient.Config{Service: "test", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	acts, _ := d.Actions(Options{Client: func(connectors.Conn) (*apiclient.Client, error) { return c, nil }})
	var get *connectors.ActionSpec
	for _, a := range acts {
		if a.Name == "get_thing" {
			get = a
		}
	}
	res, err := get.Run(context.Background(), nil, map[string]any{"id": 7.0, "verbose": true})
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/v1/things/7" || gotQuery != "verbose=true" {
		t.Errorf("request = %s?%s", gotPath, gotQuery)
	}
	if res.Output.(map[string]any)["thing"].(map[string]any)["name"] != "W" {
		t.Errorf("output = %v", res.Output)
	}
	if _, err := get.Run(context.Background(), nil, map[string]any{}); err == nil {
		t.Error("a missing path parameter must be an error")
	}
}

// TestDottedNamesLiteralInNamedExamples: a body whose named examples
// write dotted names literally, below the top level ({"query":
// {"group.id[in]": [1, 2]}}), keeps them literal: the field is "group.id",
// not an object "group" with an "id".
func TestDottedNamesLiteralInNamedExamples(t *testing.T) {
	doc := `{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{
	  "/v2/search":{"post":{"requestBody":{"content":{"application/json":{
	    "schema":{"type":"object","properties":{"query":{"type":"object","properties":{"group.id":{"type":"string"}}}}},
	    "examples":{"one":{"value":{"query":{"group.id[in]":[1,2]}}}}}}},
	    "responses":{"200":{"description":"OK"}}}},
	  "/v1/nested":{"post":{"requestBody":{"content":{"application/json":{
	    "schema":{"type":"object","properties":{"owner.email":{"type":"string"}}},
	    "examples":{"one":{"value":{"owner":{"email":"x@example.org"}}}}}}},
	    "responses":{"200":{"description":"OK"}}}}}}`
	d, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	op, _, _ := d.Find("POST", "/v2/search")
	query := op.Body["properties"].(map[string]any)["query"].(map[string]any)["properties"].(map[string]any)
	if query["group.id"] == nil || query["group"] != nil {
		t.Errorf("query properties %v: want the literal group.id", query)
	}
	op, _, _ = d.Find("POST", "/v1/nested")
	if props := op.Body["properties"].(map[string]any); props["owner"] == nil || props["owner.email"] != nil {
		t.Errorf("properties %v: want owner.email nested, as the example writes it", props)
	}
}
