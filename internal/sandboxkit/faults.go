package sandboxkit

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Faults configures deterministic fault injection for a seed.
type Faults struct {
	// FailRate is the share of requests answered 500 without being applied.
	FailRate float64
	// DropRate is the share of requests whose connection is closed with no
	// answer; half of them after the request was applied (the ambiguous
	// case a client must settle, never blindly re-send).
	DropRate float64
	// Latency is added before each answer.
	Latency time.Duration
	// Seed makes the sequence of faults reproducible.
	Seed int64
}

// Enabled reports whether any fault is configured.
func (f Faults) Enabled() bool { return f.FailRate > 0 || f.DropRate > 0 || f.Latency > 0 }

// Injector wraps handlers with the configured faults. Paths under
// /_sandbox are never faulted.
type Injector struct {
	f   Faults
	mu  sync.Mutex
	rng *rand.Rand
}

// NewInjector returns an injector with its own deterministic source.
func NewInjector(f Faults) *Injector {
	return &Injector{f: f, rng: rand.New(rand.NewPCG(uint64(f.Seed), 0x5eed))}
}

// Fault is what happens to one request.
type Fault int

const (
	NoFault    Fault = iota
	Fail             // 500, not applied
	DropBefore       // connection closed, not applied
	DropAfter        // applied, then the connection closed with no answer
)

// Next draws the fault for one request.
func (in *Injector) Next() Fault {
	if in == nil || (in.f.FailRate <= 0 && in.f.DropRate <= 0) {
		return NoFault
	}
	in.mu.Lock()
	x, half := in.rng.Float64(), in.rng.IntN(2)
	in.mu.Unlock()
	switch {
	case x < in.f.FailRate:
		return Fail
	case x < in.f.FailRate+in.f.DropRate:
		if half == 0 {
			return DropBefore
		}
		return DropAfter
	}
	return NoFault
}

// Wrap applies faults to next. failBody writes the service's own 500 body.
func (in *Injector) Wrap(next http.Handler, failBody func(w http.ResponseWriter)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if in.f.Latency > 0 {
			time.Sleep(in.f.Latency)
		}
		switch in.Next() {
		case Fail:
			failBody(w)
			return
		case DropBefore:
			drop(w)
			return
		case DropAfter:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			drop(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// drop closes the client connection without an answer.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a recorder: the closest thing is to abort the handler.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
