package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/memberflow/memberflow/internal/sandbox"
)

// SandboxStats is what the benchmark reads from GET /_sandbox/stats.
type SandboxStats struct {
	Users                int
	Credentials          int
	CredentialDuplicates int
	// Duplicates adds up every service's duplicates.
	Duplicates int
	// Requests counts the requests both services received, by "service
	// METHOD /route".
	Requests map[string]int64
}

// requestsSince is the requests received after before was read.
func (s SandboxStats) requestsSince(before SandboxStats) map[string]int64 {
	out := map[string]int64{}
	for k, n := range s.Requests {
		if d := n - before.Requests[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// FetchStats reads the sandbox's object and duplicate counts: the users of
// the members service, the credentials of the certificates service.
func FetchStats(ctx context.Context, base, members, certificates string) (SandboxStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := base + "/_sandbox/stats"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return SandboxStats{}, fmt.Errorf("bench: sandbox stats: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return SandboxStats{}, fmt.Errorf("bench: sandbox stats: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return SandboxStats{}, fmt.Errorf("bench: sandbox stats: GET %s: %w", url, err)
	}
	if res.StatusCode != http.StatusOK {
		return SandboxStats{}, fmt.Errorf("bench: sandbox stats: GET %s: HTTP %d: %.200s", url, res.StatusCode, body)
	}
	var st sandbox.Stats
	if err := json.Unmarshal(body, &st); err != nil {
		return SandboxStats{}, fmt.Errorf("bench: sandbox stats: GET %s: not the sandbox's stats: %w", url, err)
	}
	m, ok := st.Services[members]
	if !ok {
		return SandboxStats{}, fmt.Errorf("bench: sandbox stats: GET %s: no %s service; is this a memberflow sandbox?", url, members)
	}
	a, ok := st.Services[certificates]
	if !ok {
		return SandboxStats{}, fmt.Errorf("bench: sandbox stats: GET %s: no %s service; is this a memberflow sandbox?", url, certificates)
	}
	requests := map[string]int64{}
	for _, svc := range []string{members, certificates} {
		for route, n := range st.Services[svc].Requests {
			requests[svc+" "+route] += n
		}
	}
	return SandboxStats{Users: m.Objects["users"], Credentials: a.Objects["credentials"], CredentialDuplicates: a.Duplicates["credentials"],
		Duplicates: st.Totals.Duplicates, Requests: requests}, nil
}
