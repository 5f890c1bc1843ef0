package bench

import (
	"bytes"
	"context"
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
