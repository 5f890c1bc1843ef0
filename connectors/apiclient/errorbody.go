package apiclient

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// ParseError builds an *APIError from the error body shapes REST APIs
// commonly send (each connector's tests hold it to its own service's):
//
//	{"statusCode":401,"message":"Invalid token...","error":"Unauthorized"}   status and message
//	{"statusCode":422,"message":["email must be an email"]}                   a list of messages
//	{"errors":"Doesn't exist"} / {"error":"Not found"}                        a bare error
//	{"success":false,"data":"..."} / {"errors":{"field":["can't be blank"]}}  errors by field
//	{"code":400,"message":"...","status":"invalid_search_query"}              a code and a status word
//	{"errorCode":"4060406","errorMessage":"..."} / {"code":..,"message":..}   an error code
//	HTTP Token: Access denied.                                                 plain text
func ParseError(service string, status int, header http.Header, body []byte) *connectors.APIError {
	e := &connectors.APIError{
		Service:   service,
		Status:    status,
		Retryable: status == http.StatusTooManyRequests || status >= 500,
	}
	if d, ok := retryAfter(header.Get("Retry-After")); ok {
		e.RetryAfter = d
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 300 {
			e.Message = e.Message[:300] + "…"
		}
		if e.Message == "" {
			e.Message = strings.ToLower(http.StatusText(status))
		}
		return e
	}
	for _, k := range []string{"errorCode", "code", "status"} {
		if v, ok := doc[k]; ok {
			switch v := v.(type) {
			case string:
				if v != "" && e.Code == "" {
					e.Code = v
				}
			case float64:
				if int(v) != status && e.Code == "" {
					e.Code = strconv.Itoa(int(v))
				}
			}
		}
	}
	var parts []string
	for _, k := range []string{"message", "errorMessage", "error", "errors", "data", "responseMessage"} {
		if v, ok := doc[k]; ok {
			if s := flatten(v); s != "" {
				parts = append(parts, s)
			}
		}
	}
	// {"error":"Unauthorized","message":"..."}: the message says more.
	if len(parts) > 1 && parts[1] == strings.ToLower(http.StatusText(status)) {
		parts = parts[:1]
	}
	if len(parts) > 0 {
		e.Message = parts[0]
	} else {
		e.Message = strings.ToLower(http.StatusText(status))
	}
	return e
}

// flatten renders a message that may be a string, a list of strings, or a
// map of field to messages.
func flatten(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		var s []string
		for _, x := range v {
			if f := flatten(x); f != "" {
				s = append(s, f)
			}
		}
		return strings.Join(s, "; ")
	case map[string]any:
		if m, ok := v["message"].(string); ok {
			return m
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var s []string
		for _, k := range keys {
			if f := flatten(v[k]); f != "" {
				s = append(s, k+" "+f)
			}
		}
		return strings.Join(s, "; ")
	case nil, bool:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func retryAfter(h string) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}
