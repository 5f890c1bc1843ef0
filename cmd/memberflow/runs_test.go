package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// The -update flag may be declared by another test of this package too.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files")
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "runs", name)
	if flag.Lookup("update").Value.String() == "true" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func sampleRuns() (list []engine.RunInfo, dead *engine.RunDetail) {
	t0 := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	end := t0.Add(42 * time.Millisecond)
	yes := true
	list = []engine.RunInfo{
		{ID: 3, Recipe: "certificate-for-new-members", EventID: "user/u3/created", Subject: "user/u3", Status: engine.RunDead, Attempts: 1,
			Error:   `recipe "certificate-for-new-members": step "certificate" (accredible.upsert_credential): accredible: HTTP 422 (credential_invalid): recipient email is invalid`,
			Created: t0, Finished: &end, FailedStep: "certificate"},
		{ID: 2, Recipe: "certificate-for-new-members", EventID: "user/u2/created", Subject: "user/u2", Status: engine.RunSkipped, Created: t0, Finished: &end},
		{ID: 1, Recipe: "certificate-for-new-members", EventID: "user/u1/created", Subject: "user/u1", Status: engine.RunSucceeded, Attempts: 1, Created: t0, Finished: &end},
	}
	dead = &engine.RunDetail{RunInfo: list[0],
		Event:     json.RawMessage(`{"id":"u3","email":"not-an-email","membershipStatus":"eligible"}`),
		Condition: &yes, Values: json.RawMessage(`{"trigger.email":"not-an-email","trigger.membershipStatus":"eligible"}`),
		Steps: []engine.StepRecord{
			{RunID: 3, Index: 0, StepID: "member", Action: "members.get_user", Status: engine.StepSucceeded, Attempts: 1,
				Input: json.RawMessage(`{"userId":"u3"}`), Output: json.RawMessage(`{"id":"u3","email":"not-an-email"}`),
				Started: t0.Add(time.Millisecond), Finished: t0.Add(4 * time.Millisecond)},
			{RunID: 3, Index: 1, StepID: "certificate", Action: "accredible.upsert_credential", Status: engine.StepFailed, Attempts: 1,
				Input:   json.RawMessage(`{"group_id":100001,"recipient":{"email":"not-an-email","name":"U Three"}}`),
				Output:  json.RawMessage(`{"code":"credential_invalid","message":"recipient email is invalid","status":422}`),
				Error:   `accredible: HTTP 422 (credential_invalid): recipient email is invalid`,
				Started: t0.Add(5 * time.Millisecond), Finished: t0.Add(40 * time.Millisecond)},
		}}
	return list, dead
}

func TestRunsOutputGolden(t *testing.T) {
	list, dead := sampleRuns()
	for _, tc := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"list.txt", func(b *bytes.Buffer) error { return writeRuns(b, "text", list) }},
		{"list.json", func(b *bytes.Buffer) error { return writeRuns(b, "json", list) }},
		{"empty.json", func(b *bytes.Buffer) error { return writeRuns(b, "json", nil) }},
		{"show.txt", func(b *bytes.Buffer) error { return writeRun(b, "text", dead) }},
		{"show.json", func(b *bytes.Buffer) error { return writeRun(b, "json", dead) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}
