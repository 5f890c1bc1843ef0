// Package connectors is the SDK every memberflow connector is written against.
//
// A connector is described by one declarative [Spec]: its name, how it
// authenticates, and its operations (actions and triggers), each with input
// and output JSON Schemas, a one-line summary and an example. That spec is the
// single source of truth: recipe validation, expression type-checking, the
// catalogue (`memberflow connectors`) and the generated docs all read it.
//
// Lifecycle, in order:
//
//  1. a connector package registers its Spec (init calls [MustRegister];
//     tests build their own [Registry] instead);
//  2. the engine calls Spec.Open once per recipe connection, with the
//     resolved [ConnectionConfig]; Open does no network I/O;
//  3. actions run with ActionSpec.Run; a non-idempotent write that failed
//     ambiguously returns an error matching [ErrInDoubt], which the engine
//     settles with ActionSpec.Settle before anything is re-sent;
//  4. triggers produce [Event]s by TriggerSpec.Poll (from a durable cursor)
//     or TriggerSpec.Webhook (verify, then parse a delivery);
//  5. the engine calls Close on the opened connection if it implements
//     io.Closer.
//
// The engine depends only on this package, never on a concrete connector.
package connectors

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"
)

// Spec describes a connector. It is data first: everything but the
// function fields can be printed, linted and turned into docs.
type Spec struct {
	// Name is the identifier recipes use (`connector: <name>`).
	Name string
	// Title is the human name of the service (for a page title).
	Title string
	// Summary is one line about the service.
	Summary string
	// Description is longer Markdown prose for the generated docs.
	Description string
	// Auth lists the authentication kinds a connection may use.
	Auth []AuthKind
	// BaseURL is the production base URL used when a connection sets none.
	BaseURL string
	// RateLimit is the service's documented limit, the default for each
	// connection's token bucket. Zero means unlimited.
	RateLimit RateLimit
	// Options describes connector-specific connection settings (for example
	// an account or location id) as a JSON Schema object.
	Options json.RawMessage
	// OpenAPI is the service's OpenAPI document, embedded by the connector.
	OpenAPI []byte

	Actions  []*ActionSpec
	Triggers []*TriggerSpec

	// Records declares the domain records the connector holds (members,
	// credentials, ...) and how to read them all, for tools that compare
	// systems without naming a service (see [RecordSpec]). Optional.
	Records []*RecordSpec

	// Open makes the connection value handed to every operation of this
	// connector. It must not do network I/O: connecting is lazy, so that
	// validation and dry runs never touch a service.
	Open func(cfg ConnectionConfig) (Conn, error)
}

// Conn is an opened connection: whatever value the connector's Open returned,
// typically its API client. Operations type-assert it (see [Bind]).
type Conn any

// Operation is what actions and triggers have in common.
type Operation struct {
	// Name is snake_case and unique within its connector (`get_user`).
	Name string
	// Summary is one line, shown in the catalogue.
	Summary string
	// Description is optional longer Markdown for the docs.
	Description string
	// Input is the JSON Schema of the operation's `with` block.
	Input json.RawMessage
	// Output is the JSON Schema of an action's result or a trigger's event
	// data. Recipe expressions are type-checked against it.
	Output json.RawMessage
	// Example is a valid `with` block, shown in the catalogue and used by
	// the contract tests to build a real request.
	Example map[string]any
	// HTTP names the request this operation makes, when it is one request.
	HTTP *HTTPBinding
	// Effect says what one run means to a person reading a summary, as a
	// plural phrase ("certificates issued"): an action's writes, a
	// trigger's events. A read-only action's Effect labels the write of
	// the next writing step, over that step's own (a QR code rendered,
	// then appended to a file, is a QR code made). Empty: not counted.
	Effect string
	// Role says what the operation does with a domain record
	// ("credential.issue"), for tools that compare systems; nil: none
	// they use.
	Role *Role
}

// HTTPBinding is the API request an operation maps to.
type HTTPBinding struct {
	Method string // GET, POST, ...
	Path   string // OpenAPI path template, e.g. /v1/credentials/{id}
}

// ActionSpec is an operation a recipe step can call.
type ActionSpec struct {
	Operation
	// ReadOnly actions change nothing; a dry run executes them.
	ReadOnly bool
	// SignsWithWebhook: the action signs what it sends with the
	// connection's webhook settings (notify.webhook), so a recipe with a
	// step of it needs them resolved, as a webhook trigger does.
	SignsWithWebhook bool
	// Idempotent actions may be re-sent after an ambiguous failure (a GET,
	// a PUT of full state, a DELETE). Others must be settled first. A
	// write that sets it says why in Idempotency.
	Idempotent bool
	// Idempotency says why re-sending this write is safe. Every action
	// that writes either declares it (with Idempotent) or has a Settle:
	// a test over the catalogue holds every connector to that.
	Idempotency *Idempotency
	// Run performs the action with a validated input.
	Run func(ctx context.Context, conn Conn, input map[string]any) (*Result, error)
	// ReportsUnchanged: Run lists every record it changed in Result.Wrote
	// and leaves Wrote empty when the service already was as asked (an
	// upsert that found nothing to change), so the run summary counts such
	// a call as unchanged rather than as a change.
	ReportsUnchanged bool
	// Settle decides an in-doubt write: it looks the effect up (for example
	// find_credential for create_credential) and reports whether it
	// happened, with the output the write would have returned. Actions that
	// are neither ReadOnly nor Idempotent should have one; without it the
	// engine refuses to re-send and dead-letters the run.
	Settle func(ctx context.Context, conn Conn, input map[string]any) (out *Result, happened bool, err error)
	// Batch, when set, performs many calls of the action at once: one
	// request (a bulk endpoint, a search over a list of keys) or one write
	// for up to Batch.Max inputs. The engine gathers into it the calls
	// that runs of one step make at the same moment; each run keeps its
	// own journal, retries and settlement (Settle, per item), so a batch
	// must have the effect of calling Run on each input.
	Batch *BatchForm
}

// BatchForm is an action's batch form.
type BatchForm struct {
	// Max is the most inputs one call takes: the API's documented limit.
	Max int
	// Run performs the action for every input and returns one ItemResult
	// per input, in order. An error it returns applies to every item, as
	// Run's error would to one: wrapping ErrInDoubt when the request may
	// have landed, so that each item is settled.
	Run func(ctx context.Context, conn Conn, inputs []map[string]any) ([]ItemResult, error)
}

// ItemResult is one input's outcome in a batch: a Result, or the error
// Run would have returned for that input alone.
type ItemResult struct {
	Result *Result
	Err    error
}

// BindBatch adapts a batch function on a concrete connection type, as
// Bind does for Run.
func BindBatch[C any](f func(ctx context.Context, conn C, inputs []map[string]any) ([]ItemResult, error)) func(context.Context, Conn, []map[string]any) ([]ItemResult, error) {
	return func(ctx context.Context, conn Conn, inputs []map[string]any) ([]ItemResult, error) {
		c, err := As[C](conn)
		if err != nil {
			return nil, err
		}
		return f(ctx, c, inputs)
	}
}

// IdempotencyKind names why a write can be sent twice with the effect of
// once.
type IdempotencyKind string

const (
	// ResendSets: the request sets the given fields (or the whole record)
	// to the given values, by id: a PUT, or a POST that replaces.
	ResendSets IdempotencyKind = "sets"
	// ResendDeletes: the request deletes one record by id.
	ResendDeletes IdempotencyKind = "deletes"
	// ResendUpserts: the action finds the record by a natural key (the
	// Key input fields) and creates it only when none has the key, so a
	// second call finds what the first created.
	ResendUpserts IdempotencyKind = "upserts"
	// ResendIssues: the request hands out a fresh value (an access token,
	// a sign-in link) and stores no record a second call would duplicate.
	ResendIssues IdempotencyKind = "issues"
	// ResendNotifies: the request tells a person (a chat message, an
	// email, an alert webhook) and changes no record; a second call
	// repeats the message, which is better than losing an alert.
	ResendNotifies IdempotencyKind = "notifies"
)

// Idempotency declares why an action that writes is safe to re-send.
type Idempotency struct {
	Kind IdempotencyKind
	// Key names the input fields the record is found by, for
	// ResendUpserts; each must be a property of the input schema.
	Key []string
}

// Result is what an action returns.
type Result struct {
	// Output conforms to the action's Output schema; steps.<id> in later
	// expressions.
	Output any
	// Wrote lists the records this call changed, each with the fingerprint
	// the connector's triggers will compute for that record, so that the
	// engine can recognise and drop the echo of memberflow's own write.
	Wrote []Record
}

// TriggerSpec is an operation that starts recipe runs.
type TriggerSpec struct {
	Operation
	// Poll fetches events after a cursor. Nil when the trigger is
	// webhook-only.
	Poll func(ctx context.Context, conn Conn, req PollRequest) (*PollResult, error)
	// Webhook receives pushed deliveries. Nil when the trigger polls only.
	Webhook *WebhookSpec
	// DefaultInterval is the polling interval when a recipe sets none.
	DefaultInterval time.Duration
	// Engine marks a trigger fed by the runner itself with its own events
	// (the built-in memberflow connector: dead letters, failing triggers);
	// it neither polls nor takes webhooks.
	Engine bool
}

// Modes reports how the trigger can be fed: "poll", "webhook" or both,
// or "engine" for the runner's own events.
func (t *TriggerSpec) Modes() []string {
	var m []string
	if t.Engine {
		m = append(m, "engine")
	}
	if t.Poll != nil {
		m = append(m, "poll")
	}
	if t.Webhook != nil {
		m = append(m, "webhook")
	}
	return m
}

// WebhookSpec verifies and parses a pushed delivery.
type WebhookSpec struct {
	// Key names the connection's webhook setting Verify needs ("secret"
	// for an HMAC secret, "public_key" for a signature key), so that
	// `memberflow validate` reports a connection without it before the
	// first delivery does. Empty when deliveries carry no signature.
	Key string
	// Verify checks the delivery's signature and freshness against the
	// connection's webhook settings. It returns an error wrapping
	// [ErrUnauthorized] for a bad or missing signature, or [ErrStale] for a
	// timestamp outside the accepted window.
	Verify func(conn Conn, header http.Header, body []byte, now time.Time) error
	// Parse turns a verified delivery into events. Deliveries for other
	// topics than this trigger's return no events and no error.
	Parse func(ctx context.Context, conn Conn, body []byte, req WebhookRequest) ([]Event, error)
}

// WebhookRequest carries what a webhook parse needs beyond the body.
type WebhookRequest struct {
	Params map[string]any // the trigger's `with`
	Prior  PriorState     // per-subject state remembered from earlier events
}

// Event is one occurrence that may start a run.
type Event struct {
	// ID deduplicates: the same change seen twice (a repeated webhook, an
	// overlapping poll) has the same ID, and is run once.
	ID string
	// Subject is the record the event is about ("user/123"). It is the
	// default ordering key (two events about one subject never run at
	// once) and the key of echo suppression.
	Subject string
	// Fingerprint is the record's state as the event saw it; when it equals
	// the fingerprint of a write memberflow itself made, the event is an
	// echo and is dropped.
	Fingerprint string
	// Time is when the change happened, if the service says.
	Time time.Time
	// Data conforms to the trigger's Output schema: `trigger` in recipes.
	Data map[string]any
	// Raw, when set, is Data as JSON, as the trigger read it: the engine
	// stores it instead of encoding Data again.
	Raw json.RawMessage
	// Undecoded says that Data is nil and Raw the whole record, a JSON
	// object the trigger checked decodes (PollRequest.DecodeLater): the
	// engine decodes what it reads of it.
	Undecoded bool
	// Fields, for an Undecoded event, are nil or the values of
	// PollRequest.Fields in the record, in that order, each as Data
	// would hold it, or NoField where the record has no such field.
	Fields []any
}

// NoField stands in Event.Fields for a field the record does not have
// (a field that is null is nil).
var NoField any = noField{}

type noField struct{}

// Record names a record and its state.
type Record struct {
	Subject string
	// State is opaque to the engine: for polling triggers, what the
	// connector needs to recognise a change next time (a fingerprint, a
	// previous status); for writes, the fingerprint of what was written.
	State string
}

// Start says where a polling trigger begins the first time it runs.
type Start string

const (
	// StartNow remembers what exists at the first poll without emitting it.
	StartNow Start = "now"
	// StartBeginning emits everything that exists (a backfill).
	StartBeginning Start = "beginning"
)

// PollRequest is one poll of a trigger.
type PollRequest struct {
	// Params is the trigger's `with`, validated against its Input schema.
	Params map[string]any
	// Cursor is what the previous poll returned; empty on the first.
	Cursor string
	// Start applies when Cursor is empty.
	Start Start
	// Prior looks up the state remembered for subjects (see Record.State).
	Prior PriorState
	// Now is the engine's clock, for triggers that compare times.
	Now time.Time
	// Recipe names the recipe polling: a source whose polls share one
	// budget (a daily quota) tells its pollers apart by it.
	Recipe string
	// DecodeLater says the engine decodes a record's JSON itself, only
	// as far as it needs (what the recipe's when reads, for a record it
	// skips): a trigger that reads records as JSON objects may then
	// leave Data nil, with Raw the whole record, and set
	// Event.Undecoded. It still checks each record decodes, and refuses
	// one it would refuse decoded. False: Data is always set.
	DecodeLater bool
	// Fields, with DecodeLater, are the top-level fields the engine reads
	// of every record first (the recipe's when). A trigger that decodes
	// them in the pass that checks a record may give their values in
	// Event.Fields: the engine then does not read the record a second
	// time to decide a record it skips.
	Fields []string
}

// PriorState is the durable per-subject memory of a polling trigger.
type PriorState interface {
	// Lookup returns the remembered state of each subject that has one.
	Lookup(ctx context.Context, subjects []string) (map[string]string, error)
}

// PollResult is what one poll found. The engine stores Cursor, States and
// Events in one transaction: a crash neither skips nor repeats an event.
type PollResult struct {
	Events []Event
	// States are remembered per subject for the next polls.
	States []Record
	// Cursor resumes the next poll.
	Cursor string
	// More is true when another page is ready now: poll again at once.
	More bool
	// Total is the number of records the source reports, when known, for
	// progress lines during a backfill; 0 when unknown.
	Total int
	// MinInterval, on the page that ends a pass, is the least time the
	// source asks before the next pass: a full scan's cost against a
	// documented quota. The engine waits the longer of it and the
	// trigger's interval; 0 asks nothing.
	MinInterval time.Duration
}

// Bind adapts a typed action function to the untyped [ActionSpec.Run].
func Bind[C any](f func(ctx context.Context, conn C, input map[string]any) (*Result, error)) func(context.Context, Conn, map[string]any) (*Result, error) {
	return func(ctx context.Context, conn Conn, input map[string]any) (*Result, error) {
		c, err := As[C](conn)
		if err != nil {
			return nil, err
		}
		return f(ctx, c, input)
	}
}

// As type-asserts an opened connection, with an error that names both types.
func As[C any](conn Conn) (C, error) {
	c, ok := conn.(C)
	if !ok {
		var want C
		return want, fmt.Errorf("connection is %T, the operation needs %T", conn, want)
	}
	return c, nil
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Action returns the named action, or nil.
func (s *Spec) Action(name string) *ActionSpec {
	for _, a := range s.Actions {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Trigger returns the named trigger, or nil.
func (s *Spec) Trigger(name string) *TriggerSpec {
	for _, t := range s.Triggers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// OperationNames lists every action and trigger name, for "did you mean".
func (s *Spec) OperationNames() []string {
	names := make([]string, 0, len(s.Actions)+len(s.Triggers))
	for _, a := range s.Actions {
		names = append(names, a.Name)
	}
	for _, t := range s.Triggers {
		names = append(names, t.Name)
	}
	return names
}
