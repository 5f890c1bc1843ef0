package all

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

// TestAFourthConnectorIsOneFolder builds memberflow with the testdata
// guestbook connector (build tag memberflow_metatest: one import in
// metatest.go) and finds it in the catalogue, the sandbox, the demo's
// summary line and the generated docs, with nothing edited elsewhere:
// every one of those reads the connector's Spec, its sandbox
// registration and its operations' Effect.
func TestAFourthConnectorIsOneFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "memberflow")
	if out, err := exec.CommandContext(ctx, "go", "build", "-tags", "memberflow_metatest", "-o", bin, "../../cmd/memberflow").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("memberflow %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// The catalogue.
	if out := run(nil, "connectors", "guestbook"); !strings.Contains(out, "countersign") || !strings.Contains(out, "entry_signed") {
		t.Errorf("memberflow connectors guestbook:\n%s", out)
	}

	// The sandbox serves it under /guestbook and prints its hints.
	ready := filepath.Join(dir, "ready")
	sb := exec.CommandContext(ctx, bin, "sandbox", "--addr", "127.0.0.1:0", "--members", "5", "--ready-file", ready)
	var banner bytes.Buffer
	sb.Stdout, sb.Stderr = &banner, &banner
	if err := sb.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // the banner is printed before the ready file
	_ = sb.Process.Signal(os.Interrupt)
	_ = sb.Wait()
	if out := banner.String(); !strings.Contains(out, "/guestbook") || !strings.Contains(out, "guestbook-demo-key") {
		t.Errorf("memberflow sandbox does not show the guestbook:\n%s", out)
	}

	// The demo's summary line counts its Effects.
	recipes, err := filepath.Abs("testdata/guestbook/recipes")
	if err != nil {
		t.Fatal(err)
	}
	out := run([]string{"GUESTBOOK_KEY=not-used-with-sandbox"}, "run", "--sandbox", "--once", "--sandbox-members", "5", recipes)
	if !strings.Contains(out, "entries seen") || !strings.Contains(out, "3 entries countersigned") {
		t.Errorf("the summary does not count the guestbook's effects:\n%s", out)
	}

	// The generated docs.
	docs := filepath.Join(dir, "docs")
	if out, err := exec.CommandContext(ctx, "go", "run", "-tags", "memberflow_metatest", "../../internal/docgen", "-dir", docs).CombinedOutput(); err != nil {
		t.Fatalf("docgen: %v\n%s", err, out)
	}
	page, err := os.ReadFile(filepath.Join(docs, "guestbook.md"))
	if err != nil || !bytes.Contains(page, []byte("countersign")) {
		t.Errorf("docs/connectors/guestbook.md: %v\n%s", err, page)
	}
}
