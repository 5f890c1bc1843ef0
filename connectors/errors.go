package connectors

import (
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
)

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
	if err == nil || errors.Is(err, ErrInDoubt) {
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
