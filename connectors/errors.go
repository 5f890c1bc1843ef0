package connectors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrInDoubt marks a write that may or may not have taken effect (the
	// connection dropped after the request was sent). It is never re-sent
	// blindly: the engine settles it with ActionSpec.Settle.
	ErrInDoubt = errors.New("write in doubt")
	// ErrUnauthorized marks a webhook delivery whose signature is missing
	// or wrong.
	ErrUnauthorized = errors.New("signature not valid")
	// ErrStale marks a webhook delivery outside the accepted time window.
	ErrStale = errors.New("delivery outside the accepted time window")
	// ErrRetriesSpent marks a transient failure the caller's retry policy
	// has already retried as often as it allows: it is not retried again.
	ErrRetriesSpent = errors.New("retries spent")
)

// RetryFunc is a caller's retry policy, handed to the HTTP runtime in the
// context: after a request failed in a way that is safe to re-send, the
// runtime calls it with the request's failed attempts so far; it waits
// the policy's backoff and reports whether to send again. The engine sets
// it from the step's policy, so that one policy (and one budget per
// request) governs every retry.
type RetryFunc func(ctx context.Context, failed int, err error) bool

type retryKey struct{}

// WithRetry returns a context carrying a retry policy.
func WithRetry(ctx context.Context, f RetryFunc) context.Context {
	return context.WithValue(ctx, retryKey{}, f)
}

// RetryFrom returns the context's retry policy, nil when none.
func RetryFrom(ctx context.Context) RetryFunc {
	f, _ := ctx.Value(retryKey{}).(RetryFunc)
	return f
}

// SendCheck says whether a write may still be sent for the caller: the
// engine's answers nil while this runner's leases are known to be held,
// and an error once they may have ended (the process was frozen, or its
// store unreachable, for most of a lease), when another runner may have
// taken the run over and be sending the same write. The services take no
// fencing token, so the check is made as late as can be: the HTTP runtime
// makes it before each attempt of a write.
type SendCheck func() error

type sendCheckKey struct{}

// WithSendCheck returns a context carrying a send check.
func WithSendCheck(ctx context.Context, f SendCheck) context.Context {
	return context.WithValue(ctx, sendCheckKey{}, f)
}

// CheckSend runs the context's send check; nil when it has none.
func CheckSend(ctx context.Context) error {
	if f, _ := ctx.Value(sendCheckKey{}).(SendCheck); f != nil {
		return f()
	}
	return nil
}

// RetriesSpentError wraps a transient failure that was retried as often as
// the policy allows.
type RetriesSpentError struct {
	Attempts int
	Err      error
}

func (e *RetriesSpentError) Error() string {
	return fmt.Sprintf("giving up after %d attempts: %v", e.Attempts, e.Err)
}
func (e *RetriesSpentError) Unwrap() error        { return e.Err }
func (e *RetriesSpentError) Is(target error) bool { return target == ErrRetriesSpent }

// APIError is an error answer from a service, parsed from that service's
// own error body.
type APIError struct {
	Service string // the connector's name
	Status  int    // HTTP status
	Code    string // the service's own code when it has one ("4060406", "insufficient_credits")
	Message string
	// Retryable is true for 429, 5xx and other transient answers.
	Retryable bool
	// RetryAfter is the service's hint, when it gave one.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: HTTP %d", e.Service, e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// InDoubtError wraps the ambiguous failure of a non-idempotent write.
type InDoubtError struct {
	Method, Path string
	Err          error
}

func (e *InDoubtError) Error() string {
	return fmt.Sprintf("%s %s: %v: %v", e.Method, e.Path, ErrInDoubt, e.Err)
}
func (e *InDoubtError) Unwrap() error        { return e.Err }
func (e *InDoubtError) Is(target error) bool { return target == ErrInDoubt }

// Retryable reports whether err is worth trying again: a retryable API
// error, or a failure the connector marked as transient. An in-doubt write
// is not retryable until it is settled.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, ErrInDoubt) || errors.Is(err, ErrRetriesSpent) {
		return false
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.Retryable
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) {
		return t.Temporary()
	}
	return false
}
