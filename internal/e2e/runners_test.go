package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/internal/bench"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// buildBinary builds memberflow once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "memberflow-e2e-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "memberflow")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/memberflow").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func memberflowBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds the binary")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestTwoDefaultRunnersNeverCollide is the first thing a user tries: two
// `memberflow run` processes on one store with default flags, the second
// started a second after the first, over every example against the
// sandbox. Each has its own owner name and fenced leases, so no write
// happens twice. MEMBERFLOW_COLLIDE_ROUNDS repeats it (default 2).
func TestTwoDefaultRunnersNeverCollide(t *testing.T) {
	bin := memberflowBinary(t)
	t.Parallel() // waits on the APIs' rate limits, not the CPU
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("MEMBERFLOW_COLLIDE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	ex, err := filepath.Abs(examples)
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= rounds; round++ {
		t.Run(fmt.Sprintf("round-%d", round), func(t *testing.T) {
			// A little latency keeps both runners busy at once.
			sb, err := sandbox.New(sandbox.Options{Members: members, Seed: int64(10 + round), RateLimit: &sandboxkit.Limit{},
				Faults: sandboxkit.Faults{Latency: 5 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			base, err := sb.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			before, err := bench.FetchStats(ctx, base, "memberships", "accredible")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			run := func(name string) (*exec.Cmd, *bytes.Buffer) {
				cmd := exec.CommandContext(ctx, bin, "run", "--once", "--sandbox-url", base, "--store", filepath.Join(dir, "memberflow.db"),
					"--connections", filepath.Join(ex, "connections.sandbox.yaml"), ex)
				cmd.Dir = dir
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				return cmd, &out
			}
			a, aOut := run("first")
			time.Sleep(time.Second)
			b, bOut := run("second")
			if err := a.Wait(); err != nil {
				t.Errorf("first runner: %v\n%s", err, aOut)
			}
			if err := b.Wait(); err != nil {
				t.Errorf("second runner: %v\n%s", err, bOut)
			}
			// What one queued while the other drained is run by a last pass.
			c, cOut := run("last")
			if err := c.Wait(); err != nil {
				t.Errorf("last pass: %v\n%s", err, cOut)
			}
			after, err := bench.FetchStats(ctx, base, "memberships", "accredible")
			if err != nil {
				t.Fatal(err)
			}
			if d := after.Duplicates - before.Duplicates; d != 0 {
				t.Errorf("%d new duplicate(s) across the services\nfirst:\n%s\nsecond:\n%s", d, aOut, bOut)
			}
			t.Logf("round %d: %d duplicates before, %d after; %d credentials created", round, before.Duplicates, after.Duplicates, after.Credentials-before.Credentials)
		})
	}
}
