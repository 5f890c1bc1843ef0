package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/memberflow/memberflow/connectors"
)

// authorizer sets credentials on a request. invalidate drops a cached
// token after a 401, so the next authorize fetches a fresh one.
type authorizer interface {
	authorize(ctx context.Context, r *http.Request) error
	invalidate()
}

type staticAuth struct{ header, value string }

func (a staticAuth) authorize(_ context.Context, r *http.Request) error {
	if a.header != "" {
		r.Header.Set(a.header, a.value)
	}
	return nil
}
func (staticAuth) invalidate() {}

// oauthAuth caches an access token, refreshes it shortly before expiry,
// and keeps the newest refresh token (each refresh issues a new one). With
// a TokenStore the tokens are also saved there, so that other processes
// and the next start use the newest refresh token rather than the one in
// the configuration, which the service has invalidated.
type oauthAuth struct {
	// fetch gets a token: with refresh, a refresh-token grant; without,
	// the connection's configured grant.
	fetch func(ctx context.Context, refresh string) (*oauth2.Token, error)
	// refresh is the newest refresh token when no store keeps it; empty
	// for a client-credentials connection, which never refreshes.
	refresh    string
	store      connectors.TokenStore
	mu         sync.Mutex
	tok        *oauth2.Token
	version    int64 // the store's version of tok
	loaded     bool  // the store was read
	stale      bool  // the service refused tok
	early      time.Duration
	now        func() time.Time
	httpClient *http.Client
	// check is Config.CheckToken; refused is its verdict on the last
	// token, returned by every authorize once set.
	check   func(field func(string) any) error
	refused error
}

// tokenCheckError is a token the connection's CheckToken refused: a
// configuration error, never retried.
type tokenCheckError struct{ err error }

func (e *tokenCheckError) Error() string { return e.err.Error() }
func (e *tokenCheckError) Unwrap() error { return e.err }

func (a *oauthAuth) authorize(ctx context.Context, r *http.Request) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.httpClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, a.httpClient)
	}
	if a.refused != nil {
		return a.refused
	}
	if a.store != nil && !a.loaded {
		saved, v, err := a.store.Load(ctx)
		if err != nil {
			return fmt.Errorf("oauth2 token: reading the saved token: %w", err)
		}
		a.tok, a.version, a.loaded = fromSaved(saved), v, true
	}
	if a.stale || a.expired() {
		if err := a.renew(ctx); err != nil {
			return fmt.Errorf("oauth2 token: %w", err)
		}
	}
	r.Header.Set("Authorization", "Bearer "+a.tok.AccessToken)
	return nil
}

func (a *oauthAuth) expired() bool {
	return a.tok == nil || a.tok.AccessToken == "" || (!a.tok.Expiry.IsZero() && a.now().Add(a.early).After(a.tok.Expiry))
}

// renew gets a new token: from the service, or from the store when
// another process has just got one.
func (a *oauthAuth) renew(ctx context.Context) error {
	if a.store == nil {
		t, err := a.get(ctx, a.refresh)
		if err != nil {
			return err
		}
		if a.refresh != "" && t.RefreshToken != "" {
			a.refresh = t.RefreshToken
		}
		a.tok, a.stale = t, false
		return a.vet(t)
	}
	var fresh *oauth2.Token // nil when another process got the token
	saved, v, err := a.store.Replace(ctx, a.version, func(ctx context.Context, saved *connectors.OAuthToken) (*connectors.OAuthToken, error) {
		refresh := a.refresh
		if refresh != "" && saved != nil && saved.RefreshToken != "" {
			refresh = saved.RefreshToken
		}
		t, err := a.get(ctx, refresh)
		if err != nil {
			return nil, err
		}
		fresh = t
		if refresh == "" {
			t.RefreshToken = "" // client credentials: nothing to keep
		} else if t.RefreshToken == "" {
			t.RefreshToken = refresh // the service does not rotate
		}
		return &connectors.OAuthToken{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, Expiry: t.Expiry}, nil
	})
	if err != nil {
		return err
	}
	a.tok, a.version, a.stale = fromSaved(saved), v, false
	if fresh != nil {
		return a.vet(fresh)
	}
	return nil
}

// vet runs the connection's check on a token just issued; a refusal
// sticks. It runs after the token is kept, never inside the store's
// Replace, so that a rotated refresh token is saved whatever the verdict.
func (a *oauthAuth) vet(t *oauth2.Token) error {
	if a.check == nil {
		return nil
	}
	if err := a.check(t.Extra); err != nil {
		a.refused = &tokenCheckError{err: err}
		return a.refused
	}
	return nil
}

// advisedError says what a refusal means and what to do; it keeps the
// refusal (an *oauth2.RetrieveError) for errors.As.
type advisedError struct {
	err error
	msg string
}

func (e *advisedError) Error() string { return e.msg }
func (e *advisedError) Unwrap() error { return e.err }

// refusalText is what a token endpoint said when it refused: the OAuth
// error and its description (RFC 6749), or the message of a service
// that answers in its own shape ({"message": …}).
func refusalText(r *oauth2.RetrieveError) string {
	parts := []string{}
	if r.ErrorCode != "" {
		parts = append(parts, r.ErrorCode)
	}
	if r.ErrorDescription != "" {
		parts = append(parts, r.ErrorDescription)
	}
	var body struct {
		Message any `json:"message"`
	}
	if json.Unmarshal(r.Body, &body) == nil && body.Message != nil {
		parts = append(parts, fmt.Sprint(body.Message))
	}
	if len(parts) == 0 {
		return http.StatusText(r.Response.StatusCode)
	}
	return strings.Join(parts, ": ")
}

// get fetches a token from the service, dated by the client's clock.
func (a *oauthAuth) get(ctx context.Context, refresh string) (*oauth2.Token, error) {
	t, err := a.fetch(ctx, refresh)
	var refused *oauth2.RetrieveError
	if errors.As(err, &refused) && refused.Response != nil && refused.Response.StatusCode < 500 && refused.Response.StatusCode != http.StatusTooManyRequests {
		said := refusalText(refused)
		switch {
		case strings.Contains(strings.ToLower(said), "invalid_client") || strings.Contains(strings.ToLower(said), "invalid client"):
			// The app's credentials, not the token: re-authorising would
			// only spend a refresh token.
			return nil, &advisedError{err: err, msg: fmt.Sprintf("the service refused the OAuth app's credentials (HTTP %d: %s): check the connection's client_id and client_secret", refused.Response.StatusCode, said)}
		case refresh != "":
			return nil, &advisedError{err: err, msg: fmt.Sprintf("the service refused the refresh token (HTTP %d: %s): it was used already or revoked; authorise the OAuth app again and set the new refresh token in the connection's secret", refused.Response.StatusCode, said)}
		}
	}
	if err != nil {
		return nil, err
	}
	if secs := expiresIn(t); secs > 0 {
		// oauth2 dates the expiry by the wall clock; date it by the
		// client's own clock, the one it is compared with.
		t.Expiry = a.now().Add(time.Duration(secs) * time.Second)
	}
	return t, nil
}

func fromSaved(t *connectors.OAuthToken) *oauth2.Token {
	if t == nil {
		return nil
	}
	return &oauth2.Token{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, Expiry: t.Expiry, TokenType: "Bearer"}
}

// expiresIn is the token's lifetime in seconds as the server sent it;
// clientcredentials keeps it only in the raw answer.
func expiresIn(t *oauth2.Token) int64 {
	if t.ExpiresIn > 0 {
		return t.ExpiresIn
	}
	switch v := t.Extra("expires_in").(type) {
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// invalidate marks the token refused: the next authorize gets a new one
// (or the one another process saved since).
func (a *oauthAuth) invalidate() {
	a.mu.Lock()
	a.stale = true
	a.mu.Unlock()
}

func newAuthorizer(cfg Config, now func() time.Time) (authorizer, error) {
	au := cfg.Auth
	switch au.Type {
	case "", connectors.AuthNone:
		return staticAuth{}, nil
	case connectors.AuthAPIKey:
		if au.Key == "" {
			return nil, fmt.Errorf("api_key auth: key is empty")
		}
		header := first(au.Header, cfg.APIKeyHeader, "Authorization")
		scheme := first(au.Scheme, cfg.APIKeyScheme, "%s")
		value := scheme
		if strings.Contains(scheme, "%s") {
			value = strings.Replace(scheme, "%s", au.Key, 1)
		} else {
			value = scheme + " " + au.Key
		}
		return staticAuth{header: header, value: value}, nil
	case connectors.AuthBearer:
		if au.Token == "" {
			return nil, fmt.Errorf("bearer auth: token is empty")
		}
		return staticAuth{header: "Authorization", value: "Bearer " + au.Token}, nil
	case connectors.AuthOAuth2:
		tokenURL := first(au.TokenURL, cfg.TokenURL)
		if tokenURL == "" {
			return nil, fmt.Errorf("oauth2 auth: no token URL")
		}
		if au.ClientID == "" || au.ClientSecret == "" {
			return nil, fmt.Errorf("oauth2 auth: client_id and client_secret are required")
		}
		a := &oauthAuth{early: time.Minute, now: now, httpClient: cfg.HTTPClient, store: cfg.Tokens, refresh: au.RefreshToken, check: cfg.CheckToken}
		endpoint := oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}
		conf := &oauth2.Config{ClientID: au.ClientID, ClientSecret: au.ClientSecret, Endpoint: endpoint, Scopes: au.Scopes}
		credentials := &clientcredentials.Config{ClientID: au.ClientID, ClientSecret: au.ClientSecret, TokenURL: tokenURL, Scopes: au.Scopes, AuthStyle: oauth2.AuthStyleInParams, EndpointParams: cfg.TokenParams}
		a.fetch = func(ctx context.Context, refresh string) (*oauth2.Token, error) {
			if refresh == "" {
				return credentials.Token(ctx)
			}
			return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
		}
		return a, nil
	default:
		return nil, fmt.Errorf("unknown auth type %q", au.Type)
	}
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
