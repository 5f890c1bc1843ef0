// Package console is memberflow's web console: compliance (members ×
// credential × attendance, with the reconcile findings), activity
// charts, the run history and the dead letters, with replay.
//
// Pages are rendered on the server with html/template; the stylesheet is
// embedded; charts are SVG drawn by the server. There is no JavaScript:
// the activity page refreshes itself with a meta refresh, forms post.
//
// Lifecycle: New (no I/O) → ServeHTTP. The handler is mounted at Prefix
// (default /console/) by `memberflow console` and by `memberflow run
// --http`. Access control (token, basic auth) and CSRF protection of
// the replay forms are the handler's own; the listener's address policy
// (loopback unless a token is set) is the command's.
package console

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console/stats"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options configure a Console.
type Options struct {
	// Store is read for runs and dead letters; replays go through it.
	Store engine.Inspector
	// Compliance answers the compliance page; nil shows how to enable it.
	Compliance ComplianceSource
	// API counts the connectors' requests for the activity page; nil
	// when this process makes none.
	API *APICounter
	// Prefix is where the console is mounted, with slashes at both ends.
	Prefix string
	// ReadOnly hides and refuses replays.
	ReadOnly bool
	// Token, when set, is required: as a bearer token, or once as
	// ?token= (then kept in an HttpOnly cookie).
	Token string
	// BasicUser and BasicPassword, when set, are required as basic auth.
	BasicUser, BasicPassword string
	// Redact removes secret values from anything shown (run inputs and
	// outputs are stored redacted already: this is a second guard).
	Redact func(string) string
	Logger hclog.Logger
	Now    func() time.Time
	// Refresh is the activity page's refresh period; default 10 s.
	Refresh time.Duration
}

// Console is the console's http.Handler.
type Console struct {
	o             Options
	activityCache activityCache
	warm          sync.Once

	rowsMu  sync.Mutex
	rowsFor *Compliance
	rowsDay string
	rows    []memberRow
	tmpl    *template.Template
	csrf    string
	mux     *http.ServeMux
	log     hclog.Logger
}

// New builds the console.
func New(o Options) (*Console, error) {
	if o.Store == nil {
		return nil, errors.New("console: no store")
	}
	if o.Prefix == "" {
		o.Prefix = "/console/"
	}
	if !strings.HasPrefix(o.Prefix, "/") || !strings.HasSuffix(o.Prefix, "/") {
		return nil, fmt.Errorf("console: prefix %q must start and end with a slash", o.Prefix)
	}
	if (o.BasicUser == "") != (o.BasicPassword == "") {
		return nil, errors.New("console: basic auth needs both a user and a password")
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Redact == nil {
		o.Redact = func(s string) string { return s }
	}
	if o.Refresh <= 0 {
		o.Refresh = 10 * time.Second
	}
	c := &Console{o: o, log: o.Logger.Named("console")}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("console: csrf token: %w", err)
	}
	c.csrf = hex.EncodeToString(b)
	t, err := template.New("").Funcs(c.funcs()).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	c.tmpl = t
	static, _ := fs.Sub(assets, "static")
	p := o.Prefix
	mux := http.NewServeMux()
	mux.Handle("GET "+p+"static/", http.StripPrefix(p+"static/", cacheFor(http.FileServerFS(static))))
	mux.HandleFunc("GET "+p+"{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, p+"compliance", http.StatusSeeOther) })
	mux.HandleFunc("GET "+p+"compliance", c.compliance)
	mux.HandleFunc("GET "+p+"compliance.csv", c.complianceCSV)
	mux.HandleFunc("POST "+p+"compliance/refresh", c.post(c.refreshCompliance))
	mux.HandleFunc("GET "+p+"activity", c.activity)
	mux.HandleFunc("GET "+p+"runs", c.runs(false))
	mux.HandleFunc("GET "+p+"runs/{id}", c.run(false))
	mux.HandleFunc("GET "+p+"dead", c.runs(true))
	mux.HandleFunc("GET "+p+"dead/{id}", c.run(true))
	mux.HandleFunc("POST "+p+"dead/{id}/replay", c.post(c.replay))
	mux.HandleFunc("POST "+p+"dead/replay-all", c.post(c.replayAll))
	c.mux = mux
	return c, nil
}

// Prefix is where the console is mounted.
func (c *Console) Prefix() string { return c.o.Prefix }

// ServeHTTP checks access, sets the security headers and serves a page.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make the browser send Origin: null on posts
	h.Set("X-Frame-Options", "DENY")
	if !c.authorized(w, r) {
		return
	}
	// The first page served starts the default activity aggregates, so
	// that the activity page rarely waits for them.
	c.warm.Do(func() {
		go c.activityOf(context.Background(), "1h")
	})
	c.mux.ServeHTTP(w, r)
}

const tokenCookie = "memberflow_console"

// authorized applies the token and basic auth; it answers itself when
// access is refused (or when a ?token= is traded for a cookie).
// loopbackHost reports whether a request's Host names this machine's
// loopback: localhost or a loopback address, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Console) authorized(w http.ResponseWriter, r *http.Request) bool {
	if c.o.BasicUser == "" && c.o.Token == "" && !loopbackHost(r.Host) {
		// Without credentials the console trusts being reached on a
		// loopback address; a page a browser loaded from another name that
		// resolves there (DNS rebinding) must not read it or post to it.
		http.Error(w, "memberflow console: without a token it answers only requests addressed to localhost, 127.0.0.1 or [::1]; to reach it by another name, give it a token (docs/console.md)", http.StatusMisdirectedRequest)
		return false
	}
	if c.o.BasicUser != "" {
		u, p, ok := r.BasicAuth()
		if !ok || !equal(u, c.o.BasicUser) || !equal(p, c.o.BasicPassword) {
			w.Header().Set("WWW-Authenticate", `Basic realm="memberflow console", charset="UTF-8"`)
			http.Error(w, "memberflow console: basic auth required", http.StatusUnauthorized)
			return false
		}
	}
	if c.o.Token == "" {
		return true
	}
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") && equal(strings.TrimPrefix(auth, "Bearer "), c.o.Token) {
		return true
	}
	if ck, err := r.Cookie(tokenCookie); err == nil && equal(ck.Value, c.o.Token) {
		return true
	}
	if t := r.URL.Query().Get("token"); t != "" && equal(t, c.o.Token) && r.Method == http.MethodGet {
		// Trade the token in the URL for a cookie, and drop it from the
		// address bar (and from the history and referrers).
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: c.o.Token, Path: c.o.Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		q := r.URL.Query()
		q.Del("token")
		u := *r.URL
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
		return false
	}
	http.Error(w, "memberflow console: a token is required (open the console with ?token=… once, or send Authorization: Bearer …)", http.StatusUnauthorized)
	return false
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// post guards a form post: read-only mode, the CSRF token of the form
// and, when the browser sends one, a same-origin Origin.
func (c *Console) post(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.o.ReadOnly {
			http.Error(w, "memberflow console: read-only (started with --read-only)", http.StatusForbidden)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			u, err := url.Parse(origin)
			if err != nil || u.Host != r.Host {
				http.Error(w, "memberflow console: cross-origin post refused", http.StatusForbidden)
				return
			}
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			http.Error(w, "memberflow console: cross-site post refused", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if err := r.ParseForm(); err != nil || !equal(r.PostForm.Get("csrf"), c.csrf) {
			http.Error(w, "memberflow console: the form's CSRF token is missing or wrong; reload the page", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

func cacheFor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// page is what every template receives.
type page struct {
	Title    string
	Nav      string
	Prefix   string
	CSRF     string
	ReadOnly bool
	Refresh  int // seconds; 0: none
	Flash    string
	Data     any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, name, title string, data any) {
	p := page{Title: title, Nav: name, Prefix: c.o.Prefix, CSRF: c.csrf, ReadOnly: c.o.ReadOnly, Data: data, Flash: flashMessage(r.URL.Query())}
	if name == "activity" {
		p.Refresh = int(c.o.Refresh / time.Second)
	}
	var buf bytes.Buffer
	if err := c.tmpl.ExecuteTemplate(&buf, name+".html", p); err != nil {
		c.log.Error("rendering a page", "page", name, "error", err)
		http.Error(w, "memberflow console: rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	c.log.Warn("page failed", "path", r.URL.Path, "error", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "memberflow console: %s\n", c.o.Redact(err.Error()))
}

func (c *Console) funcs() template.FuncMap {
	return template.FuncMap{
		"ago": func(t time.Time) string { return ago(c.o.Now().Sub(t)) },
		"agoPtr": func(t *time.Time) string {
			if t == nil {
				return "-"
			}
			return ago(c.o.Now().Sub(*t))
		},
		"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"dur": func(a, b time.Time) string {
			if a.IsZero() || b.IsZero() {
				return "-"
			}
			return b.Sub(a).Round(time.Microsecond).String()
		},
		"round":  roundDuration,
		"join":   strings.Join,
		"redact": func(s string) string { return c.o.Redact(s) },
		"json":   func(b []byte) string { return c.o.Redact(prettyJSON(b)) },
		"query":  query,
		"add":    func(a, b int) int { return a + b },
	}
}

// query builds a query string from key, value pairs, leaving out empty
// values.
// flashMessage is the note an action's redirect asks for by name. The
// text is the console's own: a link that put its words in the address
// would have them shown as the console's (a phishing aid).
func flashMessage(q url.Values) string {
	switch q.Get("flash") {
	case "reconciled":
		return "reconciled just now"
	case "replayed":
		return "queued again: the runner runs it from the failed step"
	case "replayed-all":
		if n, err := strconv.Atoi(cmp.Or(q.Get("n"), "0")); err == nil && n >= 0 {
			return fmt.Sprintf("%d run(s) queued again", n)
		}
	}
	return ""
}

func query(kv ...any) template.URL {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		k := fmt.Sprint(kv[i])
		var v string
		switch x := kv[i+1].(type) {
		case int64:
			if x != 0 {
				v = strconv.FormatInt(x, 10)
			}
		case int:
			if x != 0 {
				v = strconv.Itoa(x)
			}
		default:
			v = fmt.Sprint(x)
		}
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return ""
	}
	return template.URL("?" + q.Encode())
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// pager is implemented by stores that page runs in one query; others
// are paged over ListRuns.
func (c *Console) pageRuns(ctx context.Context, q stats.RunQuery) ([]engine.RunInfo, error) {
	if p, ok := c.o.Store.(stats.RunPager); ok {
		return p.PageRuns(ctx, q)
	}
	// Fallback: read enough of the newest runs to skip to the page.
	const most = 10000
	all, err := c.o.Store.ListRuns(ctx, engine.RunFilter{Recipe: q.Recipe, Status: q.Status, Limit: most})
	if err != nil {
		return nil, err
	}
	var out []engine.RunInfo
	for _, ri := range all {
		if (q.Before == 0 || ri.ID < q.Before) && (q.Subject == "" || ri.Subject == q.Subject) {
			out = append(out, ri)
			if len(out) == q.Limit {
				break
			}
		}
	}
	return out, nil
}

// roundDuration keeps three significant digits: 55.293µs → 55.3µs.
func roundDuration(d time.Duration) time.Duration {
	for unit := time.Duration(1); unit < time.Hour; unit *= 10 {
		if d < 1000*unit {
			return d.Round(unit)
		}
	}
	return d.Round(time.Second)
}
