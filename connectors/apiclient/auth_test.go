package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// headerEcho answers 200 with the auth headers it received.
func headerEcho(t *testing.T) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"authorization": r.Header.Get("Authorization"),
			"key":           r.Header.Get("Key"),
			"version":       r.Header.Get("Version"),
		})
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestStaticAuth(t *testing.T) {
	ts := headerEcho(t)
	tests := []struct {
		name   string
		cfg    Config
		header string // which echoed header to check
		want   string
	}{
		{"accredible scheme", Config{APIKeyScheme: "Token token=%s", Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "acc-key-123"}}, "authorization", "Token token=acc-key-123"},
		{"connection scheme wins over the service's", Config{APIKeyScheme: "Token token=%s", Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "acc-key-123", Scheme: `Token token="%s"`}}, "authorization", `Token token="acc-key-123"`},
		{"scheme without a verb is a prefix", Config{Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "k-456789", Scheme: "Bearer"}}, "authorization", "Bearer k-456789"},
		{"bare key", Config{Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "k-456789"}}, "authorization", "k-456789"},
		{"other header", Config{Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "k-456789", Header: "Key"}}, "key", "k-456789"},
		{"service header default", Config{APIKeyHeader: "Key", Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "k-456789"}}, "key", "k-456789"},
		{"bearer", Config{Auth: connectors.Auth{Type: connectors.AuthBearer, Token: "pit-abcdef"}}, "authorization", "Bearer pit-abcdef"},
		{"none", Config{Auth: connectors.Auth{Type: connectors.AuthNone}}, "authorization", ""},
		{"service header sent", Config{Header: http.Header{"Version": {"2021-07-28"}}}, "version", "2021-07-28"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Service, tc.cfg.BaseURL = "svc", ts.URL
			c, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]string
			if _, err := c.JSON(context.Background(), Request{Method: "GET", Path: "/whoami"}, &got); err != nil {
				t.Fatal(err)
			}
			if got[tc.header] != tc.want {
				t.Fatalf("%s header = %q, want %q", tc.header, got[tc.header], tc.want)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no base url", Config{Service: "svc"}, "svc: base URL is empty"},
		{"relative base url", Config{Service: "svc", BaseURL: "/v1"}, `svc: base URL "/v1" is not an absolute URL`},
		{"not http", Config{Service: "svc", BaseURL: "ftp://x/v1"}, `svc: base URL "ftp://x/v1": want http:// or https://`},
		{"empty key", Config{Service: "svc", BaseURL: "http://x", Auth: connectors.Auth{Type: connectors.AuthAPIKey}}, "svc: api_key auth: key is empty"},
		{"empty token", Config{Service: "svc", BaseURL: "http://x", Auth: connectors.Auth{Type: connectors.AuthBearer}}, "bearer auth: token is empty"},
		{"oauth without token url", Config{Service: "svc", BaseURL: "http://x", Auth: connectors.Auth{Type: connectors.AuthOAuth2, ClientID: "a", ClientSecret: "b"}}, "oauth2 auth: no token URL"},
		{"oauth without secret", Config{Service: "svc", BaseURL: "http://x", TokenURL: "http://x/t", Auth: connectors.Auth{Type: connectors.AuthOAuth2, ClientID: "a"}}, "client_id and client_secret are required"},
		{"unknown type", Config{Service: "svc", BaseURL: "http://x", Auth: connectors.Auth{Type: "magic"}}, `unknown auth type "magic"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// tokenServer is an OAuth token endpoint in the GoHighLevel style: each
// grant answers a new access token, and each refresh a new refresh token.
type tokenServer struct {
	*httptest.Server
	mu        sync.Mutex
	grants    []string // "client_credentials" or "refresh_token:<token presented>"
	expiresIn int
	issued    int
	reject    bool // answer invalid_client
	badGrant  bool // answer invalid_grant: the refresh token is spent
	calls     int
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{expiresIn: 86399}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.calls++
		w.Header().Set("Content-Type", "application/json")
		if ts.reject || r.PostForm.Get("client_secret") != "cs-secret-1" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "bad client " + r.PostForm.Get("client_secret")})
			return
		}
		if ts.badGrant {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "refresh token already used"})
			return
		}
		grant := r.PostForm.Get("grant_type")
		if grant == "refresh_token" {
			grant += ":" + r.PostForm.Get("refresh_token")
		}
		ts.grants = append(ts.grants, grant)
		ts.issued++
		json.NewEncoder(w).Encode(map[string]any{
			"access_token":  "at-" + strconv.Itoa(ts.issued),
			"token_type":    "Bearer",
			"expires_in":    ts.expiresIn,
			"refresh_token": "rt-" + strconv.Itoa(ts.issued),
			"scope":         "users.readonly users.write",
		})
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) seen() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.grants...)
}

// fakeClock is a settable clock for token expiry and rate-limit pauses.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// apiServer answers 200 with the bearer token it saw, or 401 with the
// Memberships body for tokens listed in revoked.
func apiServer(t *testing.T, revoked map[string]bool) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var seen []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		seen = append(seen, tok)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if revoked[tok] {
			w.WriteHeader(401)
			w.Write([]byte(`{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}`))
			return
		}
		w.Write([]byte(`{"token":"` + tok + `"}`))
	}))
	t.Cleanup(ts.Close)
	return ts, &seen
}

func oauthClient(t *testing.T, api, tokenURL string, auth connectors.Auth, clock *fakeClock) *Client {
	t.Helper()
	auth.Type, auth.TokenURL = connectors.AuthOAuth2, tokenURL
	c, err := New(Config{Service: "memberships", BaseURL: api, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	c.now = clock.now
	c.sleep = func(context.Context, time.Duration) error { return nil }
	return c
}

func call(t *testing.T, c *Client) string {
	t.Helper()
	var out struct{ Token string }
	if _, err := c.JSON(context.Background(), Request{Method: "GET", Path: "/users/"}, &out); err != nil {
		t.Fatal(err)
	}
	return out.Token
}

func TestOAuth2ClientCredentials(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.expiresIn = 3600
	api, _ := apiServer(t, nil)
	clock := &fakeClock{t: time.Now()}
	c := oauthClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1"}, clock)

	steps := []struct {
		name      string
		advance   time.Duration
		wantToken string
		wantFetch int
	}{
		{"first call fetches", 0, "at-1", 1},
		{"cached", 10 * time.Minute, "at-1", 1},
		{"still cached just before the early window", 48 * time.Minute, "at-1", 1},
		{"refreshed within a minute of expiry", 90 * time.Second, "at-2", 2},
		{"new token cached", time.Second, "at-2", 2},
	}
	for _, st := range steps {
		clock.advance(st.advance)
		if got := call(t, c); got != st.wantToken {
			t.Fatalf("%s: token %q, want %q", st.name, got, st.wantToken)
		}
		if n := len(tokens.seen()); n != st.wantFetch {
			t.Fatalf("%s: %d token fetches, want %d", st.name, n, st.wantFetch)
		}
	}
	for _, g := range tokens.seen() {
		if g != "client_credentials" {
			t.Errorf("grant %q, want client_credentials", g)
		}
	}
}

func TestOAuth2RefreshTokenKeepsTheNewest(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.expiresIn = 3600
	api, _ := apiServer(t, nil)
	clock := &fakeClock{t: time.Now()}
	c := oauthClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1", RefreshToken: "rt-initial"}, clock)

	call(t, c)
	clock.advance(2 * time.Hour)
	call(t, c)
	clock.advance(2 * time.Hour)
	if got := call(t, c); got != "at-3" {
		t.Fatalf("token %q, want at-3", got)
	}
	want := []string{"refresh_token:rt-initial", "refresh_token:rt-1", "refresh_token:rt-2"}
	if got := tokens.seen(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("grants %v, want %v (each refresh must present the newest refresh token)", got, want)
	}
}

func TestOAuth2RefreshAndRetryOn401(t *testing.T) {
	tokens := newTokenServer(t)
	clock := &fakeClock{t: time.Now()}

	t.Run("revoked token is replaced once", func(t *testing.T) {
		api, seen := apiServer(t, map[string]bool{"at-1": true})
		c := oauthClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1"}, clock)
		if got := call(t, c); got != "at-2" {
			t.Fatalf("token %q, want at-2", got)
		}
		if strings.Join(*seen, ",") != "at-1,at-2" {
			t.Fatalf("API saw %v", *seen)
		}
	})
	t.Run("a second 401 is returned, not retried forever", func(t *testing.T) {
		api, seen := apiServer(t, map[string]bool{"at-3": true, "at-4": true})
		c := oauthClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1"}, clock)
		_, err := c.Do(context.Background(), Request{Method: "GET", Path: "/users/"})
		var api401 *connectors.APIError
		if !errors.As(err, &api401) || api401.Status != 401 || api401.Message != "Invalid token: access token is invalid" {
			t.Fatalf("err = %v", err)
		}
		if len(*seen) != 2 {
			t.Fatalf("API saw %d requests, want 2", len(*seen))
		}
	})
	t.Run("a 401 with a static key is not retried", func(t *testing.T) {
		api, seen := apiServer(t, map[string]bool{"static-key": true})
		c, err := New(Config{Service: "memberships", BaseURL: api.URL, Auth: connectors.Auth{Type: connectors.AuthBearer, Token: "static-key"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Do(context.Background(), Request{Method: "GET", Path: "/users/"}); err == nil {
			t.Fatal("no error")
		}
		if len(*seen) != 1 {
			t.Fatalf("API saw %d requests, want 1", len(*seen))
		}
	})
}

func TestOAuth2TokenFailureIsRedacted(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.reject = true
	api, seen := apiServer(t, nil)
	c := oauthClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1"}, &fakeClock{t: time.Now()})
	_, err := c.Do(context.Background(), Request{Method: "GET", Path: "/users/"})
	if err == nil || !strings.Contains(err.Error(), "oauth2 token") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "cs-secret-1") {
		t.Fatalf("client secret in error: %v", err)
	}
	if len(*seen) != 0 {
		t.Fatalf("API called without a token: %v", *seen)
	}
	if tokens.calls != 1 {
		t.Fatalf("token endpoint asked %d times; a refusal is final", tokens.calls)
	}
}

func TestOAuth2ConcurrentCallsShareOneToken(t *testing.T) {
	tokens := newTokenServer(t)
	api, seen := apiServer(t, nil)
	c := oauthClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1"}, &fakeClock{t: time.Now()})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Do(context.Background(), Request{Method: "GET", Path: "/users/"})
		}()
	}
	wg.Wait()
	if n := len(tokens.seen()); n != 1 {
		t.Fatalf("%d token fetches for 20 concurrent calls, want 1", n)
	}
	if len(*seen) != 20 {
		t.Fatalf("API saw %d calls", len(*seen))
	}
}
