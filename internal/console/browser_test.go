package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/hashicorp/go-hclog"

	_ "github.com/memberflow/memberflow/connectors/all"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console"
	"github.com/memberflow/memberflow/internal/demo"
	"github.com/memberflow/memberflow/internal/reconcile"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the README's console screenshot (docs/console.png)")

// chromium finds the browser: the tests fail without it in CI (CI set),
// and skip on a developer's machine, saying so.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed: skipping the browser tests (apt-get install -y chromium; CI runs them)")
	return ""
}

// artefacts is where screenshots go: $MEMBERFLOW_ARTEFACTS, or a folder
// under the system's temporary directory.
func artefacts(t *testing.T) string {
	dir := os.Getenv("MEMBERFLOW_ARTEFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "memberflow-artefacts")
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type browser struct {
	t      *testing.T
	ctx    context.Context
	base   string
	shots  string
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T, base string) *browser {
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	b := &browser{t: t, ctx: ctx, base: base, shots: artefacts(t)}
	messages := chromedp.Console(ctx)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s (%s)", m, m.URL))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// navigate runs actions that load a new page and waits for it.
func (b *browser) navigate(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	res, err := chromedp.RunResponse(b.ctx, actions...)
	if err != nil {
		b.t.Fatal(err)
	}
	if res.Status != http.StatusOK {
		body := eval[string](b, `document.body.innerText`)
		b.t.Fatalf("%s: HTTP %d: %s", res.URL, res.Status, body)
	}
	b.run(chromedp.WaitReady(chromedp.CSS("main")))
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("main")))
}

func (b *browser) texts(sel string) []string {
	b.t.Helper()
	return eval[[]string](b, fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => (e.innerText ?? e.textContent).trim())`, sel))
}

func (b *browser) shot(name string) []byte {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	// FullScreenshot encodes PNG at quality 100 and JPEG below; keep the
	// format in the name honest.
	ext := ".jpg"
	if bytes.HasPrefix(png, []byte("\x89PNG")) {
		ext = ".png"
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+ext), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return png
}

func (b *browser) noErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Errorf("browser console errors:\n%s", strings.Join(b.errors, "\n"))
	}
}

func mutate(t *testing.T, d *demo.Demo, service, kind string, count int) []string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"service": service, "kind": kind, "count": count})
	res, err := http.Post(d.URL+"/_sandbox/mutate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Applied []struct {
			Changed struct {
				IDs []string `json:"ids"`
			} `json:"changed"`
		} `json:"applied"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 || len(out.Applied) != 1 {
		t.Fatalf("mutate %s.%s: HTTP %d %v", service, kind, res.StatusCode, err)
	}
	return out.Applied[0].Changed.IDs
}

func call(t *testing.T, d *demo.Demo, connector, action string, input map[string]any) map[string]any {
	t.Helper()
	for _, conns := range d.Connections {
		for _, c := range conns {
			if c.Spec.Name != connector {
				continue
			}
			conn, err := c.Spec.Open(c.Config)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Spec.Action(action).Run(context.Background(), conn, input)
			if err != nil {
				t.Fatalf("%s.%s: %v", connector, action, err)
			}
			b, _ := json.Marshal(res.Output)
			var m map[string]any
			json.Unmarshal(b, &m)
			return m
		}
	}
	t.Fatalf("no connection to %s", connector)
	return nil
}

// ticketType reads the General Admission type the examples register
// members with: its id, capacity and seats sold.
func ticketType(t *testing.T, d *demo.Demo) (id float64, total, sold int) {
	t.Helper()
	out := call(t, d, "accelevents", "get_ticket_types", map[string]any{})
	for _, tt := range out["ticketTypes"].([]any) {
		m := tt.(map[string]any)
		if m["id"].(float64) == 145680 {
			total, remaining := int(m["totalTickets"].(float64)), int(m["remainingTickets"].(float64))
			return m["id"].(float64), total, total - remaining
		}
	}
	t.Fatal("no ticket type 145680")
	return 0, 0, 0
}

// TestConsoleInTheBrowser drives the console in headless Chromium after
// a demo run: drift injected through /_sandbox/mutate shows in the
// compliance table; a run dead-lettered because the event sold out is
// replayed from its page with the keyboard once seats are added, and
// succeeds; filters and paging work; no page logs an error; every page
// is readable at 360 px.
func TestConsoleInTheBrowser(t *testing.T) {
	chromium(t)
	dir := t.TempDir()
	d, err := demo.Start(demo.Options{Examples: "../../examples", Dir: dir, Members: 100, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if _, err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// A dead letter: the conference sells out, then a member is
	// activated by hand; syncing them to an attendee fails (406).
	typeID, _, sold := ticketType(t, d)
	call(t, d, "accelevents", "update_ticket_type", map[string]any{"ticketTypeId": typeID, "totalTickets": sold})
	joined := mutate(t, d, "memberships", "new_member", 1)[0]
	call(t, d, "memberships", "set_membership_status", map[string]any{"userId": joined, "membershipStatus": "active"})
	sum, err := d.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := d.Store.ListRuns(ctx, engine.RunFilter{Status: engine.RunDead})
	if err != nil || len(dead) != 1 || dead[0].Subject != "user/"+joined {
		t.Fatalf("want one dead letter for user/%s, got %+v (%v); summary dead %d", joined, dead, err, sum.Dead())
	}
	// Drift: members become eligible; no runner sees it yet.
	eligible := mutate(t, d, "memberships", "become_eligible", 2)

	rc, err := reconcile.New(reconcile.Options{Recipes: d.Recipes, Connections: d.Connections})
	if err != nil {
		t.Fatal(err)
	}
	h, err := console.New(console.Options{Store: d.Store, Compliance: &console.Reconciling{R: rc}, API: console.NewAPICounter(),
		Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	b := newBrowser(t, srv.URL)

	// Compliance: the injected drift, filtered by rule.
	b.open("/console/compliance")
	b.shot("compliance")
	if *updateScreenshot {
		b.run(chromedp.EmulateViewport(1200, 900))
		b.open("/console/compliance")
		png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("../../docs/console.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.navigate(chromedp.SetValue(chromedp.CSS(`select[name="rule"]`), "eligible-without-credential"),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)))
	rows := b.texts("#members tbody tr")
	if len(rows) != len(eligible) {
		t.Fatalf("compliance filtered by eligible-without-credential: %d rows, want %d:\n%s", len(rows), len(eligible), strings.Join(rows, "\n"))
	}
	for _, id := range eligible {
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.Contains(r, id) }) {
			t.Errorf("member %s is not in the filtered table:\n%s", id, strings.Join(rows, "\n"))
		}
	}
	findings := b.texts("#findings tbody tr")
	if len(findings) != len(eligible) {
		t.Errorf("findings for the rule: %d, want %d", len(findings), len(eligible))
	}
	b.open("/console/compliance?rule=member-without-attendee")
	if rows := b.texts("#members tbody tr"); len(rows) != 1 || !strings.Contains(rows[0], joined) {
		t.Errorf("member-without-attendee rows: %q, want the member %s", rows, joined)
	}

	// Runs: paging and filters.
	b.open("/console/runs")
	first := b.texts("#runs tbody tr td:first-child")
	if len(first) != 50 {
		t.Fatalf("runs page: %d rows, want 50", len(first))
	}
	b.navigate(chromedp.Click(chromedp.CSS(`a[rel="next"]`)))
	second := b.texts("#runs tbody tr td:first-child")
	if len(second) == 0 || second[0] >= first[len(first)-1] && len(second[0]) == len(first[len(first)-1]) {
		t.Errorf("the next page does not continue: first ends %s, next starts %v", first[len(first)-1], second)
	}
	b.navigate(chromedp.SetValue(chromedp.CSS(`select[name="status"]`), "skipped"),
		chromedp.SetValue(chromedp.CSS(`select[name="recipe"]`), "sync-members-to-attendees"),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)))
	for _, r := range b.texts("#runs tbody tr") {
		if !strings.Contains(r, "skipped") || !strings.Contains(r, "sync-members-to-attendees") {
			t.Errorf("filtered run row %q", r)
		}
	}
	b.shot("runs")

	// Activity.
	b.open("/console/activity")
	if n := len(b.texts("svg.chart")); n < 5 {
		t.Errorf("activity: %d charts", n)
	}
	b.shot("activity")

	// Dead letters: add seats, replay from the run's page with the
	// keyboard (Tab to the button, Enter), run the queue: a success.
	call(t, d, "accelevents", "update_ticket_type", map[string]any{"ticketTypeId": typeID, "totalTickets": sold + 10})
	b.open("/console/dead")
	b.shot("dead-letters")
	b.navigate(chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/console/dead/%d"]`, dead[0].ID))))
	reached := false
	for i := 0; i < 20 && !reached; i++ {
		b.run(chromedp.KeyEvent(kb.Tab))
		reached = eval[string](b, `document.activeElement.id || document.activeElement.tagName`) == "replay"
	}
	if !reached {
		t.Fatal("the replay button is not reachable with Tab")
	}
	b.navigate(chromedp.KeyEvent(kb.Enter))
	status := b.text("#run-status")
	if status != engine.RunQueued {
		t.Fatalf("after replay the run is %q, want queued", status)
	}
	if _, err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	b.navigate(chromedp.Reload())
	if status = b.text("#run-status"); status != engine.RunSucceeded {
		t.Fatalf("the replayed run is %q, want succeeded", status)
	}
	b.shot("replayed-run")

	// Keyboard: the skip link comes first, then the navigation.
	b.open("/console/compliance")
	var order []string
	for i := 0; i < 5; i++ {
		b.run(chromedp.KeyEvent(kb.Tab))
		order = append(order, eval[string](b, `document.activeElement.innerText.trim()`))
	}
	if want := []string{"Skip to content", "Compliance", "Activity", "Runs", "Dead letters"}; !slices.Equal(order, want) {
		t.Errorf("tab order %q, want %q", order, want)
	}

	// 360 px: no page scrolls sideways; text stays at a readable size.
	b.run(chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	for _, p := range []string{"compliance", "activity", "runs", fmt.Sprintf("runs/%d", dead[0].ID), "dead"} {
		b.open("/console/" + p)
		width := eval[float64](b, `document.documentElement.scrollWidth`)
		minFont := eval[float64](b, `Math.min(...Array.from(document.querySelectorAll("main td, main p, main dd, nav a")).map(e => parseFloat(getComputedStyle(e).fontSize)))`)
		if width > 360 {
			t.Errorf("%s at 360 px is %v px wide", p, width)
		}
		if minFont < 12 {
			t.Errorf("%s at 360 px has %v px text", p, minFont)
		}
		b.shot("360-" + strings.ReplaceAll(p, "/", "-"))
	}
	b.noErrors()
	t.Logf("screenshots in %s", b.shots)
}
