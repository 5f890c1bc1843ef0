package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
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

// Store is what a durable store provides: what the engine needs
// (RunnerStore) and what operators read (Inspector). The embedded SQLite
// store (engine/sqlitestore) and the shared Postgres one (engine/pgstore)
// implement it; engine/storetest checks every rule written here, so that
// a store is written against the suite, not against another store's SQL.
//
// Optional abilities are found by type assertion, database/sql style:
// Snapshotter (a copy for dry runs), RunnerLister (live runners),
// BatchJournal (journal writes of many runs in one transaction).
type Store interface {
	RunnerStore
	Inspector
}

// RunnerStore is what the engine needs: trigger state, the queue and the
// journal. Every method is safe for concurrent use, by goroutines of one
// process and by several processes sharing the store.
type RunnerStore interface {
	TriggerStore
	RunQueue
	Journal
	Close() error
}

// ErrLeaseLost is returned (wrapped in a *LeaseLostError) when a runner
// records steps or an outcome for a run it no longer holds: its lease
// ended and the run was given back or taken over. The runner must stop
// acting on the run; the store changed nothing.
var ErrLeaseLost = errors.New("the run's lease was lost")

// LeaseLostError says which lease was refused.
type LeaseLostError struct {
	RunID int64
	Token int64
}

func (e *LeaseLostError) Error() string {
	return fmt.Sprintf("run %d: lease %d is no longer held: the run was given back or taken over by another runner", e.RunID, e.Token)
}

// Is makes errors.Is(err, ErrLeaseLost) true.
func (e *LeaseLostError) Is(target error) bool { return target == ErrLeaseLost }

// Lease names one claim of one run: the fencing token that the store
// checks before it records anything for the run.
type Lease struct {
	RunID int64
	// Token grows at every claim of the run: only the latest claim's
	// token is accepted.
	Token int64
}

// TriggerStore keeps what trigger sources need between polls.
type TriggerStore interface {
	// Cursor returns the recipe's trigger cursor, "" before the first poll.
	Cursor(ctx context.Context, recipe string) (string, error)
	// PriorStates returns the remembered state of each known subject.
	PriorStates(ctx context.Context, recipe string, subjects []string) (map[string]string, error)
	// Advance stores a new cursor (when Cursor is non-nil), the per-subject
	// states and the events, and enqueues one run per new event, all in
	// one transaction: either all of it is durable or none. An event whose
	// ID the recipe has seen (in this call or an earlier one) is dropped
	// and reported with RunID 0. A new event with Skipped set is recorded
	// as a finished run with status skipped (Condition false and its
	// Values kept); a new event with a fingerprint that echoes a write of
	// the recipe or of a recipe in the writer's chain (see Journal.Record)
	// is recorded as suppressed. Neither is ever claimed.
	Advance(ctx context.Context, recipe string, adv Advance) ([]Enqueued, error)
	// LeadPoll takes or keeps the right to poll recipe's trigger for
	// owner until the given time, and reports whether owner holds it. It
	// is granted when nobody holds it, when the holder's lease ended, or
	// to the holder itself: one runner polls a trigger at a time and
	// another takes over within a lease period when it dies.
	LeadPoll(ctx context.Context, recipe, owner string, until time.Time) (bool, error)
}

// Advance is one step forward of a trigger.
type Advance struct {
	Cursor *string
	States []SubjectState
	Events []NewEvent
	// Claim, when set, asks the store to claim for Claim.Owner, in the
	// same transaction, each new queued run that is claimable (no earlier
	// run of its ordering key is queued or running, this page's included):
	// the runner that polled a page runs it without a claim of its own
	// (claims fused into the advance). Such a run's Enqueued has Status
	// running and Run set, as Claim would return it (Attempts 1, Echo and
	// chain as at a claim, Data the event's). Claim.Recipes and
	// Claim.Limit are not read. A store that does not claim at advance
	// leaves Run nil; the runs are then claimed from the queue as usual.
	Claim *ClaimRequest
	// Encoded is what the store's AdvanceEncoder made of this Advance
	// before its turn (nil: nothing); only that store reads it.
	Encoded any
}

// AdvanceEncoder is an optional TriggerStore ability: it encodes what an
// Advance will write (its events' keys and intents) ahead of the call,
// so that a polled page is encoded while the page before it commits
// rather than after. An error leaves Encoded unset: Advance then encodes
// again, and reports it.
type AdvanceEncoder interface {
	EncodeAdvance(recipe string, adv *Advance) error
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
	// nor as a run (its Data, when set, is only for an echo, below; else
	// Encode gives it): the store adds it to the count of
	// the Advance's skips (a SkipPage) and, when it carries Values (what
	// the condition read; the engine sets them on the first SkipSample of
	// a page), keeps it as a sample. Its Enqueued has RunID 0 and Status
	// RunSkipped. Being forgotten, an event skipped twice is counted twice.
	Skipped bool
	Values  json.RawMessage
	// Encode returns the data of a skipped event whose Data is not set
	// (not encoded up front): the store calls it for a skipped event that
	// is an echo, which it records as a suppressed run like any echo. A
	// skipped event read as JSON carries that JSON as its Data instead.
	Encode func() (json.RawMessage, error)
	// Intent, when set, is the journal line of the run's first step, a
	// write about to be sent (StepStarted): a store that claims the run
	// with the page (Advance.Claim) journals it for the run (RunID set to
	// the run's) in the same transaction and says so in Enqueued.Journaled,
	// so that the claim and the intent cost one commit. Otherwise it is
	// ignored, and the engine journals the intent itself.
	Intent *StepRecord
}

// Enqueued reports what became of one NewEvent: RunID is 0 for a
// duplicate; Status is the new run's (queued, skipped or suppressed; or
// running, claimed with the page).
type Enqueued struct {
	EventID string
	RunID   int64
	Status  string
	// Run is the run claimed with the page (Advance.Claim), else nil.
	Run *ClaimedRun
	// Journaled reports that the event's Intent was journaled for Run.
	Journaled bool
}

// RunQueue hands queued runs to workers.
type RunQueue interface {
	// Claim marks up to Limit claimable runs of the named recipes as
	// running for owner until the lease ends, in arrival order, each
	// with a new fencing token (greater than any earlier claim's of the
	// run). A run is claimable when it is queued (or running with a lease
	// ended before req.Now) and no earlier run with its ordering key is
	// queued or running: runs of one key go one at a time, in arrival
	// order, across recipes and runners. Two concurrent claims never
	// return the same run. A run whose event echoes a write (see
	// Journal.Record) is returned with Echo set, and inherits the
	// writer's chain.
	Claim(ctx context.Context, req ClaimRequest) ([]*ClaimedRun, error)
	// RenewLeases extends until the given time the lease of each run of
	// runs that owner holds (running, owned by owner), and returns the IDs
	// of those: a run the runner works on that is not among them was taken
	// from it, and the runner stops acting on it. Only the named runs are
	// renewed: a run owner holds that it does not name (one whose claim
	// committed but whose answer was lost, one it gave up without being
	// able to say so) is not worked on by owner. Such a run whose lease
	// ends before releaseBefore is put back in the queue by the renewal,
	// at once: any runner, owner included, claims it again under a new
	// fencing token, and owner's lease of it is refused. The runner
	// vouches for that bound: every claim it asked for that could lease a
	// run until releaseBefore or later has been answered and its runs are
	// named, or it will never act on them (its answer was lost). Any other
	// unnamed run (its lease ends at releaseBefore or later: a claim whose
	// answer may still be on its way; or every unnamed run when
	// releaseBefore is zero) keeps its lease, which ends, and is then
	// claimable again. releaseBefore is at most until. A store that holds
	// runs together under one lease (SQLite's page claims) must not let a
	// named run keep an unnamed one alive.
	RenewLeases(ctx context.Context, owner string, until time.Time, runs []int64, releaseBefore time.Time) ([]int64, error)
	// ReleaseOwner puts every run owner holds back in the queue (their
	// leases are then refused). A runner started again under an
	// operator's fixed name calls it: its previous, dead self's runs are
	// resumed at once.
	ReleaseOwner(ctx context.Context, owner string) (int, error)
	// Join records owner as a live runner for as long as this store
	// handle stays open (until Leave or Close), with a proof of life the
	// operating system or the database drops when the process dies, and
	// puts back in the queue the runs of owners whose proof is gone:
	// they are resumed without waiting for their leases to end. Joining
	// with an owner that is live elsewhere fails.
	Join(ctx context.Context, r RunnerInfo) (released int, err error)
	// Leave ends owner's membership (its runs stay leased).
	Leave(ctx context.Context, owner string) error
	// Backlog counts the runs of the named recipes that are queued or
	// running, by any runner: pollers wait while it is high.
	Backlog(ctx context.Context, recipes []string) (int, error)
}

// RunnerInfo describes a runner.
type RunnerInfo struct {
	Owner   string    `json:"owner"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Seen is the runner's last renewal.
	Seen time.Time `json:"seen"`
	// Filled in by RunnerLister: the runs it holds and the triggers it
	// polls.
	Runs    int      `json:"runs"`
	Polling []string `json:"polling,omitempty"`
	// Gone is set when the store can tell the runner's process has ended
	// (SQLite: its proof-of-life lock is free) though its row remains
	// until the next runner starts and takes over what it held.
	Gone bool `json:"gone,omitempty"`
}

// RunnerLister is an optional Store ability: the live runners, for
// `memberflow runners`.
type RunnerLister interface {
	Runners(ctx context.Context) ([]RunnerInfo, error)
}

// Waker is an optional RunnerStore ability: a signal when work may have
// been queued by another runner (Postgres LISTEN/NOTIFY), so that idle
// runners need not poll the queue often.
type Waker interface {
	Wakeups() <-chan struct{}
}

// StateCopier is an optional Store ability: the trigger state (cursors,
// per-subject states) and the remembered writes, out of one store and
// into another. `memberflow store copy` moves a SQLite store's state to
// Postgres with it; a dry run on Postgres copies it into a scratch SQLite
// store. Runs and journals are not copied: they are history.
type StateCopier interface {
	ExportState(ctx context.Context) (*TriggerState, error)
	// ImportState adds the state, replacing cursors and subject states
	// of the same recipe and subject, in one transaction.
	ImportState(ctx context.Context, st *TriggerState) error
}

// TriggerState is what StateCopier moves. Imported writes belong to no
// run: they are echoes for every recipe.
type TriggerState struct {
	Cursors  []CursorState  `json:"cursors"`
	Subjects []RecipeState  `json:"subjects"`
	Writes   []WrittenState `json:"writes"`
}

// CursorState is one recipe's trigger cursor.
type CursorState struct{ Recipe, Cursor string }

// RecipeState is one recipe's memory of one subject.
type RecipeState struct{ Recipe, Subject, State string }

// WrittenState is a record state memberflow wrote.
type WrittenState struct {
	Connector, Subject, Fingerprint string
	Written                         time.Time
}

// Snapshotter is an optional Store ability: a consistent copy of the
// store at path, as a SQLite file, for dry runs that must not change the
// real store.
type Snapshotter interface {
	Snapshot(ctx context.Context, path string) error
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
	// Token is this claim's fencing token (see Lease).
	Token int64
	Data  json.RawMessage
	// Echo is true when the event's (Connector, Subject, Fingerprint) is
	// the latest record memberflow itself wrote for that subject.
	Echo bool

	// The engine's, while it works on the run: cancelled when the lease
	// is lost.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// waiting is set while the run only waits to retry a step (nil for
	// runs the engine did not claim through dispatch).
	waiting *atomic.Bool
	// leased is when, on the engine's clock (Unix nanoseconds), the
	// run's lease was last set: by its claim, then by each renewal that
	// held it (nil for runs the engine did not claim through dispatch).
	leased *atomic.Int64
}

// Journal records what a run did, step by step.
type Journal interface {
	// Steps returns a run's journal, in step order.
	Steps(ctx context.Context, runID int64) ([]StepRecord, error)
	// Record durably writes step records of the leased run (one line per
	// step index: a later record of an index replaces the earlier), the
	// echoes of their writes and, when fin is non-nil, the run's outcome,
	// in one transaction, and returns after the commit. It refuses with a
	// *LeaseLostError, writing nothing, unless the run is running under
	// lease.Token. A fin with status queued gives the run back (it is
	// claimable again at once); another status ends it.
	//
	// Each Wrote record of a succeeded step is remembered with the run
	// that wrote it: an event of that (connector, subject, fingerprint)
	// is an echo for the writer's recipe and every recipe of its chain
	// (the recipes whose writes led to the writer), and every state ever
	// written is kept.
	Record(ctx context.Context, lease Lease, steps []StepRecord, fin *Completion) error
}

// BatchJournal is an optional RunnerStore ability: the journal writes of
// many runs in one call and one transaction, so that a busy runner pays
// one commit (and, on a server, one round trip) for a batch of writes
// rather than one each. The engine sends its Record calls through it
// when the store has it, batching the calls that arrive while one batch
// is being written (unless the store is a GroupCommitter).
type BatchJournal interface {
	// RecordMany does what Record does for each write, in order, and
	// returns after the commit with one error per write (nil: the write
	// is durable). Each write is all or nothing and stands alone: one
	// refused, for a lost lease (a *LeaseLostError) or any other reason,
	// writes nothing and the others are still written. A later write of
	// the same run sees the earlier ones: after a fin, the run's lease is
	// no longer held.
	RecordMany(ctx context.Context, writes []JournalWrite) []error
}

// GroupCommitter is an optional BatchJournal ability: the store already
// writes the Record calls of concurrent callers together (SQLite's
// committer merges those of one transaction into one multi-row write, as
// RecordMany does), so the engine calls Record as each write comes:
// queueing writes behind a batch in flight would only add a wait, and
// measured, cost CPU (docs/benchmarks.md).
type GroupCommitter interface {
	GroupsCommits() bool
}

// JournalWrite is one Record call: the leased run's step records and,
// when Fin is non-nil, its outcome.
type JournalWrite struct {
	Lease Lease
	Steps []StepRecord
	Fin   *Completion
}

// Lease returns the claim's fencing lease.
func (c *ClaimedRun) Lease() Lease { return Lease{RunID: c.ID, Token: c.Token} }

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

// Inspector serves `memberflow runs` and `memberflow dlq`: what
// operators read, and the replay of dead letters.
type Inspector interface {
	// ListRuns lists the runs f selects, newest (highest ID) first. An
	// unknown status is an error.
	ListRuns(ctx context.Context, f RunFilter) ([]RunInfo, error)
	// GetRun returns a run's audit; an unknown ID is ErrNoRun.
	GetRun(ctx context.Context, id int64) (*RunDetail, error)
	// Replay puts a dead run back in the queue; its failed step is run
	// again and the steps before it are not (an in-doubt step is kept, so
	// that it is settled again). An unknown ID is ErrNoRun; a run that is
	// not dead is refused.
	Replay(ctx context.Context, id int64) error
	// ReplayAll replays every dead run and returns how many.
	ReplayAll(ctx context.Context) (int, error)
}

// RunFilter selects runs; zero fields match all. Limit 0 means 100.
type RunFilter struct {
	Recipe  string
	Status  string
	Subject string
	// Since and Until bound the run's creation time: Since <= created <
	// Until.
	Since, Until time.Time
	// Before pages: only runs with an ID below it (the last ID of the
	// previous page).
	Before int64
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
