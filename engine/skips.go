package engine

import (
	"context"
	"encoding/json"
	"time"
)

// SkipSample is how many of a page's skipped events keep the values the
// recipe's condition read: enough to explain a skip in the audit, few
// enough that a skip costs about a byte of store (issue 14: a backfill
// where 80 % of the records are rejected stored a run row for each).
const SkipSample = 3

// SkipPage is what the store keeps of the events one Advance skipped:
// their count and a sample.
type SkipPage struct {
	ID      int64          `json:"id"`
	Recipe  string         `json:"recipe"`
	Count   int            `json:"count"`
	Sample  []SkippedEvent `json:"sample,omitempty"`
	Created time.Time      `json:"created"`
}

// SkippedEvent is one skipped event and what the condition read of it.
type SkippedEvent struct {
	EventID string          `json:"event_id"`
	Subject string          `json:"subject,omitempty"`
	Values  json.RawMessage `json:"values,omitempty"`
}

// SkipLister is implemented by stores that keep skip pages, for
// `memberflow runs skipped`.
type SkipLister interface {
	// ListSkips returns skip pages, newest first; zero fields of the
	// filter match all (Status is ignored), Limit 0 means 100.
	ListSkips(ctx context.Context, f RunFilter) ([]SkipPage, error)
}

// Prune is what `memberflow store prune` removes: finished runs (not dead
// letters, which wait for a replay) finished before Before, their step
// journals and their events' data, and skip pages older than Before. The
// events' IDs stay, so that an event seen again is still a duplicate:
// pruning never makes a record run twice.
type Prune struct {
	Before time.Time
	// Vacuum rewrites the database file afterwards to give the space back.
	Vacuum bool
}

// Pruned counts what a prune removed.
type Pruned struct {
	Runs      int64 `json:"runs"`
	Steps     int64 `json:"steps"`
	Events    int64 `json:"events_cleared"`
	SkipPages int64 `json:"skip_pages"`
	// BytesBefore and BytesAfter are the store's size (with its log).
	BytesBefore int64 `json:"bytes_before"`
	BytesAfter  int64 `json:"bytes_after"`
}

// Pruner is implemented by stores with retention.
type Pruner interface {
	Prune(ctx context.Context, p Prune) (*Pruned, error)
}
