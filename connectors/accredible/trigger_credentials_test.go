package accredible

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// memPrior is the engine's per-subject memory, in memory.
type memPrior map[string]string

func (m memPrior) Lookup(_ context.Context, subjects []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range subjects {
		if v, ok := m[s]; ok {
			out[s] = v
		}
	}
	return out, nil
}

// poll runs one poll and keeps its states, as the engine does.
func (e *env) poll(t *testing.T, trigger string, params map[string]any, start connectors.Start, cursor string) *connectors.PollResult {
	t.Helper()
	res, err := testSpec.Trigger(trigger).Poll(context.Background(), e.c, connectors.PollRequest{
		Params: params, Cursor: cursor, Start: start, Prior: e.prior, Now: e.clk.now(),
	})
	if err != nil {
		t.Fatalf("poll %s: %v", trigger, err)
	}
	for _, s := range res.States {
		e.prior[s.Subject] = s.State
	}
	return res
}

// drain polls while More, collecting events.
func (e *env) drain(t *testing.T, trigger string, params map[string]any, cursor string) ([]connectors.Event, string) {
	t.Helper()
	var events []connectors.Event
	for range 1000 {
		res := e.poll(t, trigger, params, connectors.StartNow, cursor)
		events = append(events, res.Events...)
		cursor = res.Cursor
		if !res.More {
			return events, cursor
		}
	}
	t.Fatal("poll never settled")
	return nil, ""
}

func subjects(events []connectors.Event) []string {
	var s []string
	for _, ev := range events {
		s = append(s, ev.Subject)
	}
	sort.Strings(s)
	return s
}

func (e *env) mutate(t *testing.T, kind string, count int, args map[string]any) []int64 {
	t.Helper()
	res, err := e.sb.Mutate(sandboxkit.Mutation{Kind: kind, Count: count, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"issued", "updated"} {
		if ids, ok := res[k].([]int64); ok {
			return ids
		}
	}
	return nil
}

func wantSubjects(ids []int64) []string {
	var s []string
	for _, id := range ids {
		s = append(s, fmt.Sprintf("credential/%d", id))
	}
	sort.Strings(s)
	return s
}

func TestCredentialCreatedStartNow(t *testing.T) {
	e := setup(t)
	e.mutate(t, "issue_credential", 3, nil)
	first := e.poll(t, triggerCreated, nil, connectors.StartNow, "")
	if len(first.Events) != 0 {
		t.Fatalf("start now emitted %d events", len(first.Events))
	}
	e.clk.add(time.Second)
	ids := e.mutate(t, "issue_credential", 2, nil)
	events, cursor := e.drain(t, triggerCreated, nil, first.Cursor)
	if fmt.Sprint(subjects(events)) != fmt.Sprint(wantSubjects(ids)) {
		t.Errorf("created %v, want %v", subjects(events), wantSubjects(ids))
	}
	// An update of an old credential is not a creation.
	e.clk.add(time.Second)
	e.mutate(t, "update_credential", 5, nil)
	events, _ = e.drain(t, triggerCreated, nil, cursor)
	if len(events) != 0 {
		t.Errorf("updates reported as created: %v", subjects(events))
	}
}

func TestCredentialCreatedFromBeginning(t *testing.T) {
	e := setup(t)
	ids := e.mutate(t, "issue_credential", 4, nil)
	res := e.poll(t, triggerCreated, nil, connectors.StartBeginning, "")
	if fmt.Sprint(subjects(res.Events)) != fmt.Sprint(wantSubjects(ids)) || res.Total != 4 || res.More {
		t.Errorf("backfill %v total %d more %v", subjects(res.Events), res.Total, res.More)
	}
	for _, ev := range res.Events {
		if ev.ID != ev.Subject+"/created" || ev.Data["url"] == "" || ev.Data["group_id"] == nil {
			t.Errorf("event %+v", ev)
		}
	}
}

func TestCredentialUpdated(t *testing.T) {
	e := setup(t)
	e.mutate(t, "issue_credential", 10, map[string]any{"group_id": 100002})
	first := e.poll(t, triggerUpdated, nil, connectors.StartNow, "")
	e.clk.add(time.Minute)
	ids := e.mutate(t, "update_credential", 3, nil)
	events, cursor := e.drain(t, triggerUpdated, nil, first.Cursor)
	if fmt.Sprint(subjects(events)) != fmt.Sprint(wantSubjects(ids)) {
		t.Fatalf("updated %v, want %v", subjects(events), wantSubjects(ids))
	}
	// Polling again from an older cursor sees the same changes with the
	// same event ids, so the engine runs them once.
	again, _ := e.drain(t, triggerUpdated, nil, first.Cursor)
	ids1, ids2 := eventIDs(events), eventIDs(again)
	for id := range ids2 {
		if !ids1[id] {
			t.Errorf("overlapping poll made a new event id %s", id)
		}
	}
	// Nothing changed since: nothing to report.
	if events, _ := e.drain(t, triggerUpdated, nil, cursor); len(events) != 0 {
		t.Errorf("resumed cursor reported %d events", len(events))
	}
}

func eventIDs(evs []connectors.Event) map[string]bool {
	m := map[string]bool{}
	for _, ev := range evs {
		m[ev.ID] = true
	}
	return m
}

func TestUpdatedEchoOfOwnWrite(t *testing.T) {
	e := setup(t)
	created := e.run(t, "create_credential", map[string]any{"recipient": member(20), "group_id": 100001})
	first := e.poll(t, triggerUpdated, nil, connectors.StartNow, "")
	e.clk.add(time.Minute)
	res := e.run(t, "expire_credential", map[string]any{"id": out(created)["id"]})
	events, _ := e.drain(t, triggerUpdated, nil, first.Cursor)
	if len(events) != 1 || events[0].Fingerprint != res.Wrote[0].State {
		t.Errorf("event fingerprint %v, write %v", events, res.Wrote)
	}
}

func TestPollGroupFilter(t *testing.T) {
	e := setup(t)
	e.mutate(t, "issue_credential", 3, map[string]any{"group_id": 100001})
	ids := e.mutate(t, "issue_credential", 2, map[string]any{"group_id": 100003})
	res := e.poll(t, triggerCreated, map[string]any{"group_id": 100003}, connectors.StartBeginning, "")
	if fmt.Sprint(subjects(res.Events)) != fmt.Sprint(wantSubjects(ids)) {
		t.Errorf("group filter: %v", subjects(res.Events))
	}
}

// With the service's clock frozen, hundreds of credentials share one
// updated_at: every one is reported exactly once across pages.
func TestPollEqualTimestamps(t *testing.T) {
	e := setup(t)
	first := e.poll(t, triggerCreated, nil, connectors.StartNow, "")
	e.clk.add(time.Second)
	ids := e.mutate(t, "issue_credential", 250, nil) // all at one instant
	events, cursor := e.drain(t, triggerCreated, nil, first.Cursor)
	if len(events) != 250 || len(eventIDs(events)) != 250 {
		t.Fatalf("%d events (%d distinct), want 250", len(events), len(eventIDs(events)))
	}
	if fmt.Sprint(subjects(events)) != fmt.Sprint(wantSubjects(ids)) {
		t.Error("wrong credentials reported")
	}
	// The cursor at that instant holds the ids seen, so nothing repeats,
	// and one more at the same instant is still found.
	more := e.mutate(t, "issue_credential", 1, nil)
	events, _ = e.drain(t, triggerCreated, nil, cursor)
	if fmt.Sprint(subjects(events)) != fmt.Sprint(wantSubjects(more)) {
		t.Errorf("after the burst: %v, want %v", subjects(events), wantSubjects(more))
	}
}

func TestPollBadCursor(t *testing.T) {
	e := setup(t)
	_, err := testSpec.Trigger(triggerCreated).Poll(context.Background(), e.c, connectors.PollRequest{Cursor: "{not json", Prior: e.prior})
	if err == nil {
		t.Fatal("a broken cursor was accepted")
	}
}

// Starting on an empty account, everything issued later is new, whatever
// the two clocks say.
func TestCredentialCreatedStartNowEmpty(t *testing.T) {
	e := setup(t)
	first := e.poll(t, triggerCreated, nil, connectors.StartNow, "")
	if len(first.Events) != 0 || first.Total != 0 {
		t.Fatalf("first poll: %+v", first)
	}
	e.clk.add(-time.Hour) // the service's clock is behind ours
	ids := e.mutate(t, "issue_credential", 2, nil)
	events, _ := e.drain(t, triggerCreated, nil, first.Cursor)
	if fmt.Sprint(subjects(events)) != fmt.Sprint(wantSubjects(ids)) {
		t.Errorf("created %v, want %v", subjects(events), wantSubjects(ids))
	}
}

// TestCredentialChanged: one trigger sees credentials issued (by anyone)
// and credentials changed, with the IDs the two single triggers give.
func TestCredentialChanged(t *testing.T) {
	e := setup(t)
	e.mutate(t, "issue_credential", 4, nil)
	first := e.poll(t, triggerChanged, nil, connectors.StartNow, "")
	if len(first.Events) != 0 {
		t.Fatalf("start now emitted %d events", len(first.Events))
	}
	e.clk.add(time.Minute)
	issued := e.mutate(t, "issue_credential", 2, nil)
	e.clk.add(time.Minute)
	updated := e.mutate(t, "update_credential", 2, nil)
	events, _ := e.drain(t, triggerChanged, nil, first.Cursor)
	want := map[string]bool{}
	for _, s := range wantSubjects(issued) {
		want[s+"/created"] = true
	}
	got := eventIDs(events)
	for id := range want {
		if !got[id] {
			t.Errorf("no creation event %s in %v", id, got)
		}
	}
	updates := 0
	for id := range got {
		if !want[id] {
			updates++
		}
	}
	if len(events) != len(issued)+len(updated) || updates != len(updated) {
		t.Errorf("events %v: want %d creations and %d updates", got, len(issued), len(updated))
	}
}

// TestPollWindowKeepsADayOfOverlap: the search filters updated_at by day,
// so each scan starts the day before the newest change seen: a change
// made the day before is read again, older credentials are not.
func TestPollWindowKeepsADayOfOverlap(t *testing.T) {
	e := setup(t)
	e.mutate(t, "issue_credential", 2, nil)
	_, cursor := e.drain(t, triggerUpdated, nil, e.poll(t, triggerUpdated, nil, connectors.StartBeginning, "").Cursor)
	var cur pollCursor
	if err := json.Unmarshal([]byte(cursor), &cur); err != nil {
		t.Fatal(err)
	}
	if want := t0.AddDate(0, 0, -1).Format(dayLayout); cur.Window != want {
		t.Fatalf("window %q after a scan of %s, want the day before: %q", cur.Window, t0.Format(dayLayout), want)
	}
	e.clk.add(72 * time.Hour)
	newer := e.mutate(t, "issue_credential", 1, nil)
	e.clk.add(time.Minute)
	updated := e.mutate(t, "update_credential", 1, nil)
	events, cursor := e.drain(t, triggerUpdated, nil, cursor)
	if fmt.Sprint(subjects(events)) != fmt.Sprint(wantSubjects(updated)) {
		t.Errorf("updated %v, want %v", subjects(events), wantSubjects(updated))
	}
	if err := json.Unmarshal([]byte(cursor), &cur); err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(72*time.Hour).AddDate(0, 0, -1).Format(dayLayout); cur.Window != want {
		t.Errorf("window %q, want %q (the day before credential %v)", cur.Window, want, newer)
	}
	res := e.poll(t, triggerUpdated, nil, connectors.StartNow, cursor)
	if res.Total != 2 || len(res.Events) != 0 {
		t.Errorf("the next scan reads %d credentials (%d events), want the 2 changed in the window, no event", res.Total, len(res.Events))
	}
}

// TestPollWritesOnlyChangedStates: a poll remembers the state of each
// credential it has not seen, or that changed; polling unchanged
// credentials again writes no state.
func TestPollWritesOnlyChangedStates(t *testing.T) {
	e := setup(t)
	e.mutate(t, "issue_credential", 5, nil)
	states := func(cursor string) (int, string) {
		n := 0
		for range 100 {
			res := e.poll(t, triggerChanged, nil, connectors.StartNow, cursor)
			n += len(res.States)
			cursor = res.Cursor
			if !res.More {
				return n, cursor
			}
		}
		t.Fatal("poll never settled")
		return 0, ""
	}
	if n, _ := states(""); n != 5 {
		t.Fatalf("the first poll wrote %d states for 5 credentials", n)
	}
	// From the start again: the same five, unchanged.
	if n, _ := states(""); n != 0 {
		t.Errorf("polling 5 unchanged credentials again wrote %d states, want 0", n)
	}
	e.clk.add(time.Minute)
	e.mutate(t, "update_credential", 2, nil)
	if n, _ := states(""); n != 2 {
		t.Errorf("after 2 credentials changed, the poll wrote %d states, want 2", n)
	}
}
