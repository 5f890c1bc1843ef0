package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/internal/sandbox"
)

// requestLines renders recorded requests one a line, headers sorted, in
// sorted order: the replay's workers interleave as the engine's did not.
func requestLines(reqs []sandbox.Recorded) []string {
	out := make([]string, 0, len(reqs))
	for _, r := range reqs {
		var h []string
		for k, v := range r.Header {
			h = append(h, fmt.Sprintf("%s=%q", k, v))
		}
		sort.Strings(h)
		out = append(out, fmt.Sprintf("%s %s %s %s", r.Method, r.Target, strings.Join(h, " "), r.Body))
	}
	sort.Strings(out)
	return out
}

// TestCeilingReplaysWhatWasRecorded runs the benchmark's backfill with
// the engine while the sandbox records its requests, then the ceiling
// while the sandbox records again, and compares the two recordings
// request by request (method, target and query, every header the client
// set, body): a replay that sent one request more, less or different
// fails here. The figures bench --ceiling compares agree too.
func TestCeilingReplaysWhatWasRecorded(t *testing.T) {
	const members = 230 // three pages, the last one short
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := startSandbox(t, members)

	res, err := Run(ctx, Options{SandboxURL: base, Concurrency: 4, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Check(); err != nil {
		t.Fatal(err)
	}
	if res.Eligible < 20 {
		t.Fatalf("only %d eligible members: the comparison would say little", res.Eligible)
	}
	var counted int64
	for _, n := range res.Requests {
		counted += n
	}
	if int64(len(res.Recorded)) != counted || res.RecordLost != 0 {
		t.Fatalf("recorded %d requests (%d lost), the sandbox counted %d", len(res.Recorded), res.RecordLost, counted)
	}
	for _, r := range res.Recorded {
		if len(r.Header) == 0 || (r.Method != "GET" && len(r.Body) == 0) {
			t.Fatalf("recorded without its headers or body: %s %s", r.Method, r.Target)
		}
	}

	if err := startRecording(ctx, base); err != nil {
		t.Fatal(err)
	}
	c, err := RunCeiling(ctx, CeilingOptions{SandboxURL: base, Concurrency: 4, Backfill: res})
	if err != nil {
		t.Fatal(err)
	}
	again, err := stopRecording(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	want, got := requestLines(res.Recorded), requestLines(again.Requests)
	if !slices.Equal(got, want) {
		extra, missing := diffLines(got, want), diffLines(want, got)
		t.Errorf("the replay sent %d requests, the engine %d;\nonly the replay:\n\t%s\nonly the engine:\n\t%s", len(got), len(want),
			strings.Join(extra, "\n\t"), strings.Join(missing, "\n\t"))
	}
	if c.Replayed != int64(len(res.Recorded)) || c.Members != res.Members {
		t.Errorf("ceiling: %d replayed, %d members; recorded %d, members %d", c.Replayed, c.Members, len(res.Recorded), res.Members)
	}
	if !maps.Equal(c.Requests, res.Requests) {
		t.Errorf("requests by route: ceiling %v, engine %v", c.Requests, res.Requests)
	}
	// Three pages, then a certificate issued (by batches) and written
	// back (one request each) per eligible member, whatever requests that
	// takes: both send the same.
	if c.RequestsPerMember != res.RequestsPerMember || res.RequestsPerMember <= float64(3+res.Eligible)/members {
		t.Errorf("requests per member: engine %v, ceiling %v", res.RequestsPerMember, c.RequestsPerMember)
	}
	res.AddCeiling(c)
	if err := res.Check(); err != nil {
		t.Errorf("engine and ceiling side by side: %v", err)
	}
}

// diffLines lists the lines of a not in b, as multisets.
func diffLines(a, b []string) []string {
	left := map[string]int{}
	for _, l := range b {
		left[l]++
	}
	var out []string
	for _, l := range a {
		if left[l] > 0 {
			left[l]--
			continue
		}
		out = append(out, l)
	}
	return out
}

func TestCeilingNeedsARecording(t *testing.T) {
	base := startSandbox(t, 5)
	_, err := RunCeiling(context.Background(), CeilingOptions{SandboxURL: base, Backfill: &Result{}})
	if err == nil || !strings.Contains(err.Error(), "no recorded requests") {
		t.Fatalf("a ceiling without a recording: %v", err)
	}
}

func TestCheckComparesTheCeiling(t *testing.T) {
	reqs := map[string]int64{"members GET /users/search": 1, "certificates POST /credentials": 4}
	good := Result{SandboxMembers: 10, Members: 10, Eligible: 4, Skipped: 6, Certificates: 4, MemberUpdates: 4, Requests: reqs}
	good.AddCeiling(&CeilingResult{Members: 10, Replayed: 5, Requests: maps.Clone(reqs)})
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	other := good
	other.AddCeiling(&CeilingResult{Members: 10, Replayed: 6, Requests: map[string]int64{"members GET /users/search": 2, "certificates POST /credentials": 4}})
	if err := other.Check(); err == nil || !strings.Contains(err.Error(), "other requests than the engine") {
		t.Errorf("different requests: %v", err)
	}
	lost := good
	lost.AddCeiling(&CeilingResult{Members: 10, Replayed: 5, Lost: 3, Requests: maps.Clone(reqs)})
	if err := lost.Check(); err == nil || !strings.Contains(err.Error(), "did not keep 3") {
		t.Errorf("a recording short of requests: %v", err)
	}
}
