package connectors

import "context"

// Identity is the account a connection reaches, as its service reports
// it. The engine records it in its store on first use: a store's cursors,
// per-subject memory and echoes describe one account's data, and a later
// run whose connections reach another account must not reuse them.
type Identity struct {
	// BaseURL is where the connection points.
	BaseURL string `json:"base_url"`
	// Account identifies the account as the service reports it
	// ("issuer 1234", "location abc of company xyz"). Two identities are
	// the same account when their BaseURL and Account are equal.
	Account string `json:"account"`
	// Name is the account's human name, for messages only.
	Name string `json:"name,omitempty"`
}

// Identifier is implemented by connections (the value Spec.Open returns)
// that can ask their service which account they reach. Identify does
// network I/O; the engine calls it once per process, before the first run.
type Identifier interface {
	Identify(ctx context.Context) (Identity, error)
}
