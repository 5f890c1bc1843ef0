package engine

import (
	"net/http/httptest"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

func TestRequestsAreNamedByTheirOperation(t *testing.T) {
	op := func(name, method, path string) connectors.Operation {
		return connectors.Operation{Name: name, HTTP: &connectors.HTTPBinding{Method: method, Path: path}}
	}
	spec := &connectors.Spec{Name: "svc",
		Actions: []*connectors.ActionSpec{
			{Operation: op("get_credential", "GET", "/v1/credentials/{id}")},
			{Operation: op("update_credential", "PUT", "/v1/credentials/{id}")},
			{Operation: op("act", "POST", "/v1/credentials/{id}")},
			{Operation: op("search", "POST", "/v1/credentials/search")},
			{Operation: connectors.Operation{Name: "composite"}},
		},
		Triggers: []*connectors.TriggerSpec{{Operation: op("changed", "GET", "/v1/credentials")}},
	}
	tr := &instrumentedTransport{routes: routesOf(spec), basePath: "/accredible"}
	for _, tc := range []struct{ method, url, want string }{
		{"GET", "http://h/accredible/v1/credentials/10000007", "get_credential"},
		{"PUT", "http://h/accredible/v1/credentials/10000007", "update_credential"},
		{"POST", "http://h/accredible/v1/credentials/search", "search"},
		{"GET", "http://h/accredible/v1/credentials?page=2", "changed"},
		{"POST", "http://h/accredible/v1/credentials/7", "act"},
		{"DELETE", "http://h/accredible/v1/credentials/1", "other"},
		{"GET", "http://h/accredible/v1/credentials/1/pdf", "other"},
		{"POST", "http://h/accredible/oauth/token", "oauth_token"},
	} {
		if got := tr.operation(httptest.NewRequest(tc.method, tc.url, nil)); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.url, got, tc.want)
		}
	}
}
