package console

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console/stats"
	"github.com/memberflow/memberflow/internal/reconcile"
)

const pageSize = 50

var runStatuses = []string{engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunSkipped, engine.RunSuppressed, engine.RunDead}

// --- compliance

type complianceData struct {
	Enabled  bool
	Error    string
	Filter   complianceFilter
	Rows     []memberRow
	Total    int // rows after the filter
	Page     int
	Pages    int
	Counts   []statusCount
	Findings []reconcile.Finding
	Rules    []ruleCount
	Taken    time.Time
	Groups   []string
	Statuses []string
	Events   []string
}

type statusCount struct {
	Status string
	Count  int
}

type ruleCount struct {
	reconcile.RuleInfo
	Count int
}

func (c *Console) loadCompliance(r *http.Request) (*Compliance, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	return c.o.Compliance.Compliance(ctx, false)
}

func filterOf(r *http.Request) complianceFilter {
	q := r.URL.Query()
	return complianceFilter{Status: q.Get("status"), Event: q.Get("event"), Group: q.Get("group"), Rule: q.Get("rule"), Query: q.Get("q")}
}

func (c *Console) compliance(w http.ResponseWriter, r *http.Request) {
	d := complianceData{Filter: filterOf(r), Enabled: c.o.Compliance != nil, Events: []string{"registered", "checked-in", "none"}}
	if !d.Enabled {
		c.render(w, r, "compliance", "Compliance", d)
		return
	}
	comp, err := c.loadCompliance(r)
	if err != nil {
		d.Error = c.o.Redact(err.Error())
		c.render(w, r, "compliance", "Compliance", d)
		return
	}
	d.Taken = comp.Report.Taken
	all := c.rowsOf(comp)
	counts := map[string]int{}
	groups := map[string]bool{}
	var filtered []memberRow
	for _, row := range all {
		counts[row.Status]++
		if row.Group != "" {
			groups[row.Group] = true
		}
		if d.Filter.keep(row) {
			filtered = append(filtered, row)
		}
	}
	d.Statuses = memberStatuses(comp.Snapshot, counts)
	for _, s := range d.Statuses {
		d.Counts = append(d.Counts, statusCount{s, counts[s]})
	}
	for g := range groups {
		d.Groups = append(d.Groups, g)
	}
	sort.Strings(d.Groups)
	by := comp.Report.ByRule()
	for _, ru := range comp.Report.Rules {
		d.Rules = append(d.Rules, ruleCount{ru, by[ru.ID]})
	}
	for _, f := range comp.Report.Findings {
		if d.Filter.Rule == "" || d.Filter.Rule == "any" || f.Rule == d.Filter.Rule {
			d.Findings = append(d.Findings, f)
		}
	}
	d.Total = len(filtered)
	d.Pages = max(1, (len(filtered)+pageSize-1)/pageSize)
	d.Page = 1
	if p := r.URL.Query().Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("page %q is not a page number", p))
			return
		}
		d.Page = min(n, d.Pages) // past the end: the last page
	}
	lo := (d.Page - 1) * pageSize
	d.Rows = filtered[lo:min(lo+pageSize, len(filtered))]
	c.render(w, r, "compliance", "Compliance", d)
}

// rowsOf joins a reconciliation's records once (per day: credential
// validity depends on the date); pages filter the joined rows.
func (c *Console) rowsOf(comp *Compliance) []memberRow {
	today := c.o.Now().UTC().Format("2006-01-02")
	c.rowsMu.Lock()
	defer c.rowsMu.Unlock()
	if c.rowsFor != comp || c.rowsDay != today {
		c.rows, c.rowsFor, c.rowsDay = rows(comp, today), comp, today
	}
	return c.rows
}

func (c *Console) complianceCSV(w http.ResponseWriter, r *http.Request) {
	if c.o.Compliance == nil {
		c.fail(w, r, http.StatusNotFound, errors.New("compliance needs the recipes: start the console with recipe paths"))
		return
	}
	comp, err := c.loadCompliance(r)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	f := filterOf(r)
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	cw.Write([]string{"member_id", "name", "email", "membership_status", "plan", "credential_id", "credential_status", "credential_group", "attendee_id", "attendee_status", "checked_in", "drift"})
	for _, row := range c.rowsOf(comp) {
		if !f.keep(row) {
			continue
		}
		// Every cell taken from a service's data is a cell a spreadsheet
		// could read as a formula.
		cells := []string{row.ID, row.Name, row.Email, row.Status, row.Plan, row.Credential, row.CredentialStatus, row.Group,
			row.Attendee, row.AttendeeStatus, strconv.FormatBool(row.CheckedIn), strings.Join(row.Rules, " ")}
		for i := range cells {
			cells[i] = csvSafe(cells[i])
		}
		cw.Write(cells)
	}
	cw.Flush()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="compliance-%s.csv"`, comp.Report.Taken.UTC().Format("20060102T150405Z")))
	w.Write(buf.Bytes())
}

// csvSafe stops a spreadsheet from reading a cell as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (c *Console) refreshCompliance(w http.ResponseWriter, r *http.Request) {
	if c.o.Compliance == nil {
		c.fail(w, r, http.StatusNotFound, errors.New("compliance needs the recipes"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	if _, err := c.o.Compliance.Compliance(ctx, true); err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	http.Redirect(w, r, c.o.Prefix+"compliance"+string(query("flash", "reconciled")), http.StatusSeeOther)
}

// --- activity

type activityData struct {
	Range    string
	Ranges   []string
	Recipes  []recipeChart
	Latency  []latencyRow
	LatChart chart
	API      []apiChart
	HasAPI   bool
	From, To time.Time
	Bucket   time.Duration
}

type recipeChart struct {
	Recipe                       string
	Succeeded, Skipped, Dead, In int
	Chart                        chart
}

type latencyRow struct {
	stats.Latency
	P50, P95 time.Duration
}

type apiChart struct {
	APISeries
	Chart chart
}

var ranges = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}

const buckets = 60

func (c *Console) activity(w http.ResponseWriter, r *http.Request) {
	rg := r.URL.Query().Get("range")
	if rg == "" {
		rg = "1h"
	}
	if _, ok := ranges[rg]; !ok {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("range %q: want 1h, 24h or 7d", rg))
		return
	}
	width := ranges[rg] / buckets
	now := c.o.Now()
	since := now.Add(-ranges[rg]).Truncate(width)
	d := activityData{Range: rg, Ranges: []string{"1h", "24h", "7d"}, From: since, To: now, Bucket: width}
	runBuckets, lat, err := c.activityOf(r.Context(), rg)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	byRecipe := map[string]*recipeChart{}
	series := map[string]map[string][]int{}
	for _, b := range runBuckets {
		rc := byRecipe[b.Recipe]
		if rc == nil {
			rc = &recipeChart{Recipe: b.Recipe}
			byRecipe[b.Recipe] = rc
			series[b.Recipe] = map[string][]int{}
		}
		class := outcomeClass(b.Status)
		s := series[b.Recipe][class]
		if s == nil {
			s = make([]int, buckets+1)
			series[b.Recipe][class] = s
		}
		i := int(b.Start.Sub(since) / width)
		if i >= 0 && i < len(s) {
			s[i] += b.Count
		}
		switch class {
		case "succeeded":
			rc.Succeeded += b.Count
		case "skipped":
			rc.Skipped += b.Count
		case "dead":
			rc.Dead += b.Count
		default:
			rc.In += b.Count
		}
	}
	names := make([]string, 0, len(byRecipe))
	for n := range byRecipe {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rc := byRecipe[n]
		rc.Chart = stackedBars(n, since, width, []barSeries{
			{"succeeded", "ok", series[n]["succeeded"]},
			{"skipped or suppressed", "skip", series[n]["skipped"]},
			{"dead", "dead", series[n]["dead"]},
			{"queued or running", "busy", series[n]["busy"]},
		})
		d.Recipes = append(d.Recipes, *rc)
	}
	for _, l := range lat {
		d.Latency = append(d.Latency, latencyRow{Latency: l, P50: l.Quantile(0.5), P95: l.Quantile(0.95)})
	}
	d.LatChart = latencyBars(d.Latency)
	for _, s := range c.o.API.Series(buckets, width) {
		d.API = append(d.API, apiChart{APISeries: s, Chart: stackedBars(s.Connector+" API calls", since, width, []barSeries{
			{"answered", "ok", minus(s.Calls, s.Limited)}, {"429 Too Many Requests", "dead", s.Limited}})})
	}
	d.HasAPI = c.o.API != nil
	c.render(w, r, "activity", "Activity", d)
}

func minus(a, b []int) []int {
	out := make([]int, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

func outcomeClass(status string) string {
	switch status {
	case engine.RunSucceeded:
		return "succeeded"
	case engine.RunSkipped, engine.RunSuppressed:
		return "skipped"
	case engine.RunDead:
		return "dead"
	}
	return "busy"
}

// readActivity asks the store's aggregate queries, or counts the newest
// runs through engine.Inspector when the store has none.
func (c *Console) readActivity(ctx context.Context, since time.Time, width time.Duration) ([]stats.RunBucket, []stats.Latency, error) {
	if a, ok := c.o.Store.(stats.Activity); ok {
		rb, err := a.RunActivity(ctx, since, width)
		if err != nil {
			return nil, nil, err
		}
		lat, err := a.StepLatency(ctx, since)
		return rb, lat, err
	}
	runs, err := c.o.Store.ListRuns(ctx, engine.RunFilter{Limit: 5000})
	if err != nil {
		return nil, nil, err
	}
	counts := map[[3]string]int{}
	for _, ri := range runs {
		if ri.Created.Before(since) {
			continue
		}
		start := since.Add(ri.Created.Sub(since) / width * width)
		counts[[3]string{ri.Recipe, ri.Status, start.Format(time.RFC3339Nano)}]++
	}
	var out []stats.RunBucket
	for k, n := range counts {
		t, _ := time.Parse(time.RFC3339Nano, k[2])
		out = append(out, stats.RunBucket{Recipe: k[0], Status: k[1], Start: t, Count: n})
	}
	return out, nil, nil
}

// --- runs and dead letters

type runsData struct {
	Prefix   string
	Dead     bool
	Recipe   string
	Status   string
	Subject  string
	Before   int64
	Next     int64
	Runs     []engine.RunInfo
	Statuses []string
	Recipes  []string
}

func (c *Console) runs(dead bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		d := runsData{Prefix: c.o.Prefix, Dead: dead, Recipe: q.Get("recipe"), Status: q.Get("status"), Subject: q.Get("subject"), Statuses: runStatuses}
		if dead {
			d.Status = engine.RunDead
		} else if d.Status != "" && !contains(runStatuses, d.Status) {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("status %q: want one of %s", d.Status, strings.Join(runStatuses, ", ")))
			return
		}
		if b := q.Get("before"); b != "" {
			n, err := strconv.ParseInt(b, 10, 64)
			if err != nil || n <= 0 {
				c.fail(w, r, http.StatusBadRequest, fmt.Errorf("before %q is not a run id", b))
				return
			}
			d.Before = n
		}
		list, err := c.pageRuns(r.Context(), stats.RunQuery{Recipe: d.Recipe, Status: d.Status, Subject: d.Subject, Before: d.Before, Limit: pageSize + 1})
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		if len(list) > pageSize {
			list = list[:pageSize]
			d.Next = list[len(list)-1].ID
		}
		for i := range list {
			list[i].Error = c.o.Redact(list[i].Error)
		}
		d.Runs = list
		d.Recipes = c.recipeNames(r.Context())
		title := "Runs"
		if dead {
			title = "Dead letters"
		}
		c.render(w, r, map[bool]string{false: "runs", true: "dead"}[dead], title, d)
	}
}

// recipeNames are the recipes with runs, for the filter; empty when
// the store cannot say cheaply.
func (c *Console) recipeNames(ctx context.Context) []string {
	if l, ok := c.o.Store.(stats.RecipeLister); ok {
		names, err := l.RunRecipes(ctx)
		if err == nil {
			return names
		}
		c.log.Warn("listing recipes", "error", err)
	}
	return nil
}

type runData struct {
	Dead bool
	Run  *engine.RunDetail
}

func (c *Console) run(dead bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("run id %q is not a positive number", r.PathValue("id")))
			return
		}
		d, err := c.o.Store.GetRun(r.Context(), id)
		if errors.Is(err, engine.ErrNoRun) {
			c.fail(w, r, http.StatusNotFound, err)
			return
		}
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		if dead && d.Status != engine.RunDead {
			http.Redirect(w, r, fmt.Sprintf("%sruns/%d", c.o.Prefix, id), http.StatusSeeOther)
			return
		}
		if err := engine.AddHistory(r.Context(), c.o.Store, d); err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		c.render(w, r, "run", fmt.Sprintf("Run %d", id), runData{Dead: d.Status == engine.RunDead, Run: d})
	}
}

func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("run id %q is not a positive number", r.PathValue("id")))
		return
	}
	if err := c.o.Store.Replay(r.Context(), id); err != nil {
		status := http.StatusConflict
		if errors.Is(err, engine.ErrNoRun) {
			status = http.StatusNotFound
		}
		c.fail(w, r, status, err)
		return
	}
	c.log.Info("dead letter replayed from the console", "run", id)
	http.Redirect(w, r, fmt.Sprintf("%sruns/%d%s", c.o.Prefix, id, query("flash", "replayed")), http.StatusSeeOther)
}

func (c *Console) replayAll(w http.ResponseWriter, r *http.Request) {
	n, err := c.o.Store.ReplayAll(r.Context())
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	c.log.Info("every dead letter replayed from the console", "runs", n)
	http.Redirect(w, r, c.o.Prefix+"dead"+string(query("flash", "replayed-all", "n", n)), http.StatusSeeOther)
}

func prettyJSON(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

// activityOf returns a range's aggregates from the cache.
func (c *Console) activityOf(ctx context.Context, rg string) ([]stats.RunBucket, []stats.Latency, error) {
	return c.activityCache.get(ctx, rg, func(ctx context.Context) ([]stats.RunBucket, []stats.Latency, error) {
		width := ranges[rg] / buckets
		return c.readActivity(ctx, c.o.Now().Add(-ranges[rg]).Truncate(width), width)
	}, c.o.Refresh)
}

// activityCache keeps each range's aggregates for one refresh period:
// the queries read every run of the range (seconds on a large store),
// and the page refreshes itself. A stale entry is served while a fresh
// one is computed in the background; only the first request of a range
// waits.
type activityCache struct {
	mu      sync.Mutex
	entries map[string]*activityEntry
}

type activityEntry struct {
	at      time.Time
	runs    []stats.RunBucket
	lat     []stats.Latency
	err     error
	loading chan struct{}
}

func (a *activityCache) get(ctx context.Context, key string, load func(context.Context) ([]stats.RunBucket, []stats.Latency, error), maxAge time.Duration) ([]stats.RunBucket, []stats.Latency, error) {
	a.mu.Lock()
	if a.entries == nil {
		a.entries = map[string]*activityEntry{}
	}
	e := a.entries[key]
	if e == nil {
		e = &activityEntry{}
		a.entries[key] = e
	}
	fresh := !e.at.IsZero() && time.Since(e.at) < maxAge
	if !fresh && e.loading == nil {
		done := make(chan struct{})
		e.loading = done
		go func() {
			lctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			runs, lat, err := load(lctx)
			a.mu.Lock()
			if err == nil || e.at.IsZero() {
				e.runs, e.lat, e.err = runs, lat, err
				e.at = time.Now()
			}
			e.loading = nil
			a.mu.Unlock()
			close(done)
		}()
	}
	loading, have := e.loading, !e.at.IsZero()
	a.mu.Unlock()
	if !have && loading != nil {
		select {
		case <-loading:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return e.runs, e.lat, e.err
}
