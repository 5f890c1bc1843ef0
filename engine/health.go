package engine

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// TriggerStatus is the health of one recipe's trigger.
type TriggerStatus struct {
	Recipe   string        `json:"recipe"`
	Mode     string        `json:"mode"` // poll or webhook
	Interval time.Duration `json:"interval_ns,omitempty"`
	// Pace is the longer wait the source asked between passes (a quota),
	// when it asked one; readiness counts intervals of it.
	Pace time.Duration `json:"pace_ns,omitempty"`
	// LastSuccess is when the last successful poll (or stored delivery)
	// began; zero before the first.
	LastSuccess time.Time `json:"last_success,omitempty"`
	// CaughtUp is when the last poll that left nothing behind began: the
	// source has been seen up to then, so now − CaughtUp is the poll lag.
	CaughtUp     time.Time `json:"caught_up,omitempty"`
	FailingSince time.Time `json:"failing_since,omitempty"`
	Failures     int       `json:"failures,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
}

// ConnectionStatus is the health of one open connection.
type ConnectionStatus struct {
	Name        string `json:"name"`
	Connector   string `json:"connector"`
	AuthFailing bool   `json:"auth_failing"`
}

// Status is a snapshot of the runner's health, for /readyz and metrics.
type Status struct {
	Started     time.Time          `json:"started"`
	Triggers    []TriggerStatus    `json:"triggers"`
	Connections []ConnectionStatus `json:"connections"`
}

// Status returns the health of every trigger and watched connection.
func (e *Engine) Status() Status {
	w := e.watch
	w.mu.Lock()
	st := Status{Started: w.started}
	for name, th := range w.triggers {
		st.Triggers = append(st.Triggers, TriggerStatus{Recipe: name, Mode: th.mode, Interval: th.interval, Pace: th.pace,
			LastSuccess: th.lastSuccess, CaughtUp: th.caughtUp, FailingSince: th.failingSince, Failures: th.failures, LastError: th.lastErr})
	}
	w.mu.Unlock()
	sort.Slice(st.Triggers, func(i, j int) bool { return st.Triggers[i].Recipe < st.Triggers[j].Recipe })
	e.mu.Lock()
	seen := map[string]bool{}
	for _, oc := range e.conns {
		if !oc.watched || seen[oc.name] {
			continue
		}
		seen[oc.name] = true
		st.Connections = append(st.Connections, ConnectionStatus{Name: oc.name, Connector: oc.connector, AuthFailing: oc.authFailing.Load()})
	}
	e.mu.Unlock()
	sort.Slice(st.Connections, func(i, j int) bool { return st.Connections[i].Name < st.Connections[j].Name })
	return st
}

// Check is one readiness check and its outcome.
type Check struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// ReadyIntervals is how many polling intervals a trigger may go without a
// successful poll before the runner is not ready.
const ReadyIntervals = 3

// Checks evaluates readiness: the store answers and its last commit did
// not fail for the storage (WriteHealth) — with a delivery spool, the
// spool is not full instead, while the store fails —, every polling trigger
// succeeded within ReadyIntervals intervals (counted from the start
// before its first success), and no connection's credentials are refused.
func (e *Engine) Checks(ctx context.Context) []Check {
	var out []Check
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	store := Check{Name: "store", OK: true}
	if _, err := e.store.Cursor(ctx, "memberflow/readyz"); err != nil {
		store = Check{Name: "store", Error: e.redact.String(err.Error())}
	} else if wh, ok := e.store.(WriteHealth); ok && wh.WriteError() != nil {
		// The store reads but cannot write: nothing is enqueued, claimed
		// or journaled, and deliveries are answered 503.
		store = Check{Name: "store", Error: e.redact.String("writes fail: " + wh.WriteError().Error())}
	}
	var spool *Check
	if st, ok := e.SpoolStats(); ok {
		spool = &Check{Name: "spool", OK: st.Full == nil}
		if st.Full != nil {
			spool.Error = e.redact.String(st.Full.Error())
		} else if !store.OK {
			// The runner still takes webhook deliveries: they wait in the
			// spool. A load balancer must keep sending them here, so the
			// failing store is said, and not counted, until the spool is
			// full.
			store.OK = true
			store.Error += fmt.Sprintf("; webhook deliveries are kept in the spool %s meanwhile (%d waiting)", st.Dir, st.Deliveries)
		}
	}
	out = append(out, store)
	if spool != nil {
		out = append(out, *spool)
	}
	st := e.Status()
	now := e.now()
	for _, t := range st.Triggers {
		// A webhook trigger with a fallback poll (its interval) counts
		// too: if its deliveries stop and its poll fails, nothing else
		// would say so. A delivery stored is a success like a poll.
		hybrid := t.Mode == "webhook" && t.Interval > 0
		if t.Mode != "poll" && !hybrid {
			continue
		}
		c := Check{Name: "trigger:" + t.Recipe, OK: true}
		since := t.LastSuccess
		if since.IsZero() {
			since = st.Started
		}
		if limit := ReadyIntervals * max(t.Interval, t.Pace, time.Second); !since.IsZero() && now.Sub(since) > limit {
			c.OK = false
			what := "poll"
			if hybrid {
				what = "poll or delivery"
			}
			c.Error = fmt.Sprintf("no successful %s for %s (more than %d intervals of %s)", what, now.Sub(since).Round(time.Second), ReadyIntervals, max(t.Interval, t.Pace))
			if t.LastError != "" {
				c.Error += ": " + t.LastError
			}
		}
		out = append(out, c)
	}
	for _, c := range st.Connections {
		ck := Check{Name: "auth:" + c.Name, OK: !c.AuthFailing}
		if c.AuthFailing {
			ck.Error = fmt.Sprintf("%s refuses the credentials of connection %q (HTTP 401)", c.Connector, c.Name)
		}
		out = append(out, ck)
	}
	return out
}
