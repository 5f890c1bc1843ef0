package engine

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Run statuses.
const (
	RunQueued     = "queued"
	RunRunning    = "running"
	RunSucceeded  = "succeeded"
	RunSkipped    = "skipped"    // the recipe's when was false
	RunSuppressed = "suppressed" // the event was the echo of memberflow's own write
	RunDead       = "dead"       // dead-lettered: see the failed step
)

// Step statuses in the journal.
const (
	StepStarted   = "started" // intent: a non-idempotent write is about to be sent
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
	StepInDoubt   = "in_doubt"
	StepSkipped   = "skipped"
)

// Store is the durable state of the runner. The embedded SQLite store
// implements it; a shared database can replace it so that several runners
// split the work (runs are claimed with an owner and a lease).
type Store interface {
	TriggerStore
	RunQueue
	Journal
	Inspector
	Close() error
}

// TriggerStore keeps what trigger sources need between polls.
type TriggerStore interface {
	// Cursor returns the recipe's trigger cursor, "" before the first poll.
	Cursor(ctx context.Context, recipe string) (string, error)
	// PriorStates returns the remembered state of each known subject.
	PriorStates(ctx context.Context, recipe string, subjects []string) (map[string]string, error)
	// Advance stores a new cursor (when Cursor is non-nil), the per-subject
	// states and the events, and enqueues one run per new event, all in
	// one transaction. An event whose ID the recipe has seen is dropped.
	Advance(ctx context.Context, recipe string, adv Advance) ([]Enqueued, error)
}

// Advance is one step forward of a trigger.
type Advance struct {
	Cursor *string
	States []SubjectState
	Events []NewEvent
}

// SubjectState is the remembered state of one trigger subject.
type SubjectState struct{ Subject, State string }

// NewEvent is an event to persist and run.
type NewEvent struct {
	ID          string
	Subject     string
	Fingerprint string
	// Connector is the trigger's connector, the key of echo suppression.
	Connector   string
	OrderingKey string
	Time        time.Time
	Data        json.RawMessage
	// Skipped is set when the recipe's condition, which reads only the
	// event and vars, is false. A skipped event is not stored, as an event
	// nor as a run, and has no Data: the store adds it to the count of
	// the Advance's skips (a SkipPage) and, when it carries Values (what
	// the condition read; the engine sets them on the first SkipSample of
	// a page), keeps it as a sample. Its Enqueued has RunID 0 and Status
	// RunSkipped. Being forgotten, an event skipped twice is counted twice.
	Skipped bool
	Values  json.RawMessage
	// Encode returns the data of a skipped event, whose Data is not
	// encoded up front: the store calls it for a skipped event that is an
	// echo, which it records as a suppressed run like any echo.
	Encode func() (json.RawMessage, error)
}

// Enqueued reports what became of one NewEvent: RunID is 0 for a
// duplicate; Status is the new run's (queued, skipped or suppressed).
type Enqueued struct {
	EventID string
	RunID   int64
	Status  string
}

// RunQueue hands queued runs to workers.
type RunQueue interface {
	// Claim marks up to Limit claimable runs of the named recipes as
	// running for owner until the lease ends, in arrival order. A run is
	// claimable when it is queued (or running with an expired lease) and
	// no earlier run with its ordering key is queued or running: runs of
	// one key go one at a time, in arrival order.
	Claim(ctx context.Context, req ClaimRequest) ([]*ClaimedRun, error)
	// RenewLeases extends the lease of every run owner holds.
	RenewLeases(ctx context.Context, owner string, until time.Time) error
	// ReleaseOwner puts every run owner holds back in the queue. A runner
	// calls it on start: runs its previous, dead self held are resumed.
	ReleaseOwner(ctx context.Context, owner string) (int, error)
}

// ClaimRequest asks for runs.
type ClaimRequest struct {
	Owner   string
	Recipes []string
	Limit   int
	Now     time.Time
	Lease   time.Duration
}

// ClaimedRun is a run a worker now holds.
type ClaimedRun struct {
	ID          int64
	Recipe      string
	EventID     string
	Subject     string
	Fingerprint string
	Connector   string
	OrderingKey string
	// Attempts counts claims, this one included: more than one means the
	// run is resumed.
	Attempts int
	Data     json.RawMessage
	// Echo is true when the event's (Connector, Subject, Fingerprint) is
	// the latest record memberflow itself wrote for that subject.
	Echo bool
}

// Journal records what a run did, step by step.
type Journal interface {
	// Steps returns a run's journal, in step order.
	Steps(ctx context.Context, runID int64) ([]StepRecord, error)
	// Record durably writes step records, the echoes of their writes and,
	// when fin is non-nil, the run's outcome, in one transaction. It
	// returns after the commit.
	Record(ctx context.Context, steps []StepRecord, fin *Completion) error
}

// StepRecord is one line of the journal: the latest state of one step of
// one run.
type StepRecord struct {
	RunID    int64           `json:"run_id"`
	Index    int             `json:"index"`
	StepID   string          `json:"step"`
	Action   string          `json:"action"` // connection.operation, as the recipe says
	Status   string          `json:"status"`
	Input    json.RawMessage `json:"input,omitempty"`  // redacted
	Output   json.RawMessage `json:"output,omitempty"` // the result, or the failed call's response
	Error    string          `json:"error,omitempty"`  // redacted
	Attempts int             `json:"attempts"`
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished"`
	// Wrote are the records the step changed (echo suppression).
	Wrote []Echo `json:"-"`
}

// Echo is a record memberflow wrote.
type Echo struct{ Connector, Subject, Fingerprint string }

// Completion ends a run (or, with Status RunQueued, gives it back).
type Completion struct {
	RunID  int64
	Status string
	Error  string
	// Condition is the outcome of the recipe's when (nil: no when) and
	// Values the values it read.
	Condition *bool
	Values    json.RawMessage
	Finished  time.Time
	// Version is the hash of the recipe version that ran (a Versions
	// store records it).
	Version string
}

// Inspector serves `memberflow runs` and `memberflow dlq`.
type Inspector interface {
	ListRuns(ctx context.Context, f RunFilter) ([]RunInfo, error)
	GetRun(ctx context.Context, id int64) (*RunDetail, error)
	// Replay puts a dead run back in the queue; its failed step is run
	// again and the steps before it are not.
	Replay(ctx context.Context, id int64) error
	// ReplayAll replays every dead run and returns how many.
	ReplayAll(ctx context.Context) (int, error)
}

// RunFilter selects runs; zero fields match all. Limit 0 means 100.
type RunFilter struct {
	Recipe string
	Status string
	Limit  int
}

// RunInfo is a run as listed.
type RunInfo struct {
	ID          int64      `json:"id"`
	Recipe      string     `json:"recipe"`
	EventID     string     `json:"event_id"`
	Subject     string     `json:"subject,omitempty"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	Error       string     `json:"error,omitempty"`
	Created     time.Time  `json:"created"`
	Finished    *time.Time `json:"finished,omitempty"`
	FailedStep  string     `json:"failed_step,omitempty"`
	OrderingKey string     `json:"ordering_key,omitempty"`
}

// RunDetail is the audit of one run.
type RunDetail struct {
	RunInfo
	Event     json.RawMessage `json:"event"`
	Condition *bool           `json:"condition,omitempty"`
	Values    json.RawMessage `json:"condition_values,omitempty"`
	Steps     []StepRecord    `json:"steps"`
	// Version is the recipe version the run last ran with, and
	// PastAttempts the attempts replays ended (a Versions store).
	Version      *RecipeVersion `json:"version,omitempty"`
	PastAttempts []Attempt      `json:"past_attempts,omitempty"`
}

// Versions is an optional Store ability, found by type assertion: it keeps
// the recipe versions that ran and every attempt of a run, so that a
// replay runs the version that failed and the audit keeps each attempt.
// A store without it runs every run with the loaded recipe.
type Versions interface {
	// SaveVersion remembers a recipe version; saving it again is a no-op.
	SaveVersion(ctx context.Context, v RecipeVersion) error
	// LoadVersion returns a remembered version (ErrNoVersion if unknown).
	LoadVersion(ctx context.Context, recipe, hash string) (*RecipeVersion, error)
	// RunVersion is the hash of the version a run last ran with; "" before
	// its first outcome, and after Unpin.
	RunVersion(ctx context.Context, run int64) (string, error)
	// Unpin makes a run's next attempt run the loaded version (replay
	// --latest).
	Unpin(ctx context.Context, run int64) error
	// Attempts lists a run's earlier attempts (those a replay ended),
	// oldest first.
	Attempts(ctx context.Context, run int64) ([]Attempt, error)
}

// ErrNoVersion is returned for a recipe version the store does not hold.
var ErrNoVersion = errors.New("no such recipe version")

// RecipeVersion is one version of a recipe file.
type RecipeVersion struct {
	Recipe   string    `json:"recipe"` // the recipe's id
	Hash     string    `json:"hash"`   // SHA-256 of the file, hex
	Revision string    `json:"revision,omitempty"`
	File     string    `json:"file,omitempty"`
	Source   []byte    `json:"-"`
	Seen     time.Time `json:"seen"`
}

// Attempt is a finished attempt of a run that was replayed afterwards.
type Attempt struct {
	N        int          `json:"attempt"`
	Version  string       `json:"version,omitempty"`
	Status   string       `json:"status"`
	Error    string       `json:"error,omitempty"`
	Finished time.Time    `json:"finished"`
	Steps    []StepRecord `json:"steps"`
}
