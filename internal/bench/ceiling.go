package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/internal/sandbox"
)

// The ceiling (memberflow bench --ceiling) is the fastest the benchmark's
// recipe could go against the same sandbox: a hand-written client that
// sends the requests the engine sends for it, in the same order per
// member, with as many workers, and nothing else: no engine, no store, no
// expressions, no schemas. The engine's members/s over the ceiling's is
// what the runner costs. TestCeilingSendsWhatTheEngineSends compares the
// two request by request, so this file cannot drift from the connectors.
//
// What it hard-codes, from recipe.yaml and the connectors:
//   - the trigger (members.user_changed from the beginning): pages of
//     GET /users/search sorted by dateAdded, 100 a page, by skip, until a
//     short page (connectors/memberships/poll.go);
//   - the condition: membershipStatus "eligible" and an email;
//   - accredible.upsert_credential on a fresh sandbox: a search by the
//     reference, then a create (connectors/accredible/action_credentials.go);
//   - members.update_user: a PUT of the certificate's id and date.
const (
	ceilingPageSize = 100
	ceilingGroupID  = 100001 // recipe.yaml vars.groupId
	ceilingAPIVer   = "2021-07-28"
)

// CeilingOptions configure one run of the minimal client.
type CeilingOptions struct {
	// SandboxURL is the base URL of a freshly seeded sandbox: the client
	// refuses a member who already holds the certificate.
	SandboxURL string
	// Concurrency is the number of members handled at once; default 32,
	// as the engine's workers.
	Concurrency int
	// SandboxCPU, when set, reads the sandbox process's CPU time so far.
	SandboxCPU func() (time.Duration, error)
	// Client sends the requests; nil is a client with the connectors'
	// connection pool (apiclient's transport settings).
	Client *http.Client
}

// CeilingResult is what the minimal client measured.
type CeilingResult struct {
	Members       int64         `json:"members"`
	Eligible      int64         `json:"eligible"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	MembersPerSec float64       `json:"members_per_second"`
	// Requests counts the requests the sandbox received during the run,
	// by "service METHOD /route".
	Requests          map[string]int64 `json:"requests"`
	RequestsPerMember float64          `json:"requests_per_member"`
	CPU               time.Duration    `json:"cpu_ns"`
	SandboxCPU        time.Duration    `json:"sandbox_cpu_ns,omitempty"`
}

// ceilingMember is what the recipe reads of a member.
type ceilingMember struct {
	ID               string `json:"id"`
	Email            string `json:"email"`
	FullName         string `json:"fullName"`
	MembershipStatus string `json:"membershipStatus"`
	EligibilityDate  string `json:"eligibilityDate"`
	EnrollmentDate   string `json:"enrollmentDate"`
	PlanID           string `json:"planId"`
}

// ceilingClient sends the recipe's requests.
type ceilingClient struct {
	hc                  *http.Client
	members, accredible string // service base URLs
	token, key, company string
}

// RunCeiling runs the benchmark's backfill with the minimal client.
func RunCeiling(ctx context.Context, opts CeilingOptions) (*CeilingResult, error) {
	if opts.SandboxURL == "" {
		return nil, errors.New("bench: ceiling: no sandbox URL")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 32
	}
	base := strings.TrimRight(opts.SandboxURL, "/")
	c := &ceilingClient{hc: opts.Client, members: base + "/memberships", accredible: base + "/accredible",
		token: sandbox.DemoAuth("memberships").Token, key: sandbox.DemoAuth("accredible").Key}
	c.company, _ = sandbox.DemoOptions("memberships")["companyId"].(string)
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 64 // as apiclient's
		c.hc = &http.Client{Transport: t, Timeout: 30 * time.Second}
		defer t.CloseIdleConnections()
	}
	before, err := FetchStats(ctx, base, "memberships", "accredible")
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errOnce  sync.Once
		firstErr error
		members  atomic.Int64
		eligible atomic.Int64
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	work := make(chan ceilingMember, 64*opts.Concurrency) // the engine's high-water mark
	cpu0, sbCPU0 := processCPU(), sandboxCPU(opts.SandboxCPU, hclog.NewNullLogger())
	start := time.Now()
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				if ctx.Err() != nil {
					continue // drain
				}
				if err := c.certify(ctx, m); err != nil {
					fail(fmt.Errorf("member %s: %w", m.ID, err))
				}
			}
		}()
	}
	pollErr := c.poll(ctx, func(m ceilingMember) {
		members.Add(1)
		if m.MembershipStatus == "eligible" && m.Email != "" {
			eligible.Add(1)
			work <- m
		}
	})
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, sbCPU1 := processCPU(), sandboxCPU(opts.SandboxCPU, hclog.NewNullLogger())
	if pollErr != nil {
		fail(pollErr)
	}
	if firstErr != nil {
		return nil, fmt.Errorf("bench: ceiling: %w", firstErr)
	}
	after, err := FetchStats(context.WithoutCancel(ctx), base, "memberships", "accredible")
	if err != nil {
		return nil, err
	}
	res := &CeilingResult{Members: members.Load(), Eligible: eligible.Load(), Elapsed: elapsed,
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

// RunCeilingAfterReset resets the sandbox (the same seed: the members
// the engine backfilled, fresh again) and runs the minimal client on it.
func RunCeilingAfterReset(ctx context.Context, opts CeilingOptions) (*CeilingResult, error) {
	if err := ResetSandbox(ctx, opts.SandboxURL); err != nil {
		return nil, fmt.Errorf("bench: ceiling: %w", err)
	}
	return RunCeiling(ctx, opts)
}

// poll reads every member page by page, as the trigger does, and hands
// each member to each.
func (c *ceilingClient) poll(ctx context.Context, each func(ceilingMember)) error {
	for skip := 0; ; skip += ceilingPageSize {
		q := url.Values{"companyId": {c.company}, "limit": {fmt.Sprint(ceilingPageSize)},
			"sort": {"dateAdded"}, "sortDirection": {"asc"}}
		if skip > 0 {
			q.Set("skip", fmt.Sprint(skip))
		}
		var page struct {
			Users []ceilingMember `json:"users"`
		}
		if err := c.do(ctx, http.MethodGet, c.members+"/users/search?"+q.Encode(), nil, &page); err != nil {
			return fmt.Errorf("polling members: %w", err)
		}
		for _, m := range page.Users {
			each(m)
		}
		if len(page.Users) < ceilingPageSize {
			return nil
		}
	}
}

// certify issues the member's certificate and writes it back.
func (c *ceilingClient) certify(ctx context.Context, m ceilingMember) error {
	ref := "member-" + m.ID
	search := map[string]any{
		"query": map[string]any{"group.id": fmt.Sprint(ceilingGroupID), "license_id": ref},
		"sort":  map[string]string{"id": "asc"},
		"page":  map[string]any{"from": 0, "size": 100},
	}
	var found struct {
		Credentials []json.RawMessage `json:"credentials"`
	}
	if err := c.do(ctx, http.MethodPost, c.accredible+"/v2/credentials/search", search, &found); err != nil {
		return fmt.Errorf("searching the certificate: %w", err)
	}
	if len(found.Credentials) > 0 {
		return fmt.Errorf("already holds certificate %s: the ceiling needs a freshly seeded sandbox", ref)
	}
	create := map[string]any{"credential": map[string]any{
		"approve":           true,
		"custom_attributes": map[string]any{"enrollment_date": m.EnrollmentDate, "plan": m.PlanID},
		"group_id":          ceilingGroupID,
		"id":                ref,
		"issued_on":         m.EligibilityDate,
		"meta_data":         map[string]any{"memberflow_ref": ref},
		"recipient":         map[string]any{"email": strings.ToLower(m.Email), "id": m.ID, "name": m.FullName},
	}}
	var created struct {
		Credential struct {
			ID       json.Number `json:"id"`
			IssuedOn string      `json:"issued_on"`
		} `json:"credential"`
	}
	if err := c.do(ctx, http.MethodPost, c.accredible+"/v1/credentials", create, &created); err != nil {
		return fmt.Errorf("issuing the certificate: %w", err)
	}
	push := map[string]any{"certificateId": created.Credential.ID.String(), "certificateStatus": "issued",
		"issuanceDate": created.Credential.IssuedOn}
	if err := c.do(ctx, http.MethodPut, c.members+"/users/"+url.PathEscape(m.ID), push, nil); err != nil {
		return fmt.Errorf("writing the certificate back: %w", err)
	}
	return nil
}

// do sends one request with the service's credentials and decodes the
// answer into out (nil: read and dropped).
func (c *ceilingClient) do(ctx context.Context, method, target string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if strings.HasPrefix(target, c.accredible) {
		req.Header.Set("Authorization", "Token token="+c.key)
	} else {
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Version", ceilingAPIVer)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("%s %s: HTTP %d: %s", method, req.URL.Path, res.StatusCode, b)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
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
