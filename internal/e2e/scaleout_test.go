package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// runner is one `memberflow run` process of the scale-out test.
type runner struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

// TestThreeRunnersOnePostgresSurviveKills is the scale-out proof: three
// `memberflow run` processes share one Postgres database and run every
// example against a sandbox that fails and drops requests; one of them is
// SIGKILLed twice during the backfill and started again. At the end the
// services hold what a clean single run leaves, with no duplicate and no
// dead letter.
func TestThreeRunnersOnePostgresSurviveKills(t *testing.T) {
	bin := memberflowBinary(t)
	t.Parallel() // waits on the APIs' rate limits, not the CPU
	dsn, schema := pgstore.TestSchema(t)
	ex, err := filepath.Abs(examples)
	if err != nil {
		t.Fatal(err)
	}
	const seed = 11
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// The reference: one clean run on a sandbox of its own.
	clean := newSandbox(t, seed, sandboxkit.Faults{})
	dir := t.TempDir()
	if out, err := runMemberflow(ctx, bin, dir, nil, "run", "--once", "--sandbox-url", clean.BaseURL(), "--store", filepath.Join(dir, "clean.db"),
		"--connections", filepath.Join(ex, "connections.sandbox.yaml"), ex); err != nil {
		t.Fatalf("clean run: %v\n%s", err, out)
	}

	faulty := newSandbox(t, seed, sandboxkit.Faults{FailRate: 0.03, DropRate: 0.03, Latency: 2 * time.Millisecond, Seed: seed})
	before := faulty.Stats()
	env := append(os.Environ(), "MEMBERFLOW_PG_SCHEMA="+schema)
	start := func(name string) *runner {
		// Four workers each: three runners stay within a dozen
		// connections each on a server other tests share.
		cmd := exec.CommandContext(ctx, bin, "run", "--sandbox-url", faulty.BaseURL(), "--store", dsn, "--concurrency", "4",
			"--connections", filepath.Join(ex, "connections.sandbox.yaml"), "--log-level", "warn", ex)
		cmd.Dir, cmd.Env = dir, env
		r := &runner{cmd: cmd, out: &bytes.Buffer{}}
		cmd.Stdout, cmd.Stderr = r.out, r.out
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	var mu sync.Mutex
	runners := []*runner{start("a"), start("b"), start("c")}
	// Kill runner a twice during the backfill, starting it again each time.
	for k := 0; k < 2; k++ {
		time.Sleep(1500 * time.Millisecond)
		mu.Lock()
		runners[0].cmd.Process.Signal(syscall.SIGKILL)
		runners[0].cmd.Wait()
		runners[0] = start(fmt.Sprint("a", k+2))
		mu.Unlock()
	}
	// Wait until the queue has been empty and the run count still for a
	// few seconds: the pollers have caught up and every run has ended.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The runners create the store's tables when the first of them opens
	// it; on a loaded machine that may be after the kills above.
	for {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{schema, "runs"}.Sanitize()).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no runner created the store's tables: %v", ctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stillSince, last := time.Now(), -1
	for time.Since(stillSince) < 4*time.Second {
		if ctx.Err() != nil {
			t.Fatalf("the runners did not finish the backfill: %v", ctx.Err())
		}
		time.Sleep(300 * time.Millisecond)
		var total, open int
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status IN ('queued', 'running')) FROM `+
			pgx.Identifier{schema, "runs"}.Sanitize()).Scan(&total, &open); err != nil {
			t.Fatal(err)
		}
		if open > 0 || total != last {
			stillSince, last = time.Now(), total
		}
	}
	var owners int
	conn.QueryRow(ctx, `SELECT count(DISTINCT owner) FROM `+pgx.Identifier{schema, "runners"}.Sanitize()).Scan(&owners)
	for _, r := range runners {
		r.cmd.Process.Signal(syscall.SIGTERM)
	}
	for i, r := range runners {
		if err := r.cmd.Wait(); err != nil {
			t.Errorf("runner %d: %v\n%s", i, err, r.out)
		}
	}
	// A last pass on the same database finds nothing left to do.
	out, err := runMemberflow(ctx, bin, dir, env, "run", "--once", "--sandbox-url", faulty.BaseURL(), "--store", dsn,
		"--connections", filepath.Join(ex, "connections.sandbox.yaml"), ex)
	if err != nil {
		t.Fatalf("last pass: %v\n%s", err, out)
	}
	dead, err := runMemberflow(ctx, bin, dir, env, "dlq", "list", "--store", dsn, "--format", "json")
	if err != nil || !bytes.Equal(bytes.TrimSpace(dead), []byte("[]")) {
		t.Errorf("dead letters: %v\n%s", err, dead)
	}

	want, got := clean.Stats(), faulty.Stats()
	if d := got.Totals.Duplicates - before.Totals.Duplicates; d != 0 {
		t.Errorf("%d new duplicate(s): %+v", d, got.Totals)
	}
	for name, svc := range want.Services {
		for kind, n := range svc.Objects {
			g := got.Services[name].Objects[kind]
			if g != n {
				t.Errorf("%s %s: %d after the kills, %d after a clean run", name, kind, g, n)
			}
		}
	}
	t.Logf("three runners, two kills: %d objects (clean run: %d), %d runner(s) joined and not left before the stop; faults answered %v",
		got.Totals.Objects, want.Totals.Objects, owners, got.Totals.Responses)
}

func newSandbox(t *testing.T, seed int64, faults sandboxkit.Faults) *sandbox.Server {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{Members: members, Seed: seed, RateLimit: &sandboxkit.Limit{}, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb
}

func runMemberflow(ctx context.Context, bin, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	return cmd.CombinedOutput()
}
