package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors/notify"
)

// A notify webhook step signs its body with the connection's
// webhook.secret (connectors/notify/README.md, examples/README.md): the
// run must resolve that secret for the step, and ask for it when it is
// missing, although no trigger takes webhooks from the connection.
func TestNotifyWebhookStepIsSignedWithTheConnectionSecret(t *testing.T) {
	var mu sync.Mutex
	var sigs []string
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		sigs = append(sigs, r.Header.Get(notify.SignatureHeader))
		bodies = append(bodies, body)
		mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()

	dir := t.TempDir()
	recipe := filepath.Join(dir, "ping.yaml")
	if err := os.WriteFile(recipe, []byte(`version: 1
name: ping
connections:
  hook:
    connector: notify
    base_url: `+srv.URL+`/
    webhook: { secret: "${{ secret.MF_TEST_HOOK_SECRET }}" }
trigger: { schedule: "@every 1m" }
steps:
  - uses: hook.webhook
    with: { body: { hello: world } }
`), 0o644); err != nil {
		t.Fatal(err)
	}

	// Without the secret, the run lists it before it starts.
	code, out, errs := cli(t, "run", "--once", "--store", filepath.Join(dir, "a.db"), "--log-level", "off", recipe)
	if code != exitUsage || !strings.Contains(errs, "MF_TEST_HOOK_SECRET") {
		t.Fatalf("without the secret: exit %d, want %d naming MF_TEST_HOOK_SECRET\n%s%s", code, exitUsage, out, errs)
	}

	secrets := filepath.Join(dir, "secrets.env")
	const secret = "hook-secret-for-the-test"
	if err := os.WriteFile(secrets, []byte("MF_TEST_HOOK_SECRET="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, "run", "--once", "--store", filepath.Join(dir, "b.db"), "--secrets", secrets, "--log-level", "off", recipe)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sigs) != 1 {
		t.Fatalf("the webhook received %d requests, want 1", len(sigs))
	}
	if sigs[0] == "" {
		t.Fatalf("the notification was sent without %s", notify.SignatureHeader)
	}
	if err := notify.Verify(secret, sigs[0], bodies[0], time.Now(), 5*time.Minute); err != nil {
		t.Errorf("signature %q does not verify with the connection's secret: %v", sigs[0], err)
	}
}
