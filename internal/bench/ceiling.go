package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/internal/sandbox"
)

// The ceiling (memberflow bench --ceiling) is the fastest the benchmark's
// backfill could go against the same sandbox: a minimal net/http client
// that sends exactly the requests the engine sent, as the sandbox
// recorded them (method, target with its query, headers, body), to the
// sandbox reset to the same seed, with as many workers as the engine's,
// and nothing else: no engine, no store, no expressions, no schemas, no
// knowledge of any API. The engine's members/s over the ceiling's is what
// the runner costs. Since it replays the recording, it cannot drift from
// what the connectors send; TestCeilingReplaysWhatWasRecorded records the
// replay too and compares the two.
//
// The workers take the recorded requests in the order they arrived, each
// the next one free: the engine's concurrency with the engine's order.

// CeilingOptions configure one run of the minimal client.
type CeilingOptions struct {
	// SandboxURL is the base URL of the sandbox the backfill ran on; the
	// client resets it (the same seed) before replaying.
	SandboxURL string
	// Concurrency is the number of requests in flight at once; default
	// 32, as the engine's workers.
	Concurrency int
	// SandboxCPU, when set, reads the sandbox process's CPU time so far.
	SandboxCPU func() (time.Duration, error)
	// Client sends the requests; nil is a client with the connectors'
	// connection pool (apiclient's transport settings).
	Client *http.Client
	// Backfill is the engine's run, made with Options.Record: its
	// recorded requests are replayed, and its members give members/s.
	Backfill *Result
}

// CeilingResult is what the minimal client measured.
type CeilingResult struct {
	// Members are the backfill's: the members the replayed requests
	// handled.
	Members       int64         `json:"members"`
	Replayed      int64         `json:"replayed"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	MembersPerSec float64       `json:"members_per_second"`
	// Requests counts the requests the sandbox received during the run,
	// by "service METHOD /route".
	Requests          map[string]int64 `json:"requests"`
	RequestsPerMember float64          `json:"requests_per_member"`
	CPU               time.Duration    `json:"cpu_ns"`
	SandboxCPU        time.Duration    `json:"sandbox_cpu_ns,omitempty"`
	// Lost counts the backfill's requests the recording did not keep (a
	// bound on its size): the replay is short by that many.
	Lost int `json:"lost,omitempty"`
}

// RunCeiling resets the sandbox and replays the backfill's recorded
// requests on it.
func RunCeiling(ctx context.Context, opts CeilingOptions) (*CeilingResult, error) {
	bf := opts.Backfill
	switch {
	case opts.SandboxURL == "":
		return nil, errors.New("bench: ceiling: no sandbox URL")
	case bf == nil || len(bf.Recorded) == 0:
		return nil, errors.New("bench: ceiling: no recorded requests to replay: run the backfill with Options.Record")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 32
	}
	base := strings.TrimRight(opts.SandboxURL, "/")
	hc := opts.Client
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 64 // as apiclient's
		hc = &http.Client{Transport: t, Timeout: 30 * time.Second}
		defer t.CloseIdleConnections()
	}
	if err := ResetSandbox(ctx, base); err != nil {
		return nil, fmt.Errorf("bench: ceiling: %w", err)
	}
	before, err := FetchStats(ctx, base, bf.services[0], bf.services[1])
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errOnce  sync.Once
		firstErr error
		next     atomic.Int64
		sent     atomic.Int64
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	reqs := bf.Recorded
	cpu0, sbCPU0 := processCPU(), sandboxCPU(opts.SandboxCPU, hclog.NewNullLogger())
	start := time.Now()
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(reqs)) {
					return
				}
				if err := replay(ctx, hc, base, reqs[i]); err != nil {
					fail(fmt.Errorf("request %d of %d: %w", i+1, len(reqs), err))
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, sbCPU1 := processCPU(), sandboxCPU(opts.SandboxCPU, hclog.NewNullLogger())
	if firstErr != nil {
		return nil, fmt.Errorf("bench: ceiling: %w", firstErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: ceiling: interrupted: %w", err)
	}
	after, err := FetchStats(context.WithoutCancel(ctx), base, bf.services[0], bf.services[1])
	if err != nil {
		return nil, err
	}
	res := &CeilingResult{Members: bf.Members, Replayed: sent.Load(), Elapsed: elapsed, Lost: bf.RecordLost,
		Requests: after.requestsSince(before), CPU: cpu1 - cpu0}
	if sbCPU0 >= 0 && sbCPU1 >= 0 {
		res.SandboxCPU = sbCPU1 - sbCPU0
	}
	if s := elapsed.Seconds(); s > 0 {
		res.MembersPerSec = float64(res.Members) / s
	}
	res.RequestsPerMember = perMember(res.Requests, res.Members)
	return res, nil
}

// replay sends one recorded request as it was sent and reads the answer
// to its end. An answer other than 2xx fails the ceiling: the engine's
// were all successes on the same data.
func replay(ctx context.Context, hc *http.Client, base string, rec sandbox.Recorded) error {
	var body io.Reader
	if len(rec.Body) > 0 {
		body = bytes.NewReader(rec.Body)
	}
	req, err := http.NewRequestWithContext(ctx, rec.Method, base+rec.Target, body)
	if err != nil {
		return err
	}
	req.Header = rec.Header.Clone()
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("%s %s: HTTP %d: %s", rec.Method, req.URL.Path, res.StatusCode, b)
	}
	_, err = io.Copy(io.Discard, res.Body)
	return err
}

// startRecording asks the sandbox to keep every API request.
func startRecording(ctx context.Context, base string) error {
	return sandboxCall(ctx, http.MethodPost, base+"/_sandbox/recording", nil)
}

// stopRecording stops the sandbox's recording and returns it.
func stopRecording(ctx context.Context, base string) (*sandbox.RecordingAnswer, error) {
	var out sandbox.RecordingAnswer
	if err := sandboxCall(ctx, http.MethodDelete, base+"/_sandbox/recording", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func sandboxCall(ctx context.Context, method, target string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return fmt.Errorf("bench: %s %s: %w", method, target, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: %s %s: %w", method, target, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("bench: %s %s: HTTP %d: %s (is this a memberflow sandbox of this version?)", method, target, res.StatusCode, b)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("bench: %s %s: %w", method, target, err)
	}
	return nil
}

// perMember is the requests over the members, 0 without members.
func perMember(requests map[string]int64, members int64) float64 {
	if members == 0 {
		return 0
	}
	var n int64
	for _, v := range requests {
		n += v
	}
	return float64(n) / float64(members)
}

// ResetSandbox seeds the sandbox at base again with its own options, and
// zeroes its request counts.
func ResetSandbox(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/_sandbox/reset", nil)
	if err != nil {
		return fmt.Errorf("resetting the sandbox: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("resetting the sandbox: %w", err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("resetting the sandbox: HTTP %d", res.StatusCode)
	}
	return nil
}
