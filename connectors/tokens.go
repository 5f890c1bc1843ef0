package connectors

import (
	"context"
	"errors"
	"time"
)

// ErrSavedTokenUnreadable is what a [TokenStore]'s error matches (errors.Is)
// when no retry can read the saved token, such as a store key other than
// the one it was sealed with. Requests then fail at once instead of
// retrying; any other store error is taken as temporary.
var ErrSavedTokenUnreadable = errors.New("the saved OAuth token cannot be read")

// OAuthToken is a connection's OAuth 2.0 token set: the access token and
// the refresh token that comes with it (services that rotate refresh
// tokens invalidate the previous one at each refresh).
type OAuthToken struct {
	AccessToken  string
	RefreshToken string
	// Expiry is when the access token ends; zero when the service did not
	// say.
	Expiry time.Time
}

// TokenStore keeps a connection's OAuth tokens where the runner's other
// processes and its next start find them. The engine provides one (the
// runner's store, encrypted) in [ConnectionConfig.Tokens]; without it the
// tokens live in memory only, and a refresh token the service rotated is
// lost when the process ends.
type TokenStore interface {
	// Load returns the newest saved token and its version; nil and 0
	// when none is saved.
	Load(ctx context.Context) (*OAuthToken, int64, error)
	// Replace gets a new token. When the saved token's version is no
	// longer seen (another process refreshed meanwhile), it returns the
	// saved one without calling fetch. Otherwise it calls fetch with the
	// saved token (nil: none) while no other process sharing the store
	// does (a rotated refresh token must never be sent twice), saves what
	// fetch returns and returns it with its new version.
	Replace(ctx context.Context, seen int64, fetch func(ctx context.Context, saved *OAuthToken) (*OAuthToken, error)) (*OAuthToken, int64, error)
}
