package accredible

import (
	"math"
	"reflect"
	"testing"
)

func sameOutput(t *testing.T, c Credential) {
	t.Helper()
	if got, want := c.Output(), outputOfJSON(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("Output %#v\nthrough JSON %#v", got, want)
	}
}

func TestOutputIsJSON(t *testing.T) {
	grade, expired := "A", "2027-01-01"
	yes, no := true, false
	cases := []Credential{
		{},
		{ID: "1", Name: "Cert", GroupID: 100001, Recipient: Recipient{Name: "Ada", Email: "ada@example.org", ID: "u1"}, IssuedOn: "2026-03-14",
			Approve: true, Complete: true, CustomAttributes: map[string]any{"plan": "gold", "n": 3, "nested": []any{1.5, nil, map[string]any{"k": true}}},
			MetaData: map[string]any{}, URL: "https://www.credential.net/1"},
		{ID: "2", Description: "d", LicenseID: "member-1", CreatedAt: "x", UpdatedAt: "y", ExpiredOn: &expired, Grade: &grade,
			Recipient: Recipient{PhoneNumber: "+1", MetaData: map[string]any{"ref": "r"}}, GroupID: math.MaxInt64},
		{Name: "bad \xff\xfe utf8 <&>", Recipient: Recipient{Name: "\u2028", Email: "e\xc3"}, CustomAttributes: map[string]any{"k\xff": "v\xff"}},
		{ID: "3", AllowSupplementalEvidence: &no, AllowSupplementalReferences: &yes, EvidenceItems: []any{}, References: []any{
			map[string]any{"id": 2.0, "description": "d\xff", "relationship": "managed", "referee": map[string]any{"name": "Jo", "email": nil}}}},
		{EvidenceItems: []any{map[string]any{"string_object": map[string]any{"grade": 80.0}}}, References: []any{math.Inf(1)}}, // unencodable
		{CustomAttributes: map[string]any{"nan": math.NaN()}},                                                                  // unencodable: nil, as before
		{Recipient: Recipient{MetaData: map[string]any{"ch": make(chan int)}}, Name: "x"},                                      // the same
	}
	for _, c := range cases {
		sameOutput(t, c)
	}
}

func FuzzOutput(f *testing.F) {
	f.Add("1", "Cert", "ada@example.org", "gold", int64(100001), 1.5, true)
	f.Add("", "\xff", "", "", int64(-1), math.Inf(1), false)
	f.Fuzz(func(t *testing.T, id, name, email, attr string, group int64, n float64, approve bool) {
		c := Credential{ID: id, Name: name, GroupID: group, Approve: approve, Description: attr, ExpiredOn: &attr,
			Recipient:        Recipient{Name: name, Email: email, ID: attr, MetaData: map[string]any{attr: n}},
			CustomAttributes: map[string]any{attr: name, "n": n, "list": []any{email, n}}}
		sameOutput(t, c)
	})
}

func BenchmarkOutput(b *testing.B) {
	c := fromV1(map[string]any{"id": 123456.0, "name": "Certificate", "group_id": 100001.0, "group_name": "Members", "issued_on": "2026-03-14",
		"expired_on": nil, "approve": true, "complete": true, "private": false, "url": "https://www.credential.net/123456",
		"encoded_id": "abc", "custom_attributes": map[string]any{"plan": "plan_professional", "enrollment_date": "2025-03-20"},
		"meta_data": map[string]any{"memberflow_reference": "member-FmmLf7GMvhaM2xhXvuux"},
		"recipient": map[string]any{"name": "Kwame Chen", "email": "kwame.chen1@example.org", "id": "FmmLf7GMvhaM2xhXvuux"}})
	b.Run("throughJSON", func(b *testing.B) {
		for b.Loop() {
			outputOfJSON(c)
		}
	})
	b.Run("Output", func(b *testing.B) {
		for b.Loop() {
			c.Output()
		}
	})
}
