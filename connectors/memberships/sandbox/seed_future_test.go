package sandbox

import (
	"testing"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// Nothing seeded is dated after the seed's now: a record from the future
// would move an incremental poller's cursor past later real changes.
func TestSeedDatesNothingInTheFuture(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s := New(sandboxkit.Options{})
	s.Seed(sandboxkit.Seed{Members: 2000, Seed: 11, Now: now})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.st.users {
		if u.dateAdded > now.UnixNano() || u.dateUpdated > now.UnixNano() {
			t.Fatalf("user %s dated after now: added %v, updated %v", u.id, time.Unix(0, u.dateAdded), time.Unix(0, u.dateUpdated))
		}
	}
	for _, p := range s.st.payments {
		if p.createdAt > now.UnixNano() || p.updatedAt > now.UnixNano() {
			t.Fatalf("payment %s dated after now: %v", p.id, time.Unix(0, p.createdAt))
		}
	}
}
