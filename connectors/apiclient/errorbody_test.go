package apiclient

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestParseError covers every error body API-NOTES documents.
func TestParseError(t *testing.T) {
	tests := []struct {
		name       string
		service    string
		status     int
		header     http.Header
		body       string
		code       string
		message    string
		retryable  bool
		retryAfter time.Duration
	}{
		// Memberships (GoHighLevel).
		{"memberships 400", "memberships", 400, nil, `{"statusCode":400,"message":"Bad Request"}`, "", "Bad Request", false, 0},
		{"memberships 401", "memberships", 401, nil, `{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}`, "", "Invalid token: access token is invalid", false, 0},
		{"memberships 422 message list", "memberships", 422, nil, `{"statusCode":422,"message":["email must be an email","firstName should not be empty"],"error":"Unprocessable Entity"}`, "", "email must be an email; firstName should not be empty", false, 0},
		{"memberships 429", "memberships", 429, nil, `{"statusCode":429,"message":"Too many requests"}`, "", "Too many requests", true, 0},
		// Accredible.
		{"accredible plain-text 401", "accredible", 401, nil, "HTTP Token: Access denied.\n", "", "HTTP Token: Access denied.", false, 0},
		{"accredible success false", "accredible", 401, nil, `{"success":false,"data":"Invalid API key"}`, "", "Invalid API key", false, 0},
		{"accredible errors string", "accredible", 404, nil, `{"errors":"Doesn't exist"}`, "", "Doesn't exist", false, 0},
		{"accredible error string", "accredible", 404, nil, `{"error":"Not found"}`, "", "Not found", false, 0},
		{"accredible field errors", "accredible", 422, nil, `{"errors":{"recipient.email":["can't be blank","is invalid"],"group_id":["can't be blank"]}}`, "", "group_id can't be blank; recipient.email can't be blank; is invalid", false, 0},
		{"accredible v2 search", "accredible", 400, nil, `{"code":400,"message":"Invalid search query","status":"invalid_search_query","errors":{}}`, "invalid_search_query", "Invalid search query", false, 0},
		{"accredible bare 429", "accredible", 429, nil, ``, "", "too many requests", true, 0},
		{"accredible 403", "accredible", 403, nil, `{"errors":"Department scoped key cannot access this group"}`, "", "Department scoped key cannot access this group", false, 0},
		// Accelevents.
		{"accelevents errorCode", "accelevents", 400, nil, `{"errorCode":"4060406","errorMessage":"Ticket already used"}`, "4060406", "Ticket already used", false, 0},
		{"accelevents numeric code", "accelevents", 404, nil, `{"code":4040200,"message":"Event not found"}`, "4040200", "Event not found", false, 0},
		{"accelevents not staff", "accelevents", 403, nil, `{"errorCode":"4030101","errorMessage":"Not staff of this event"}`, "4030101", "Not staff of this event", false, 0},
		{"accelevents refunded", "accelevents", 400, nil, `{"errorCode":"4060408","message":"Ticket refunded"}`, "4060408", "Ticket refunded", false, 0},
		// Transport-level shapes.
		{"5xx html", "accredible", 502, nil, "<html><body>Bad Gateway</body></html>", "", "<html><body>Bad Gateway</body></html>", true, 0},
		{"503 empty", "memberships", 503, nil, "", "", "service unavailable", true, 0},
		{"Retry-After seconds", "memberships", 429, http.Header{"Retry-After": {"12"}}, ``, "", "too many requests", true, 12 * time.Second},
		{"Retry-After garbage ignored", "memberships", 429, http.Header{"Retry-After": {"soon"}}, ``, "", "too many requests", true, 0},
		{"JSON without a message", "accelevents", 409, nil, `{"success":false}`, "", "conflict", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			e := ParseError(tc.service, tc.status, h, []byte(tc.body))
			if e.Service != tc.service || e.Status != tc.status {
				t.Errorf("service/status = %s/%d", e.Service, e.Status)
			}
			if e.Code != tc.code {
				t.Errorf("code = %q, want %q", e.Code, tc.code)
			}
			if e.Message != tc.message {
				t.Errorf("message = %q, want %q", e.Message, tc.message)
			}
			if e.Retryable != tc.retryable {
				t.Errorf("retryable = %v, want %v", e.Retryable, tc.retryable)
			}
			if e.RetryAfter != tc.retryAfter {
				t.Errorf("retry after = %s, want %s", e.RetryAfter, tc.retryAfter)
			}
		})
	}
}

func TestParseErrorTruncatesLongText(t *testing.T) {
	e := ParseError("svc", 500, http.Header{}, []byte(strings.Repeat("x", 1000)))
	if len(e.Message) > 310 || !strings.HasSuffix(e.Message, "…") {
		t.Fatalf("message of %d bytes: %q", len(e.Message), e.Message[len(e.Message)-10:])
	}
}

func TestAPIErrorText(t *testing.T) {
	e := ParseError("accelevents", 400, http.Header{}, []byte(`{"errorCode":"4060405","errorMessage":"Barcode does not exist"}`))
	if got, want := e.Error(), "accelevents: HTTP 400 (4060405): Barcode does not exist"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
