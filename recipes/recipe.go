// Package recipes loads, validates and compiles memberflow recipes: YAML
// files that wire a connector trigger to steps calling connector actions,
// with expr-lang expressions for conditions and mappings.
//
// Loading runs in layers, each collecting every problem it finds as a
// positioned Diagnostic: YAML syntax, the recipe JSON Schema
// (schemas/recipe.schema.json), semantics against the connector registry,
// and expressions type-checked against the operations' schemas. The engine
// consumes only the compiled *Recipe.
package recipes

import (
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// Pos is a position in a recipe file; Line and Column are 1-based, Column
// counts characters (runes), as editors do.
type Pos struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

// Recipe is a loaded, validated, compiled recipe.
type Recipe struct {
	File    string
	Version int
	Name    string
	// ID keys the recipe's state in the store (cursors, per-subject
	// memory, runs): `id:` in the file, else the name, so that a recipe
	// renamed with its old name as id keeps its cursors.
	ID string
	// Hash is the SHA-256 (hex) of the recipe file as loaded, and Source
	// that file: the version each run records, so that a replay can run
	// the version that failed.
	Hash   string
	Source []byte
	// Revision is the git revision of the file, when the caller knows it
	// (memberflow run asks git); "" otherwise.
	Revision    string
	Description string
	// Connections by the recipe's name for them, including those from a
	// shared connections file.
	Connections map[string]*Connection
	Vars        map[string]any
	Trigger     *Trigger
	// When is the eligibility condition; nil means always.
	When  *Expr
	Steps []*Step
	Tests []*Test
	Pos   Pos
}

// Connection is a recipe connection before secrets are resolved.
type Connection struct {
	Name      string
	Connector string
	BaseURL   string
	// Auth values may hold ${{ secret.NAME }}; see Resolve.
	Auth      map[string]*Template
	Options   map[string]any
	RateLimit *connectors.RateLimit
	Webhook   map[string]*Template
	Pos       Pos
}

// Trigger starts runs: a connector trigger (polled or pushed), or a
// schedule.
type Trigger struct {
	// Connection and Operation come from `uses: connection.operation`;
	// both are empty for a schedule.
	Connection string
	Operation  string
	// With are the trigger's parameters; they may use vars, not steps.
	With *Template
	// Mode is "poll" or "webhook".
	Mode string
	// Interval between polls; 0 means the trigger's default.
	Interval time.Duration
	// FallbackPoll, for a webhook trigger, is the interval of a
	// reconciling poll that catches deliveries that never arrived (a
	// hybrid trigger); 0 means webhooks only. Both feed one event
	// identity, so a change seen both ways runs once.
	FallbackPoll time.Duration
	// Start is where a first poll begins.
	Start connectors.Start
	// WebhookPath is the listener path of a webhook trigger.
	WebhookPath string
	// Schedule is a cron expression for a scheduled recipe.
	Schedule string
	// OrderBy overrides the ordering key (default: the event's subject).
	OrderBy *Expr
	Pos     Pos
}

// Step calls one action.
type Step struct {
	// ID names the step's output (steps.<id>); generated ("step2") when
	// the recipe sets none.
	ID         string
	Connection string
	Operation  string
	With       *Template
	When       *Expr
	Retry      *RetryPolicy
	// OnError is "fail" (default: the run is dead-lettered) or "continue".
	OnError string
	// SignsWithWebhook: the step's action signs what it sends with its
	// connection's webhook settings (connectors.ActionSpec).
	SignsWithWebhook bool
	Pos              Pos
}

// RetryPolicy governs retries of a step's retryable failures.
type RetryPolicy struct {
	Attempts   int
	Backoff    time.Duration // first delay; doubles, with jitter
	MaxBackoff time.Duration
	// Timeout bounds the step, retries included.
	Timeout time.Duration
}

// Test is an offline recipe test (a `tests:` entry or a *.test.yaml case).
type Test struct {
	Name string
	Pos  Pos
	// Raw is the test's YAML, decoded; the test runner interprets it.
	Raw map[string]any
}
