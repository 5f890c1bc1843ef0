// Package ops is what operators' tools read from a runner: Prometheus
// metrics (an engine.Observer backed by client_golang, plus gauges read
// from the engine and the store at each scrape) and the health endpoints
// /healthz and /readyz. Handler mounts them, with the webhook triggers,
// on the runner's --http listener.
package ops

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/memberflow/memberflow/engine"
)

const namespace = "memberflow"

// Buckets of the latency histograms, in seconds: from a store commit
// (sub-millisecond) to a slow API call with its retries.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Metrics is the Prometheus side of a runner. Create it with NewMetrics,
// pass it as engine.Options.Observer, then Attach the engine.
type Metrics struct {
	reg *prometheus.Registry

	events, duplicates, echoes   *prometheus.CounterVec
	runs                         *prometheus.CounterVec
	stepAttempts, stepRetries    *prometheus.CounterVec
	polls, webhooks              *prometheus.CounterVec
	httpRequests, http429        *prometheus.CounterVec
	pauses, pauseSeconds, alerts *prometheus.CounterVec
	batchCalls                   *prometheus.CounterVec
	batchSize                    *prometheus.HistogramVec

	runDuration, stepDuration, httpDuration, pollDuration, storeWrite *prometheus.HistogramVec

	// The hot paths' children, looked up once per label set: a map read
	// under a read lock costs less than hashing the label values again.
	mu    sync.RWMutex
	steps map[stepKey]*stepChildren
	reqs  map[reqKey]*reqChildren
	store map[string]prometheus.Observer
}

type stepKey struct{ recipe, step, action string }

// stepChildren are one step's series, by outcome.
type stepChildren struct {
	succeeded, retry, failed, inDoubt, retries prometheus.Counter
	duration                                   prometheus.Observer
}

type reqKey struct{ connector, operation string }

// reqChildren are one operation's series, by status class.
type reqChildren struct {
	byClass  [len(codeClasses)]prometheus.Counter
	limited  prometheus.Counter
	duration prometheus.Observer
}

// NewMetrics registers every metric in a registry of its own (with the Go
// runtime's and the process's collectors).
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), steps: map[stepKey]*stepChildren{}, reqs: map[reqKey]*reqChildren{}, store: map[string]prometheus.Observer{}}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: latencyBuckets}, labels)
		m.reg.MustRegister(h)
		return h
	}
	m.events = counter("events_total", "New trigger events stored, by recipe.", "recipe")
	m.duplicates = counter("events_duplicate_total", "Trigger events dropped as already seen (a repeated webhook, an overlapping poll), by recipe.", "recipe")
	m.runs = counter("runs_total", "Runs brought to an outcome (succeeded, skipped, suppressed, dead), by recipe.", "recipe", "outcome")
	m.echoes = counter("echoes_suppressed_total", "Events recognised as the echo of memberflow's own write and not run, by recipe.", "recipe")
	m.stepAttempts = counter("step_attempts_total", "Calls of a step's action (settlement look-ups included), by outcome: succeeded, retry, failed, in_doubt.", "recipe", "step", "action", "outcome")
	m.stepRetries = counter("step_retries_total", "Step calls that failed transiently and are tried again.", "recipe", "step", "action")
	m.polls = counter("trigger_polls_total", "Polls of a trigger, by outcome: ok or error.", "recipe", "outcome")
	m.webhooks = counter("webhook_deliveries_total", "Deliveries to webhook triggers, by outcome: accepted, duplicate, spooled (acknowledged from the delivery spool, stored later), unauthorized, bad_request, too_large, unavailable.", "recipe", "outcome")
	m.httpRequests = counter("http_requests_total", "HTTP requests to services, by connector, operation and status class (2xx, 3xx, 4xx, 5xx, error for no answer).", "connector", "operation", "code")
	m.http429 = counter("http_rate_limited_total", "HTTP 429 answers from services, by connector.", "connector")
	m.pauses = counter("rate_limit_pauses_total", "Requests that waited for the connection's token bucket or a pause the service asked for.", "connector")
	m.pauseSeconds = counter("rate_limit_pause_seconds_total", "Time requests spent waiting for rate limits.", "connector")
	m.alerts = counter("alerts_total", "Engine events fed to alert recipes, by cause and outcome: fed, or duplicate (the window had alerted).", "recipe", "cause", "outcome")
	m.batchCalls = counter("batch_calls_total", "Calls of an action's batch form (many runs' calls of one step sent at once), by recipe, step and action.", "recipe", "step", "action")
	m.batchSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "batch_size", Help: "Runs' calls per call of an action's batch form.",
		Buckets: []float64{1, 2, 4, 8, 16, 30, 64, 128, 256}}, []string{"recipe", "step", "action"})
	m.reg.MustRegister(m.batchSize)
	m.runDuration = histogram("run_duration_seconds", "Execution time of runs that reached an outcome (claim to outcome, store writes included).", "recipe")
	m.stepDuration = histogram("step_duration_seconds", "Duration of each call of a step's action.", "recipe", "step", "action")
	m.httpDuration = histogram("http_request_duration_seconds", "Duration of HTTP requests to services.", "connector", "operation")
	m.pollDuration = histogram("trigger_poll_duration_seconds", "Duration of trigger polls (the service's answer and the store write).", "recipe")
	m.storeWrite = histogram("store_write_duration_seconds", "Durable writes through the store, commit included: advance (a trigger's cursor and events) or record (journal and outcomes).", "op")
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics live (for promhttp, and for tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Attach registers the gauges read at each scrape from the engine (trigger
// health, poll lag, connections) and its store (queue depth, oldest
// queued run, dead letters), when the store can count them.
func (m *Metrics) Attach(eng *engine.Engine, store engine.Store) {
	qs, _ := store.(engine.QueueStatser)
	ws, _ := store.(engine.WriterStatser)
	m.reg.MustRegister(&stateCollector{eng: eng, queue: qs, writer: ws})
}

func (m *Metrics) EventsSeen(recipe string, fresh, duplicates int) {
	if fresh > 0 {
		m.events.WithLabelValues(recipe).Add(float64(fresh))
	}
	if duplicates > 0 {
		m.duplicates.WithLabelValues(recipe).Add(float64(duplicates))
	}
}

func (m *Metrics) RunFinished(recipe, outcome string, took time.Duration) {
	m.runs.WithLabelValues(recipe, outcome).Inc()
	if outcome == engine.RunSuppressed {
		m.echoes.WithLabelValues(recipe).Inc()
	}
	if took > 0 {
		m.runDuration.WithLabelValues(recipe).Observe(took.Seconds())
	}
}

func (m *Metrics) StepAttempt(recipe, step, action, outcome string, took time.Duration) {
	k := stepKey{recipe, step, action}
	m.mu.RLock()
	c := m.steps[k]
	m.mu.RUnlock()
	if c == nil {
		c = &stepChildren{
			succeeded: m.stepAttempts.WithLabelValues(recipe, step, action, "succeeded"),
			retry:     m.stepAttempts.WithLabelValues(recipe, step, action, "retry"),
			failed:    m.stepAttempts.WithLabelValues(recipe, step, action, "failed"),
			inDoubt:   m.stepAttempts.WithLabelValues(recipe, step, action, "in_doubt"),
			retries:   m.stepRetries.WithLabelValues(recipe, step, action),
			duration:  m.stepDuration.WithLabelValues(recipe, step, action),
		}
		m.mu.Lock()
		m.steps[k] = c
		m.mu.Unlock()
	}
	switch outcome {
	case "succeeded":
		c.succeeded.Inc()
	case "retry":
		c.retry.Inc()
		c.retries.Inc()
	case "failed":
		c.failed.Inc()
	case "in_doubt":
		c.inDoubt.Inc()
	default:
		m.stepAttempts.WithLabelValues(recipe, step, action, outcome).Inc()
	}
	c.duration.Observe(took.Seconds())
}

// BatchCall counts one call of an action's batch form and its size
// (engine.BatchObserver).
func (m *Metrics) BatchCall(recipe, step, action string, size int, _ time.Duration) {
	m.batchCalls.WithLabelValues(recipe, step, action).Inc()
	m.batchSize.WithLabelValues(recipe, step, action).Observe(float64(size))
}

var _ engine.BatchObserver = (*Metrics)(nil)

func (m *Metrics) PollFinished(recipe string, ok bool, took time.Duration) {
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	m.polls.WithLabelValues(recipe, outcome).Inc()
	m.pollDuration.WithLabelValues(recipe).Observe(took.Seconds())
}

func (m *Metrics) WebhookDelivery(recipe, outcome string) {
	m.webhooks.WithLabelValues(recipe, outcome).Inc()
}

// codeClasses are the status classes, indexed by status/100.
var codeClasses = [...]string{"error", "1xx", "2xx", "3xx", "4xx", "5xx"}

func classIndex(status int) int {
	if c := status / 100; status > 0 && c < len(codeClasses) {
		return c
	}
	return 0
}

func (m *Metrics) HTTPRequest(connector, operation string, status int, took time.Duration) {
	k := reqKey{connector, operation}
	m.mu.RLock()
	c := m.reqs[k]
	m.mu.RUnlock()
	if c == nil {
		c = &reqChildren{limited: m.http429.WithLabelValues(connector), duration: m.httpDuration.WithLabelValues(connector, operation)}
		for i, class := range codeClasses {
			c.byClass[i] = m.httpRequests.WithLabelValues(connector, operation, class)
		}
		m.mu.Lock()
		m.reqs[k] = c
		m.mu.Unlock()
	}
	c.byClass[classIndex(status)].Inc()
	if status == 429 {
		c.limited.Inc()
	}
	c.duration.Observe(took.Seconds())
}

func (m *Metrics) RateLimitPause(connector string, waited time.Duration) {
	m.pauses.WithLabelValues(connector).Inc()
	m.pauseSeconds.WithLabelValues(connector).Add(waited.Seconds())
}

func (m *Metrics) StoreWrite(op string, took time.Duration) {
	m.mu.RLock()
	o := m.store[op]
	m.mu.RUnlock()
	if o == nil {
		o = m.storeWrite.WithLabelValues(op)
		m.mu.Lock()
		m.store[op] = o
		m.mu.Unlock()
	}
	o.Observe(took.Seconds())
}

func (m *Metrics) AlertFed(recipe, cause string, duplicate bool) {
	outcome := "fed"
	if duplicate {
		outcome = "duplicate"
	}
	m.alerts.WithLabelValues(recipe, cause, outcome).Inc()
}

var _ engine.Observer = (*Metrics)(nil)

// stateCollector reads gauges at scrape time: nothing is kept up to date
// on the hot path for them.
type stateCollector struct {
	eng    *engine.Engine
	queue  engine.QueueStatser
	writer engine.WriterStatser
}

var (
	descQueued  = prometheus.NewDesc(namespace+"_queue_depth", "Runs queued in the store, every runner's.", nil, nil)
	descRunning = prometheus.NewDesc(namespace+"_runs_running", "Runs claimed and running, every runner's.", nil, nil)
	descOldest  = prometheus.NewDesc(namespace+"_queue_oldest_age_seconds", "Age of the oldest queued run; 0 when none is queued.", nil, nil)
	descDead    = prometheus.NewDesc(namespace+"_dead_letters_open", "Dead-lettered runs not replayed (memberflow dlq list).", nil, nil)
	descStoreUp = prometheus.NewDesc(namespace+"_store_up", "1 when the last scrape could read the queue from the store.", nil, nil)
	descLag     = prometheus.NewDesc(namespace+"_trigger_poll_lag_seconds", "Now minus the start of the last poll that caught up with the source: how far behind the trigger is.", []string{"recipe"}, nil)
	descSuccess = prometheus.NewDesc(namespace+"_trigger_last_success_timestamp_seconds", "When the last successful poll (or stored webhook delivery) began, Unix time.", []string{"recipe", "mode"}, nil)
	descFailing = prometheus.NewDesc(namespace+"_trigger_failing", "1 while a trigger's polls (or deliveries) fail.", []string{"recipe"}, nil)
	descAuth    = prometheus.NewDesc(namespace+"_connection_auth_failing", "1 while a service refuses a connection's credentials (HTTP 401).", []string{"connection", "connector"}, nil)
	descBusy    = prometheus.NewDesc(namespace+"_store_writer_busy_seconds_total", "Time the store's one writer spent in transactions (SQLite): a rate near 1 is the store's ceiling.", nil, nil)
	descCommits = prometheus.NewDesc(namespace+"_store_commits_total", "Transactions the store's one writer committed (SQLite).", nil, nil)
	descWrites  = prometheus.NewDesc(namespace+"_store_writes_total", "Writes (advances, journal writes, claims) the store's one writer committed, several to a transaction (SQLite).", nil, nil)
	descSpooled = prometheus.NewDesc(namespace+"_spool_deliveries", "Webhook deliveries acknowledged and waiting in the runner's delivery spool (--spool) for the store to take them.", nil, nil)
	descSpoolB  = prometheus.NewDesc(namespace+"_spool_bytes", "Size of the delivery spool's files.", nil, nil)
	descSpoolA  = prometheus.NewDesc(namespace+"_spool_oldest_age_seconds", "Age of the oldest delivery waiting in the spool; 0 when none waits.", nil, nil)
	descSpoolF  = prometheus.NewDesc(namespace+"_spool_full", "1 while the delivery spool is full (its size or age limit) and deliveries are refused.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueued, descRunning, descOldest, descDead, descStoreUp, descLag, descSuccess, descFailing, descAuth, descBusy, descCommits, descWrites, descSpooled, descSpoolB, descSpoolA, descSpoolF} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if c.queue != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.queue.QueueStats(ctx)
		cancel()
		up := 0.0
		if err == nil {
			up = 1
			ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(st.Queued))
			ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(st.Running))
			ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(st.Dead))
			age := 0.0
			if !st.OldestQueued.IsZero() {
				age = max(0, now.Sub(st.OldestQueued).Seconds())
			}
			ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age)
		}
		ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, up)
	}
	if c.writer != nil {
		ws := c.writer.WriterStats()
		ch <- prometheus.MustNewConstMetric(descBusy, prometheus.CounterValue, ws.Busy.Seconds())
		ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(ws.Commits))
		ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(ws.Writes))
	}
	if sp, ok := c.eng.SpoolStats(); ok {
		age := 0.0
		if !sp.Oldest.IsZero() {
			age = max(0, now.Sub(sp.Oldest).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(descSpooled, prometheus.GaugeValue, float64(sp.Deliveries))
		ch <- prometheus.MustNewConstMetric(descSpoolB, prometheus.GaugeValue, float64(sp.Bytes))
		ch <- prometheus.MustNewConstMetric(descSpoolA, prometheus.GaugeValue, age)
		ch <- prometheus.MustNewConstMetric(descSpoolF, prometheus.GaugeValue, boolGauge(sp.Full != nil))
	}
	status := c.eng.Status()
	for _, t := range status.Triggers {
		if t.Mode == "poll" {
			since := t.CaughtUp
			if since.IsZero() {
				since = status.Started
			}
			if !since.IsZero() {
				ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, max(0, now.Sub(since).Seconds()), t.Recipe)
			}
		}
		if !t.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(descSuccess, prometheus.GaugeValue, float64(t.LastSuccess.UnixNano())/1e9, t.Recipe, t.Mode)
		}
		ch <- prometheus.MustNewConstMetric(descFailing, prometheus.GaugeValue, boolGauge(!t.FailingSince.IsZero()), t.Recipe)
	}
	for _, cs := range status.Connections {
		ch <- prometheus.MustNewConstMetric(descAuth, prometheus.GaugeValue, boolGauge(cs.AuthFailing), cs.Name, cs.Connector)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
