package apiclient

import (
	"context"
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
// and keeps the newest refresh token (each refresh issues a new one).
type oauthAuth struct {
	fetch      func(ctx context.Context) (*oauth2.Token, error)
	mu         sync.Mutex
	tok        *oauth2.Token
	early      time.Duration
	now        func() time.Time
	httpClient *http.Client
}

func (a *oauthAuth) authorize(ctx context.Context, r *http.Request) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok == nil || a.tok.AccessToken == "" || (!a.tok.Expiry.IsZero() && a.now().Add(a.early).After(a.tok.Expiry)) {
		if a.httpClient != nil {
			ctx = context.WithValue(ctx, oauth2.HTTPClient, a.httpClient)
		}
		t, err := a.fetch(ctx)
		if err != nil {
			return fmt.Errorf("oauth2 token: %w", err)
		}
		if secs := expiresIn(t); secs > 0 {
			// oauth2 dates the expiry by the wall clock; date it by the
			// client's own clock, the one it is compared with.
			t.Expiry = a.now().Add(time.Duration(secs) * time.Second)
		}
		a.tok = t
	}
	r.Header.Set("Authorization", "Bearer "+a.tok.AccessToken)
	return nil
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

func (a *oauthAuth) invalidate() {
	a.mu.Lock()
	a.tok = nil
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
		a := &oauthAuth{early: time.Minute, now: now, httpClient: cfg.HTTPClient}
		endpoint := oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}
		if au.RefreshToken != "" {
			conf := &oauth2.Config{ClientID: au.ClientID, ClientSecret: au.ClientSecret, Endpoint: endpoint, Scopes: au.Scopes}
			refresh := au.RefreshToken
			a.fetch = func(ctx context.Context) (*oauth2.Token, error) {
				t, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
				if err != nil {
					return nil, err
				}
				if t.RefreshToken != "" {
					refresh = t.RefreshToken
				}
				return t, nil
			}
		} else {
			conf := &clientcredentials.Config{ClientID: au.ClientID, ClientSecret: au.ClientSecret, TokenURL: tokenURL, Scopes: au.Scopes, AuthStyle: oauth2.AuthStyleInParams}
			a.fetch = conf.Token
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
