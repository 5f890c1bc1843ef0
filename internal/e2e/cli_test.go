package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoCommand runs the README's demo, `memberflow run --sandbox --once
// examples/`, as a user would: a built binary in a subprocess.
func TestDemoCommand(t *testing.T) {
	bin := memberflowBinary(t)
	t.Parallel() // waits on the APIs' rate limits, not the CPU
	// The sandbox keeps the real APIs' rate limits (Memberships: 100
	// requests per 10 s), so the demo takes its time.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	// In a temporary folder: the demo's state and ./out files land there.
	cmd := exec.CommandContext(ctx, bin, "run", "--sandbox", "--once", examples)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("memberflow run --sandbox --once examples/: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, name := range []string{"certificate-for-new-members", "sync-members-to-attendees", "payments-to-accelevents", "attendee-qr-codes"} {
		if !strings.Contains(stdout.String()+stderr.String(), name) {
			t.Errorf("the summary does not mention %s:\n%s", name, stdout.String())
		}
	}
	// README.md quotes the summary line; the demo is seeded, so it must
	// print that line exactly (update README when the recipes change).
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	quoted := ""
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.Contains(line, " members seen · ") {
			quoted = strings.TrimSpace(line)
			break
		}
	}
	if quoted == "" {
		t.Error("README.md quotes no summary line (\"… members seen · …\")")
	} else if !strings.Contains(stdout.String(), quoted+"\n") {
		t.Errorf("README.md quotes the summary line\n  %s\nthe demo printed:\n%s", quoted, stdout.String())
	}
	t.Logf("demo output:\n%s", stdout.String())
}
