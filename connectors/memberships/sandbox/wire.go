package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
)

// userJSON is a user on the wire: GoHighLevel's fields, then ours.
type userJSON struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	FirstName          string   `json:"firstName"`
	LastName           string   `json:"lastName"`
	Email              string   `json:"email"`
	Phone              string   `json:"phone,omitempty"`
	Extension          string   `json:"extension"`
	Roles              roleJSON `json:"roles"`
	Deleted            bool     `json:"deleted"`
	LocationID         string   `json:"locationId"`
	FullName           string   `json:"fullName"`
	MembershipStatus   string   `json:"membershipStatus"`
	EnrollmentDate     string   `json:"enrollmentDate,omitempty"`
	EligibilityDate    string   `json:"eligibilityDate,omitempty"`
	PlanID             string   `json:"planId,omitempty"`
	RegistrationStatus string   `json:"registrationStatus"`
	CertificateID      string   `json:"certificateId,omitempty"`
	CertificateStatus  string   `json:"certificateStatus"`
	IssuanceDate       string   `json:"issuanceDate,omitempty"`
	DateAdded          string   `json:"dateAdded"`
	DateUpdated        string   `json:"dateUpdated"`
}

type roleJSON struct {
	Type        string   `json:"type"`
	Role        string   `json:"role"`
	LocationIDs []string `json:"locationIds"`
}

// wire is a user of this location on the wire.
func (st *store) wire(u *user) userJSON {
	full := strings.TrimSpace(u.firstName + " " + u.lastName)
	return userJSON{
		ID:                 u.id.String(),
		Name:               full,
		FirstName:          u.firstName,
		LastName:           u.lastName,
		Email:              u.email,
		Phone:              u.phone,
		Roles:              roleJSON{Type: u.roleType, Role: u.role, LocationIDs: st.locationIDs},
		Deleted:            u.deleted,
		LocationID:         st.location,
		FullName:           full,
		MembershipStatus:   membershipStatuses[u.status],
		EnrollmentDate:     formatDay(u.enrollment),
		EligibilityDate:    formatDay(u.eligibility),
		PlanID:             u.plan,
		RegistrationStatus: registrationStatuses[u.registration],
		CertificateID:      u.certificateID,
		CertificateStatus:  certificateStatuses[u.certSt],
		IssuanceDate:       formatDay(u.issuance),
		DateAdded:          formatTime(u.dateAdded),
		DateUpdated:        formatTime(u.dateUpdated),
	}
}

type paymentJSON struct {
	ID          string  `json:"id"`
	UserID      string  `json:"userId"`
	Amount      float64 `json:"amount"`
	Currency    string  `json:"currency"`
	Status      string  `json:"status"`
	ExternalRef string  `json:"externalRef,omitempty"`
	Source      string  `json:"source,omitempty"`
	CreatedAt   string  `json:"createdAt"`
	UpdatedAt   string  `json:"updatedAt"`
}

func (st *store) paymentWire(p *payment) paymentJSON {
	return paymentJSON{
		ID:          p.id.String(),
		UserID:      st.users[p.user].id.String(),
		Amount:      formatAmount(p.amountCents),
		Currency:    string(p.currency[:]),
		Status:      paymentStatuses[p.status],
		ExternalRef: p.externalRef,
		Source:      p.source,
		CreatedAt:   formatTime(p.createdAt),
		UpdatedAt:   formatTime(p.updatedAt),
	}
}

// body is a decoded JSON request body with GoHighLevel-style (NestJS
// class-validator) checks that collect one message per bad field.
type body struct {
	m       map[string]any
	invalid []string
}

// readBody decodes a JSON object; it answers 400 itself when it cannot.
func readBody(w http.ResponseWriter, r *http.Request) (*body, bool) {
	var m map[string]any
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	if err != nil || m == nil {
		writeJSON(w, http.StatusBadRequest, errorBody{StatusCode: 400, Message: "Unexpected token in JSON body: expected an object", Error: "Bad Request"})
		return nil, false
	}
	return &body{m: m}, true
}

func (b *body) required(keys ...string) {
	for _, k := range keys {
		if v, ok := b.m[k]; !ok || v == nil || v == "" {
			b.invalid = append(b.invalid, k+" should not be empty")
		}
	}
}

// str returns a string field; ok is false when absent.
func (b *body) str(k string) (string, bool) {
	v, ok := b.m[k]
	if !ok || v == nil {
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		b.invalid = append(b.invalid, k+" must be a string")
		return "", false
	}
	return s, true
}

func (b *body) email(k string) (string, bool) {
	s, ok := b.str(k)
	if ok {
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
			b.invalid = append(b.invalid, k+" must be an email")
			return "", false
		}
	}
	return s, ok
}

func (b *body) enum(k string, table []string) (uint8, bool) {
	s, ok := b.str(k)
	if !ok {
		return 0, false
	}
	i, found := indexOf(table, s)
	if !found {
		b.invalid = append(b.invalid, fmt.Sprintf("%s must be one of the following values: %s", k, strings.Join(table, ", ")))
		return 0, false
	}
	return i, true
}

func (b *body) date(k string) (int32, bool) {
	s, ok := b.str(k)
	if !ok {
		return 0, false
	}
	d, valid := parseDay(s)
	if !valid {
		b.invalid = append(b.invalid, k+" must be a valid ISO 8601 date (YYYY-MM-DD)")
		return 0, false
	}
	return d, true
}

func (b *body) number(k string) (float64, bool) {
	v, ok := b.m[k]
	if !ok || v == nil {
		return 0, false
	}
	f, isNum := v.(float64)
	if !isNum {
		b.invalid = append(b.invalid, k+" must be a number conforming to the specified constraints")
		return 0, false
	}
	return f, true
}

func (b *body) strings(k string) ([]string, bool) {
	v, ok := b.m[k]
	if !ok || v == nil {
		return nil, false
	}
	list, isList := v.([]any)
	if !isList {
		b.invalid = append(b.invalid, k+" must be an array")
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, isStr := x.(string)
		if !isStr {
			b.invalid = append(b.invalid, "each value in "+k+" must be a string")
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// paging reads skip and limit (strings in GoHighLevel's document).
func paging(w http.ResponseWriter, get func(string) string, defLimit, maxLimit int) (skip, limit int, ok bool) {
	var invalid []string
	skip, limit = 0, defLimit
	if v := get("skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			invalid = append(invalid, "skip must be a number string not less than 0")
		}
		skip = n
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			invalid = append(invalid, fmt.Sprintf("limit must be a number string between 1 and %d", maxLimit))
		}
		limit = n
	}
	if len(invalid) > 0 {
		writeInvalid(w, invalid)
		return 0, 0, false
	}
	return skip, limit, true
}

// containsFold reports whether s contains sub, ASCII case-insensitively,
// without allocating (searches scan every member).
func containsFold(s, sub string) bool {
	n := len(sub)
	if n == 0 {
		return true
	}
	for i := 0; i+n <= len(s); i++ {
		if equalFoldASCII(s[i:i+n], sub) {
			return true
		}
	}
	return false
}
