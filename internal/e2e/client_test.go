package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/internal/sandbox"
)

// api reads the sandbox's state through its HTTP API, as a person checking
// the services would: the test never looks inside the sandbox's memory.
// The sandbox is in this process (sb) or another one (base, its URL).
type api struct {
	t    testing.TB
	sb   *sandbox.Server
	base string
	http *http.Client
}

func (a *api) baseURL() string {
	if a.base != "" {
		return strings.TrimSuffix(a.base, "/")
	}
	return strings.TrimSuffix(a.sb.BaseURL(), "/")
}

func (a *api) url(service string) string { return a.baseURL() + "/" + service }

func (a *api) do(method, rawURL string, header map[string]string, body, out any) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		a.t.Fatalf("%s %s: HTTP %d: %s", method, rawURL, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			if len(data) > 300 {
				data = append(data[:300], "…"...)
			}
			a.t.Fatalf("%s %s: decoding %s: %v", method, rawURL, data, err)
		}
	}
}

func (a *api) members(method, path string, body, out any) {
	a.do(method, a.url("memberships")+path, map[string]string{
		"Authorization": "Bearer " + sandbox.DemoAuth("memberships").Token, "Version": "2021-07-28"}, body, out)
}

func (a *api) accredible(method, path string, body, out any) {
	a.do(method, a.url("accredible")+path, map[string]string{
		"Authorization": "Token token=" + sandbox.DemoAuth("accredible").Key}, body, out)
}

func (a *api) accelevents(method, path string, body, out any) {
	a.do(method, a.url("accelevents")+"/rest/events/"+eventURL+path, map[string]string{
		"Authorization": sandbox.DemoAuth("accelevents").Key}, body, out)
}

const (
	eventURL   = "annual-conference-2026"
	locationID = "mfSandboxLocation001"
	groupID    = 100001
)

type member struct {
	ID                 string `json:"id"`
	Email              string `json:"email"`
	FirstName          string `json:"firstName"`
	LastName           string `json:"lastName"`
	MembershipStatus   string `json:"membershipStatus"`
	EligibilityDate    string `json:"eligibilityDate"`
	RegistrationStatus string `json:"registrationStatus"`
	CertificateID      string `json:"certificateId"`
	CertificateStatus  string `json:"certificateStatus"`
	IssuanceDate       string `json:"issuanceDate"`
}

// flexID decodes a JSON number or string as a string.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexID(n.String())
	return nil
}

func (a *api) allMembers() map[string]member {
	var out struct {
		Users []member `json:"users"`
	}
	a.members("GET", "/users/?locationId="+locationID, nil, &out)
	m := make(map[string]member, len(out.Users))
	for _, u := range out.Users {
		m[u.ID] = u
	}
	return m
}

type payment struct {
	ID          string  `json:"id"`
	UserID      string  `json:"userId"`
	Amount      float64 `json:"amount"`
	Status      string  `json:"status"`
	Source      string  `json:"source"`
	ExternalRef string  `json:"externalRef"`
}

func (a *api) allPayments() []payment {
	var all []payment
	for skip := 0; ; skip += 100 {
		var out struct {
			Payments []payment `json:"payments"`
		}
		a.members("GET", fmt.Sprintf("/payments?limit=100&skip=%d", skip), nil, &out)
		all = append(all, out.Payments...)
		if len(out.Payments) < 100 {
			return all
		}
	}
}

func (a *api) paymentsByRef(ref string) []payment {
	var out struct {
		Payments []payment `json:"payments"`
	}
	a.members("GET", "/payments?externalRef="+url.QueryEscape(ref), nil, &out)
	return out.Payments
}

type credential struct {
	// ID is a number in v2 search results and a string in v1 answers.
	ID          flexID  `json:"id"`
	RecipientID *string `json:"recipient_id"`
	Email       string  `json:"recipient_email"`
	ExpiredOn   *string `json:"expired_on"`
	IssuedOn    string  `json:"issued_on"`
	Group       struct {
		ID int64 `json:"id"`
	} `json:"group"`
}

// credentialsByMember lists the group's credentials by recipient id.
func (a *api) credentialsByMember() map[string][]credential {
	out := map[string][]credential{}
	for from := 0; ; from += 100 {
		var page struct {
			Credentials []credential `json:"credentials"`
		}
		a.accredible("POST", "/v2/credentials/search", map[string]any{
			"query": map[string]any{"group.id": groupID}, "sort": map[string]any{"id": "asc"},
			"page": map[string]any{"from": from, "size": 100}}, &page)
		for _, c := range page.Credentials {
			id := ""
			if c.RecipientID != nil {
				id = *c.RecipientID
			}
			out[id] = append(out[id], c)
		}
		if len(page.Credentials) < 100 {
			return out
		}
	}
}

type attendee struct {
	AttendeeID int64  `json:"attendeeId"`
	OrderID    int64  `json:"orderId"`
	Email      string `json:"email"`
	ExternalID string `json:"externalId"`
	Status     string `json:"status"`
	Barcode    string `json:"barcode"`
}

func (a *api) attendees() []attendee {
	var all []attendee
	for page := 0; ; page++ {
		var out struct {
			Data []attendee `json:"data"`
		}
		a.accelevents("GET", fmt.Sprintf("/staff/allAttendees?page=%d&size=100", page), nil, &out)
		all = append(all, out.Data...)
		if len(out.Data) < 100 {
			return all
		}
	}
}

func (a *api) aePayments(ref string) int {
	var out struct {
		Data []struct {
			ExternalRef string `json:"externalRef"`
		} `json:"data"`
	}
	a.accelevents("GET", "/staff/payments?externalRef="+url.QueryEscape(ref), nil, &out)
	n := 0
	for _, p := range out.Data {
		if p.ExternalRef == ref {
			n++
		}
	}
	return n
}

type stats struct {
	Services map[string]struct {
		Objects    map[string]int `json:"objects"`
		Duplicates map[string]int `json:"duplicates"`
	} `json:"services"`
	Totals struct {
		Objects    int `json:"objects"`
		Duplicates int `json:"duplicates"`
	} `json:"totals"`
}

func (a *api) stats() stats {
	var s stats
	a.do("GET", a.baseURL()+"/_sandbox/stats", nil, nil, &s)
	return s
}

func (a *api) mutate(reqs []sandbox.MutateRequest) []sandbox.MutateResult {
	var out struct {
		Applied []sandbox.MutateResult `json:"applied"`
	}
	a.do("POST", a.baseURL()+"/_sandbox/mutate", nil, reqs, &out)
	return out.Applied
}
