package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/memberflow/memberflow/connectors/files"
)

func TestGenerateMembersIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	ka, err := GenerateMembers(&a, 1000, 7)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := GenerateMembers(&b, 1000, 7)
	if a.String() != b.String() || ka != kb {
		t.Fatal("the same seed generated other members")
	}
	// About 18 % are kept: 60 % eligible, 30 % of those score >= 70.
	if ka < 120 || ka > 240 {
		t.Fatalf("%d of 1000 kept, want about 180", ka)
	}
	if n := strings.Count(a.String(), "\n"); n != 1000 {
		t.Fatalf("%d lines", n)
	}
}

// TestPipelineWritesEveryKeptMemberOnce runs the file job end to end on a
// small file, twice the trigger's batch, and checks its figures.
func TestPipelineWritesEveryKeptMemberOnce(t *testing.T) {
	res, err := RunPipeline(context.Background(), PipelineOptions{Lines: 3000, Batch: 1000, Concurrency: 4, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Check(); err != nil {
		t.Fatal(err)
	}
	if res.Written == 0 || res.Skipped == 0 || res.EventsPerSec <= 0 || res.CPU <= 0 || res.StoreBytes <= 0 {
		t.Fatalf("figures: %+v", res)
	}
	// Three pages and their outcomes: a few commits, each of a write or
	// more, in part of the elapsed time.
	if w := res.Writer; w.Commits < 3 || w.Writes < w.Commits || w.Busy <= 0 || w.Share <= 0 || w.Share > 1 {
		t.Fatalf("store writer: %+v", w)
	}
	var out strings.Builder
	if err := res.WriteText(&out); err != nil || !strings.Contains(out.String(), "events/s") || !strings.Contains(out.String(), "store writer") {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// A bad figure is caught.
	res.Written--
	if err := res.Check(); err == nil {
		t.Fatal("a missing credential line passed the check")
	}
}

// TestPipelineCredentialsMapTheWholeRecord: each credential line is the
// mapping of its member's whole record, though the trigger decodes only
// what the condition reads (eligible, score) for the lines it rejects.
func TestPipelineCredentialsMapTheWholeRecord(t *testing.T) {
	dir := t.TempDir()
	res, err := RunPipeline(context.Background(), PipelineOptions{Lines: 2000, Batch: 500, Concurrency: 4, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Check(); err != nil {
		t.Fatal(err)
	}
	members, err := os.ReadFile(filepath.Join(dir, "members.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(members)), "\n") {
		var m Member
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if !m.Kept() {
			continue
		}
		name := m.FirstName + " " + m.LastName
		cred := map[string]any{"credential": map[string]any{
			"group_id": 100001, "name": name, "issued_on": m.EligibilityDate,
			"recipient":         map[string]any{"id": m.ID, "name": name, "email": strings.ToLower(m.Email)},
			"custom_attributes": map[string]any{"score": m.Score, "plan": m.PlanID},
		}}
		b, _ := json.Marshal(cred)
		want[string(b)] = true
	}
	out, err := os.ReadFile(filepath.Join(dir, "credentials.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("%d credential lines, want %d", len(got), len(want))
	}
	for _, line := range got {
		if !want[line] {
			t.Fatalf("credential %s is no kept member's mapping", line)
		}
	}
}
