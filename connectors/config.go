package connectors

import (
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// AuthKind names an authentication method.
type AuthKind string

const (
	AuthNone   AuthKind = "none"
	AuthAPIKey AuthKind = "api_key" // a key in a header, with a scheme (e.g. `Token token=KEY`)
	AuthBearer AuthKind = "bearer"  // `Authorization: Bearer TOKEN`
	AuthOAuth2 AuthKind = "oauth2"  // client credentials or refresh token, via golang.org/x/oauth2
)

// Auth is a connection's resolved credentials. Every field but Type, Header,
// Scheme, TokenURL and Scopes is a secret: it is redacted from errors, logs
// and recorded requests (see [Auth.Secrets]).
type Auth struct {
	Type AuthKind
	// api_key
	Key    string
	Header string // default "Authorization"
	Scheme string // printf-style, %s is the key; connector default when empty
	// bearer
	Token string
	// oauth2
	ClientID     string
	ClientSecret string
	RefreshToken string
	TokenURL     string // default: the connector's
	Scopes       []string
}

// Secrets returns the non-empty secret values of the credentials.
func (a Auth) Secrets() []string {
	var s []string
	for _, v := range []string{a.Key, a.Token, a.ClientSecret, a.RefreshToken} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}

// RateLimit is a token bucket: Requests per Per, with Burst.
type RateLimit struct {
	Requests int
	Per      time.Duration
	Burst    int // default: Requests
}

// Unlimited reports whether the limit is off.
func (r RateLimit) Unlimited() bool { return r.Requests <= 0 || r.Per <= 0 }

// Webhook holds the settings a connection uses to verify pushed deliveries.
type Webhook struct {
	// Secret is the shared HMAC key.
	Secret string
	// PublicKey is a PEM public key for signature checks.
	PublicKey string
	// Tolerance is the accepted clock skew of a delivery's timestamp;
	// default five minutes.
	Tolerance time.Duration
}

// PlannedWrite is a request a dry run did not send.
type PlannedWrite struct {
	Connection string `json:"connection"`
	Method     string `json:"method"`
	Path       string `json:"path"`
	Body       any    `json:"body,omitempty"`
}

// ConnectionConfig is a recipe connection, resolved, handed to Spec.Open.
type ConnectionConfig struct {
	// Name is the recipe's name for the connection (`members`).
	Name string
	// BaseURL overrides Spec.BaseURL (the sandbox, a regional host).
	BaseURL string
	Auth    Auth
	// RateLimit overrides Spec.RateLimit when non-nil; a zero value turns
	// limiting off.
	RateLimit *RateLimit
	// Options are connector-specific settings, valid against Spec.Options.
	Options map[string]any
	Webhook Webhook
	// Timeout bounds each HTTP call; default 30 s.
	Timeout time.Duration
	// HTTPClient, when set, replaces the default transport (tests).
	HTTPClient *http.Client
	// Logger is named for the connection; never nil when the engine opens
	// a connection.
	Logger hclog.Logger
	// DryRun, when set, receives each write instead of it being sent; the
	// write answers as if it had succeeded with an empty body.
	DryRun func(PlannedWrite)
	// Tokens, when set, keeps the OAuth tokens of an oauth2 connection
	// across processes and restarts (see [TokenStore]).
	Tokens TokenStore
}
