package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	memberships "github.com/memberflow/memberflow/connectors/memberships/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// oauthSandbox is the Memberships sandbox behind a recorder of every
// token it issues, with access tokens that live one second: with the
// client's one-minute margin, every call refreshes, and every refresh
// rotates the refresh token.
type oauthSandbox struct {
	*httptest.Server
	mu     sync.Mutex
	issued []string // access and refresh tokens, in issue order
}

func startOAuthSandbox(t *testing.T) *oauthSandbox {
	t.Helper()
	ms := memberships.New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	ms.Seed(sandboxkit.Seed{Members: 6, Seed: 3, Now: time.Now()})
	ms.SetTokenLifetime(time.Second)
	o := &oauthSandbox{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth/token" {
			ms.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		ms.ServeHTTP(rec, r)
		var tok struct {
			Access  string `json:"access_token"`
			Refresh string `json:"refresh_token"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &tok) == nil && tok.Access != "" {
			o.mu.Lock()
			o.issued = append(o.issued, tok.Access, tok.Refresh)
			o.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(o.Close)
	return o
}

// authorise does what an operator does once: exchange the OAuth app's
// authorisation code for a refresh token.
func (o *oauthSandbox) authorise(t *testing.T) string {
	t.Helper()
	res, err := http.PostForm(o.URL+"/oauth/token", url.Values{"grant_type": {"authorization_code"},
		"client_id": {memberships.DemoClientID}, "client_secret": {memberships.DemoClientSecret}, "code": {memberships.DemoAuthCode}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		Refresh string `json:"refresh_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.Refresh == "" {
		t.Fatalf("authorisation: %v %+v", err, tok)
	}
	return tok.Refresh
}

func (o *oauthSandbox) tokens() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.issued...)
}

// oauthRecipe writes a recipe that reads every member through an oauth2
// connection to base, with its secrets by reference.
func oauthRecipe(t *testing.T, dir, base string) string {
	t.Helper()
	conns := fmt.Sprintf(`version: 1
connections:
  members:
    connector: memberships
    base_url: %s
    auth: { type: oauth2, client_id: %s, client_secret: "${{ secret.MS_CLIENT_SECRET }}", refresh_token: "${{ secret.MS_REFRESH_TOKEN }}" }
    options: { locationId: %s, companyId: %s }
`, base, memberships.DemoClientID, memberships.DemoLocationID, memberships.DemoCompanyID)
	recipe := `version: 1
name: read-members
connections_file: conns.yaml
trigger:
  uses: members.user_created
  start: beginning
steps:
  - id: member
    uses: members.get_user
    with: { userId: "${{ trigger.id }}" }
`
	if err := os.WriteFile(filepath.Join(dir, "conns.yaml"), []byte(conns), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "read-members.yaml")
	if err := os.WriteFile(path, []byte(recipe), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const testStoreKey = "0123456789abcdef0123456789abcdef-test-only"

func TestRestartedRunnerUsesTheRotatedRefreshToken(t *testing.T) {
	sb := startOAuthSandbox(t)
	dir := t.TempDir()
	recipe := oauthRecipe(t, dir, sb.URL)
	store := filepath.Join(dir, "memberflow.db")
	configured := sb.authorise(t)
	t.Setenv("MS_CLIENT_SECRET", memberships.DemoClientSecret)
	t.Setenv("MS_REFRESH_TOKEN", configured)

	t.Run("without a store key the runner refuses to start", func(t *testing.T) {
		t.Setenv("MEMBERFLOW_STORE_KEY", "")
		code, _, stderr := cli(t, "run", "--once", "--store", store, recipe)
		if code != exitUsage || !strings.Contains(stderr, "MEMBERFLOW_STORE_KEY") {
			t.Fatalf("exit %d, want %d naming MEMBERFLOW_STORE_KEY:\n%s", code, exitUsage, stderr)
		}
		if _, err := os.Stat(store); err == nil {
			t.Error("the refused run made a store")
		}
	})

	t.Setenv("MEMBERFLOW_STORE_KEY", testStoreKey)
	code, stdout, stderr := cli(t, "run", "--once", "--store", store, recipe)
	if code != exitOK || !strings.Contains(stdout, "6 members seen") {
		t.Fatalf("first run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	first := len(sb.tokens())
	if first < 4 {
		t.Fatalf("the first run got %d tokens; the test needs rotations", first/2)
	}
	// The configured refresh token was rotated away: a runner that
	// starts from it again is refused by the service.
	res, err := http.PostForm(sb.URL+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {configured},
		"client_id": {memberships.DemoClientID}, "client_secret": {memberships.DemoClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the configured refresh token still works (%d): the test proves nothing", res.StatusCode)
	}

	// A restarted runner (new process state, same store and
	// configuration) refreshes with the newest token from the store.
	code, stdout, stderr = cli(t, "run", "--once", "--store", store, recipe)
	if code != exitOK || strings.Contains(stderr, "Unauthorized") {
		t.Fatalf("restarted run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if len(sb.tokens()) <= first {
		t.Fatal("the restarted run did not refresh: it proves nothing about the saved refresh token")
	}

	t.Run("a dry run's rotated token reaches the real store", func(t *testing.T) {
		before := len(sb.tokens())
		if code, out, errs := cli(t, "run", "--once", "--dry-run", "--store", store, recipe); code != exitOK {
			t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errs)
		}
		if len(sb.tokens()) <= before {
			t.Fatal("the dry run did not refresh: it proves nothing")
		}
		if code, out, errs := cli(t, "run", "--once", "--store", store, recipe); code != exitOK || strings.Contains(errs, "Unauthorized") {
			t.Fatalf("run after the dry run: exit %d\n%s\n%s", code, out, errs)
		}
	})

	t.Run("reconcile and the console refresh the runner's chain", func(t *testing.T) {
		var errb bytes.Buffer
		io := stdio{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &errb}
		log := newLogger("off", "text", &errb)
		_, conns, code := loadForReading(context.Background(), "reconcile", runOptions{paths: []string{recipe}}, log, io)
		if code != exitOK {
			t.Fatalf("loading: %d %s", code, errb.String())
		}
		closeTokens, code := readerTokens("reconcile", store, "", conns, io)
		if code != exitOK {
			t.Fatalf("readerTokens: %d %s", code, errb.String())
		}
		defer closeTokens()
		c := conns["read-members"]["members"]
		conn, err := c.Spec.Open(c.Config)
		if err != nil {
			t.Fatal(err)
		}
		before := len(sb.tokens())
		if _, err := conn.(connectors.Identifier).Identify(context.Background()); err != nil {
			t.Fatalf("a reader's call: %v", err)
		}
		if len(sb.tokens()) <= before {
			t.Fatal("the reader did not refresh: it proves nothing")
		}
		// And the runner goes on with the token the reader saved.
		if code, out, errs := cli(t, "run", "--once", "--store", store, recipe); code != exitOK {
			t.Fatalf("run after the reader: exit %d\n%s\n%s", code, out, errs)
		}
	})

	t.Run("no token is in the store in plain text", func(t *testing.T) {
		secrets := append(sb.tokens(), configured, memberships.DemoClientSecret)
		files, _ := filepath.Glob(store + "*")
		if len(files) == 0 {
			t.Fatal("no store file")
		}
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.IsDir() {
				continue // the runners' lock files, which hold no data
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s holds %q in plain text", filepath.Base(f), s)
				}
			}
		}
	})

	t.Run("a wrong key stops the runner before any call", func(t *testing.T) {
		t.Setenv("MEMBERFLOW_STORE_KEY", strings.Repeat("x", 40))
		before := len(sb.tokens())
		code, _, stderr := cli(t, "run", "--once", "--store", store, recipe)
		if code != exitFail || !strings.Contains(stderr, "store key does not open") || !strings.Contains(stderr, "forget-tokens") {
			t.Fatalf("exit %d, want %d with what to do:\n%s", code, exitFail, stderr)
		}
		// The key is checked when the store opens, not found out by a
		// request that retries (a retried one kept the runner ~50 s).
		if !strings.Contains(stderr, "opening the OAuth tokens saved in the store") || strings.Contains(stderr, "asking the service") {
			t.Fatalf("the key was not checked before the first request:\n%s", stderr)
		}
		if len(sb.tokens()) != before {
			t.Fatal("a runner with a wrong key called the token endpoint")
		}
	})
}

// Two runners sharing one store refresh one rotating token chain: a
// rotated refresh token must never be sent twice, so neither is refused.
func TestTwoRunnersShareTheRotatingToken(t *testing.T) {
	sb := startOAuthSandbox(t)
	dir := t.TempDir()
	recipe := oauthRecipe(t, dir, sb.URL)
	store := filepath.Join(dir, "memberflow.db")
	t.Setenv("MS_CLIENT_SECRET", memberships.DemoClientSecret)
	t.Setenv("MS_REFRESH_TOKEN", sb.authorise(t))
	t.Setenv("MEMBERFLOW_STORE_KEY", testStoreKey)
	// The store and its identity exist first, as after a first start.
	if code, out, errs := cli(t, "run", "--once", "--store", store, recipe); code != exitOK {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errs)
	}
	// Real processes: a second runner is a second process.
	var wg sync.WaitGroup
	results := make([]string, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "run", "--once", "--store", store, "--owner", fmt.Sprintf("runner-%d", i), recipe)
			cmd.Env = append(os.Environ(), runAsCLIEnv+"=1")
			out, err := cmd.CombinedOutput()
			if err != nil || strings.Contains(string(out), "Unauthorized") {
				results[i] = fmt.Sprintf("runner %d: %v\n%s", i, err, out)
			}
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r != "" {
			t.Error(r)
		}
	}
}

// A store made against the sandbox knows it: pointed at other data (the
// sandbox seeded otherwise, another service's URL) the runner stops,
// naming both accounts and the ways on; a second start against the same
// data goes on.
func TestStoreKnowsWhatItSynced(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "memberflow.db")
	run := func(args ...string) (int, string, string) {
		return cli(t, append(append([]string{"run", "--once", "--store", store, "--connections", sandboxConnFile, "--log-level", "off",
			"--sandbox-no-rate-limits", "--sandbox-members", "5"}, args...), certRecipe)...)
	}
	if code, out, errs := run("--sandbox", "--sandbox-seed", "3"); code != exitOK {
		t.Fatalf("first run: exit %d\n%s%s", code, out, errs)
	}
	// The in-process sandbox listens on another port at each start: the
	// same seed is the same data.
	if code, out, errs := run("--sandbox", "--sandbox-seed", "3"); code != exitOK {
		t.Fatalf("second run against the same data: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ := cli(t, "store", "show", "--store", store, "--format", "json")
	if code != exitOK {
		t.Fatalf("store show: exit %d", code)
	}
	var ids []struct{ Connection, Connector, Account string }
	if err := json.Unmarshal([]byte(out), &ids); err != nil {
		t.Fatal(err, out)
	}
	accounts := map[string]string{}
	for _, id := range ids {
		accounts[id.Connection] = id.Account
	}
	if !strings.HasPrefix(accounts["members"], "location ") || !strings.HasPrefix(accounts["accredible"], "issuer ") {
		t.Errorf("recorded accounts %v: want the location and the issuer the services report", accounts)
	}

	other := startTestSandbox(t, 5) // another sandbox process: other data
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"sandbox seeded otherwise", []string{"--sandbox", "--sandbox-seed", "4"}, []string{"memberflow-sandbox:seed-3/", "memberflow-sandbox:seed-4/"}},
		{"another service", []string{"--sandbox-url", other}, []string{"memberflow-sandbox:seed-3/", other}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(store)
			code, out, errs := run(tc.args...)
			if code != exitFail {
				t.Fatalf("exit %d, want %d\n%s%s", code, exitFail, out, errs)
			}
			for _, w := range append(tc.want, "but this store was made with", "--store other.db", "memberflow store rebind --store "+store+" accredible members") {
				if !strings.Contains(errs, w) {
					t.Errorf("the error does not say %q:\n%s", w, errs)
				}
			}
			if strings.Contains(out, "members seen") {
				t.Error("the runner ran recipes against other data")
			}
			after, _ := os.ReadFile(store)
			if !bytes.Equal(before, after) {
				t.Error("the store changed")
			}
		})
	}

	t.Run("rebind records the new account", func(t *testing.T) {
		code, out, errs := cli(t, "store", "rebind", "--store", store)
		if code != exitOK || !strings.Contains(out, `forgot connection "accredible"`) {
			t.Fatalf("rebind: exit %d\n%s%s", code, out, errs)
		}
		if code, out, errs := run("--sandbox-url", other); code != exitOK {
			t.Fatalf("run after rebind: exit %d\n%s%s", code, out, errs)
		}
		if code, _, errs := cli(t, "store", "rebind", "--store", store, "nosuch"); code != exitUsage || !strings.Contains(errs, "nosuch") {
			t.Errorf("rebind of an unknown connection: exit %d\n%s", code, errs)
		}
	})
}

// The README's demo, run twice on one store: every connection of the
// examples is the same the second time, though the in-process sandbox
// listens elsewhere.
func TestDemoRunsTwiceOnOneStore(t *testing.T) {
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "memberflow.db")
	t.Chdir(t.TempDir()) // the file connector writes under ./out
	for i := 1; i <= 2; i++ {
		code, out, errs := cli(t, "run", "--once", "--sandbox", "--sandbox-no-rate-limits", "--sandbox-members", "10", "--store", store, "--log-level", "off", examples)
		if code != exitOK {
			t.Fatalf("run %d: exit %d\n%s%s", i, code, out, errs)
		}
	}
}
