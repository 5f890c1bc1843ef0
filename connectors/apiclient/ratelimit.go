package apiclient

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"

	"github.com/memberflow/memberflow/connectors"
)

// EndpointLimit is a stricter limit on some requests of a service (a
// deprecated search endpoint limited to 100 per 60 s), kept on top of the
// connection's own.
type EndpointLimit struct {
	Method string // "" matches any
	Path   string // exact request path, as in Request.Path
	Limit  connectors.RateLimit
}

// limiter paces one connection so that it never meets a 429 by its own
// doing. Every request of the connection passes through wait, so a pause
// holds them all, the ones already queued included:
//
//   - token buckets sized so that no window of the documented length, at
//     any alignment, holds more than the documented number of requests;
//   - the service's rate-limit headers (burst and daily X-RateLimit-*),
//     for a quota shared with other clients: a window
//     nearly spent pauses the connection for the window;
//   - a 429 pauses the connection for Retry-After, else the service's
//     counting period, so that the next try falls in a fresh one.
type limiter struct {
	main      *rate.Limiter
	endpoints []endpointBucket
	headers   bool
	period    time.Duration // pause after a bare 429
	log       hclog.Logger
	now       func() time.Time
	sleep     func(ctx context.Context, d time.Duration) error

	mu         sync.Mutex
	pauseUntil time.Time
	// The burst window as the headers show it: when the current one began
	// (its remaining count jumped back up) and the last remaining seen.
	windowStart   time.Time
	lastRemaining int
}

type endpointBucket struct {
	method, path string
	lim          *rate.Limiter
}

// limiters holds the process's limiters, one per account of a service:
// recipes that each open a connection to the same account share its
// limit, so they share its limiter.
var limiters sync.Map // limiterKey → *limiter

// limiterKey names an account: the service, its base URL, who calls
// (a digest of the credentials, never the credentials) and the limits.
// A service that counts per caller address is one account for the
// process (Config.LimitsPerAddress).
func limiterKey(cfg Config) string {
	h := sha256.New()
	if !cfg.LimitsPerAddress {
		for _, s := range cfg.Auth.Secrets() {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		h.Write([]byte(cfg.Auth.ClientID))
	}
	return fmt.Sprintf("%s|%s|%x|%+v|%+v|%s|%v", cfg.Service, cfg.BaseURL, h.Sum(nil)[:8], cfg.RateLimit, cfg.EndpointLimits, cfg.RateLimitPeriod, cfg.RateLimitHeaders)
}

// sharedLimiter returns the account's limiter, made on first use.
func sharedLimiter(cfg Config, now func() time.Time, sleep func(context.Context, time.Duration) error) *limiter {
	key := limiterKey(cfg)
	if l, ok := limiters.Load(key); ok {
		return l.(*limiter)
	}
	l, _ := limiters.LoadOrStore(key, newLimiter(cfg, now, sleep))
	return l.(*limiter)
}

// bucket returns a token bucket that keeps within l in every window of
// l.Per: burst + rate × (Per + arrivalJitter) = Requests. Nil when
// unlimited.
func bucket(l connectors.RateLimit) *rate.Limiter {
	if l.Unlimited() {
		return nil
	}
	burst := l.Burst
	if burst <= 0 {
		burst = max(1, l.Requests/20)
	}
	if burst >= l.Requests {
		burst = max(1, l.Requests/2)
	}
	// Requests that leave evenly may arrive bunched (scheduling, the
	// network): the refill counts the window as arrivalJitter longer.
	return rate.NewLimiter(rate.Limit(float64(l.Requests-burst)/(l.Per+arrivalJitter).Seconds()), burst)
}

// arrivalJitter is how much closer together requests may arrive at the
// service than they left.
const arrivalJitter = 50 * time.Millisecond

func newLimiter(cfg Config, now func() time.Time, sleep func(context.Context, time.Duration) error) *limiter {
	l := &limiter{main: bucket(cfg.RateLimit), headers: cfg.RateLimitHeaders, log: cfg.Logger, now: now, sleep: sleep}
	l.period = cfg.RateLimitPeriod
	if l.period <= 0 {
		l.period = cfg.RateLimit.Per
	}
	if l.period <= 0 {
		l.period = time.Second // nothing known: a short pause, the step's backoff does the rest
	}
	l.period = min(l.period, time.Minute)
	for _, e := range cfg.EndpointLimits {
		if b := bucket(e.Limit); b != nil {
			l.endpoints = append(l.endpoints, endpointBucket{method: e.Method, path: "/" + strings.TrimLeft(e.Path, "/"), lim: b})
		}
	}
	return l
}

// wait holds the request until the connection may send it; call done
// with the answer.
func (l *limiter) wait(ctx context.Context, req *Request) error {
	if hook, ok := ctx.Value(waitHookKey{}).(func(time.Duration)); ok {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d >= minReportedWait {
				hook(d)
			}
		}()
	}
	var served time.Time // the end of the last pause this request waited out
	for {
		if err := l.waitPause(ctx, &served); err != nil {
			return err
		}
		if l.main != nil {
			if err := l.main.Wait(ctx); err != nil {
				return err
			}
		}
		path := "/" + strings.TrimLeft(req.Path, "/")
		for _, e := range l.endpoints {
			if (e.method == "" || e.method == req.Method) && e.path == path {
				if err := e.lim.Wait(ctx); err != nil {
					return err
				}
			}
		}
		// A pause that began while this request waited for a token holds
		// it too: the token is spent, the request waits its turn again.
		if !l.pausedBeyond(served) {
			return nil
		}
	}
}

// pausedBeyond reports whether a pause is in force that ends after served.
func (l *limiter) pausedBeyond(served time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pauseUntil.After(served) && l.now().Before(l.pauseUntil)
}

// waitPause sleeps until the pause in force ends, again if it was
// extended meanwhile.
func (l *limiter) waitPause(ctx context.Context, served *time.Time) error {
	for {
		l.mu.Lock()
		until := l.pauseUntil
		d := until.Sub(l.now())
		l.mu.Unlock()
		if d <= 0 || !until.After(*served) {
			return nil
		}
		if err := l.sleep(ctx, d); err != nil {
			return err
		}
		*served = until
	}
}

// done reads an answer: its rate-limit headers and status may pause the
// connection. It returns the
// pause a 429 asked for, so that the caller can say how long to wait.
func (l *limiter) done(h http.Header, status int, retryAfter time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.headers && h != nil {
		if d, why := l.headerPause(h); d > 0 {
			l.pauseFor(now, d, why)
		}
	}
	if status == http.StatusTooManyRequests {
		d := retryAfter
		if d <= 0 {
			// No hint (a bare 429): wait out the counting period.
			d = l.period
		}
		l.pauseFor(now, d, "429 Too Many Requests")
		return l.pauseUntil.Sub(now)
	}
	return 0
}

// headerPause reads the X-RateLimit-* headers: the burst window
// (X-RateLimit-Remaining of X-RateLimit-Max per
// X-RateLimit-Interval-Milliseconds) and the daily one
// (X-RateLimit-Daily-Remaining of X-RateLimit-Limit-Daily). A window
// nearly spent pauses the connection: for the interval, or an hour for
// the daily window, whose reset the service does not say. (The bucket
// alone keeps a connection within the burst window; the headers guard a
// quota other apps of the location share.) Call with l.mu held.
func (l *limiter) headerPause(h http.Header) (time.Duration, string) {
	if daily, err := strconv.Atoi(h.Get("X-RateLimit-Daily-Remaining")); err == nil && daily <= 1 {
		return time.Hour, "daily rate limit spent"
	}
	remaining, err1 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	intervalMS, err2 := strconv.Atoi(h.Get("X-RateLimit-Interval-Milliseconds"))
	if err1 != nil || err2 != nil || intervalMS <= 0 {
		return 0, ""
	}
	interval := time.Duration(intervalMS) * time.Millisecond
	now := l.now()
	limit, _ := strconv.Atoi(h.Get("X-RateLimit-Max"))
	if l.windowStart.IsZero() || (remaining > l.lastRemaining && remaining >= limit/2) {
		// A fresh window (answers arrive out of order, so only a jump back
		// up to at least half the limit counts).
		l.windowStart = now
	}
	l.lastRemaining = remaining
	if remaining > 1 {
		return 0, ""
	}
	// Spent: wait for the window to end, as far as the answers tell when
	// it began; a whole interval when they cannot.
	if end := l.windowStart.Add(interval); end.After(now) && now.Sub(l.windowStart) < interval {
		return end.Sub(now), "rate limit window spent"
	}
	return interval, "rate limit window spent"
}

// pauseFor extends the pause to now+d. Call with l.mu held.
func (l *limiter) pauseFor(now time.Time, d time.Duration, why string) {
	if u := now.Add(d); u.After(l.pauseUntil) {
		l.pauseUntil = u
		l.log.Debug("pausing the connection", "for", d, "why", why)
	}
}
