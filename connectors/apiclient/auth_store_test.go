package apiclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// memTokens is a connectors.TokenStore in memory, shared by the clients
// of one test as the engine's store is by processes; it records calls.
type memTokens struct {
	mu       sync.Mutex
	tok      *connectors.OAuthToken
	version  int64
	replaces []int64 // the seen version of each Replace
}

func (m *memTokens) Load(context.Context) (*connectors.OAuthToken, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tok, m.version, nil
}

func (m *memTokens) Replace(ctx context.Context, seen int64, fetch func(context.Context, *connectors.OAuthToken) (*connectors.OAuthToken, error)) (*connectors.OAuthToken, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.replaces = append(m.replaces, seen)
	if seen != m.version && m.tok != nil {
		return m.tok, m.version, nil
	}
	t, err := fetch(ctx, m.tok)
	if err != nil {
		return nil, 0, err
	}
	m.tok, m.version = t, m.version+1
	return t, m.version, nil
}

func storeClient(t *testing.T, api, tokenURL string, auth connectors.Auth, clock *fakeClock, store connectors.TokenStore) *Client {
	t.Helper()
	auth.Type, auth.TokenURL = connectors.AuthOAuth2, tokenURL
	c, err := New(Config{Service: "memberships", BaseURL: api, Auth: auth, Tokens: store})
	if err != nil {
		t.Fatal(err)
	}
	c.now = clock.now
	c.sleep = func(context.Context, time.Duration) error { return nil }
	return c
}

func TestOAuth2WithATokenStore(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.expiresIn = 3600
	clock := &fakeClock{t: time.Now()}
	store := &memTokens{}
	rotating := connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1", RefreshToken: "rt-configured"}

	api, _ := apiServer(t, map[string]bool{"at-2": true})
	first := storeClient(t, api.URL, tokens.URL, rotating, clock, store)
	if got := call(t, first); got != "at-1" {
		t.Fatalf("first client: %q", got)
	}
	// A restarted client starts from the saved token, not from the
	// configuration, and refreshes with the newest refresh token.
	restarted := storeClient(t, api.URL, tokens.URL, rotating, clock, store)
	if got := call(t, restarted); got != "at-1" {
		t.Fatalf("restarted client: %q, want the saved access token", got)
	}
	clock.advance(2 * time.Hour)
	// at-2 is refused by the API: the client gets at-3 once, through the
	// store, presenting rt-2.
	if got := call(t, restarted); got != "at-3" {
		t.Fatalf("after expiry and a 401: %q, want at-3", got)
	}
	want := "refresh_token:rt-configured,refresh_token:rt-1,refresh_token:rt-2"
	if got := strings.Join(tokens.seen(), ","); got != want {
		t.Fatalf("grants %s, want %s", got, want)
	}
	// The first client, whose token is stale, takes the saved one
	// without a refresh of its own.
	clock.advance(2 * time.Hour)
	before := len(tokens.seen())
	store.mu.Lock()
	store.tok.Expiry = clock.now().Add(time.Hour)
	store.mu.Unlock()
	if got := call(t, first); got != "at-3" || len(tokens.seen()) != before {
		t.Fatalf("first client after the others refreshed: %q with %d new grants", got, len(tokens.seen())-before)
	}

	t.Run("client credentials never present a refresh token", func(t *testing.T) {
		tokens := newTokenServer(t)
		store := &memTokens{}
		c := storeClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1"}, &fakeClock{t: time.Now()}, store)
		call(t, c)
		store.mu.Lock()
		store.tok.Expiry = time.Now().Add(-time.Hour)
		store.mu.Unlock()
		c = storeClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1"}, &fakeClock{t: time.Now()}, store)
		call(t, c)
		for _, g := range tokens.seen() {
			if g != "client_credentials" {
				t.Errorf("grant %q", g)
			}
		}
		if store.tok.RefreshToken != "" {
			t.Errorf("a client-credentials token kept refresh token %q", store.tok.RefreshToken)
		}
	})
}

// A refused refresh token says what the operator does; refused client
// credentials say to fix those, not to re-authorise (which would spend a
// refresh token for nothing).
func TestOAuth2RefusedRefreshTokenSaysWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		name      string
		refuse    func(*tokenServer)
		want, not string
	}{
		{"spent refresh token", func(ts *tokenServer) { ts.badGrant = true }, "authorise the OAuth app again", "client_secret"},
		{"wrong client secret", func(ts *tokenServer) { ts.reject = true }, "check the connection's client_id and client_secret", "authorise the OAuth app again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokens := newTokenServer(t)
			tc.refuse(tokens)
			api, seen := apiServer(t, nil)
			c := oauthClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1", RefreshToken: "rt-rotated-away"}, &fakeClock{t: time.Now()})
			_, err := c.Do(context.Background(), Request{Method: "GET", Path: "/users/"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.not) || strings.Contains(err.Error(), "rt-rotated-away") {
				t.Fatalf("err = %v", err)
			}
			if connectors.Retryable(err) {
				t.Fatalf("a refusal is retryable: %v", err)
			}
			if len(*seen) != 0 || tokens.calls != 1 {
				t.Fatalf("API saw %d requests and the token endpoint %d; want none and one", len(*seen), tokens.calls)
			}
		})
	}
}

// failingTokens is a connectors.TokenStore whose reads fail with err.
type failingTokens struct {
	err   error
	loads int
}

func (f *failingTokens) Load(context.Context) (*connectors.OAuthToken, int64, error) {
	f.loads++
	return nil, 0, f.err
}

func (f *failingTokens) Replace(context.Context, int64, func(context.Context, *connectors.OAuthToken) (*connectors.OAuthToken, error)) (*connectors.OAuthToken, int64, error) {
	return nil, 0, f.err
}

// A saved token no retry can read (a wrong store key) fails the request
// as final; any other store failure may pass, so it is retried.
func TestTokenStoreFailuresSayWhetherToRetry(t *testing.T) {
	tokens := newTokenServer(t)
	api, seen := apiServer(t, nil)
	for _, tc := range []struct {
		name      string
		err       error
		retryable bool
	}{
		{"unreadable", fmt.Errorf("opening the saved token: %w", connectors.ErrSavedTokenUnreadable), false},
		{"store busy", errors.New("database is locked"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &failingTokens{err: tc.err}
			c := storeClient(t, api.URL, tokens.URL, connectors.Auth{ClientID: "app", ClientSecret: "cs-secret-1", RefreshToken: "rt-configured"}, &fakeClock{t: time.Now()}, store)
			_, err := c.Do(context.Background(), Request{Method: "GET", Path: "/users/"})
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want it to keep the store's %v", err, tc.err)
			}
			if got := connectors.Retryable(err); got != tc.retryable {
				t.Fatalf("Retryable(%v) = %v, want %v", err, got, tc.retryable)
			}
			if len(*seen) != 0 || tokens.calls != 0 {
				t.Fatalf("API saw %d requests and the token endpoint %d; want none", len(*seen), tokens.calls)
			}
		})
	}
}

// A token CheckToken refuses stops the connection: the request fails with
// the check's words, is not retryable, no other token is fetched, and the
// refresh token the refusal's grant rotated is saved all the same (the
// one presented is spent).
func TestCheckTokenRefusalKeepsTheRotatedRefreshToken(t *testing.T) {
	tokens := newTokenServer(t)
	api, _ := apiServer(t, nil)
	store := &memTokens{}
	c, err := New(Config{Service: "memberships", BaseURL: api.URL, Tokens: store,
		Auth: connectors.Auth{Type: connectors.AuthOAuth2, TokenURL: tokens.URL, ClientID: "app", ClientSecret: "cs-secret-1", RefreshToken: "rt-configured"},
		CheckToken: func(field func(string) any) error {
			return fmt.Errorf("token of scope %v refused", field("scope"))
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		_, err := c.JSON(context.Background(), Request{Method: "GET", Path: "/users/"}, nil)
		if err == nil || !strings.Contains(err.Error(), "token of scope users.readonly users.write refused") {
			t.Fatalf("call %d: %v", i, err)
		}
		if connectors.Retryable(err) {
			t.Errorf("call %d: a refused token is retryable: %v", i, err)
		}
	}
	if got := strings.Join(tokens.seen(), ","); got != "refresh_token:rt-configured" {
		t.Errorf("grants %s, want the one", got)
	}
	if store.tok == nil || store.tok.RefreshToken != "rt-1" {
		t.Errorf("saved %+v, want the rotated refresh token rt-1", store.tok)
	}
}
