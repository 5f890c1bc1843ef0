package memberships

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"testing"
)

// fingerprintWithPrintf is how fingerprints were computed before
// appendField: the stored ones must not change.
func fingerprintWithPrintf(rec map[string]any, statusField string, fields []string) string {
	h := sha256.New()
	for _, f := range fields {
		v := rec[f]
		if v == nil {
			v = ""
		}
		fmt.Fprintf(h, "%s=%v\x1f", f, v)
	}
	status, _ := rec[statusField].(string)
	return status + "." + hex.EncodeToString(h.Sum(nil)[:8])
}

var fieldValues = []any{
	nil, "", "eligible", "Grace \x1f Hopper", "日本", true, false,
	0.0, math.Copysign(0, -1), 1.0, -3.0, 0.1, 1e6, 1e21, 123456789.0, 1e-5, 2.5e-7, math.MaxFloat64, math.SmallestNonzeroFloat64,
	math.Inf(1), math.Inf(-1), math.NaN(),
	42, int64(-7), []any{"a", 1.0}, map[string]any{"k": "v"}, []string{"x"},
}

func TestAppendFieldIsPrintf(t *testing.T) {
	for _, v := range fieldValues {
		want := v
		if want == nil {
			want = ""
		}
		if got, printed := string(appendField(nil, v)), fmt.Sprintf("%v", want); got != printed {
			t.Errorf("%#v: appended %q, fmt %q", v, got, printed)
		}
	}
	user := map[string]any{"id": "u1", "firstName": "Ada", "email": "ada@example.org", "membershipStatus": "eligible",
		"planId": "gold", "deleted": false, "certificateId": nil, "enrollmentDate": "2026-01-02", "score": 3.5}
	if got, want := UserFingerprint(user), fingerprintWithPrintf(user, "membershipStatus", userFields); got != want {
		t.Errorf("UserFingerprint %q, with Printf %q", got, want)
	}
	payment := map[string]any{"userId": "u1", "amount": 1999.0, "currency": "USD", "status": "paid"}
	if got, want := PaymentFingerprint(payment), fingerprintWithPrintf(payment, "status", paymentFields); got != want {
		t.Errorf("PaymentFingerprint %q, with Printf %q", got, want)
	}
}

func FuzzAppendField(f *testing.F) {
	f.Add("eligible", 1.5, true)
	f.Add("", 1e21, false)
	f.Fuzz(func(t *testing.T, s string, x float64, b bool) {
		rec := map[string]any{"firstName": s, "email": s + "@x", "planId": x, "deleted": b, "amount": x, "status": s}
		if got, want := UserFingerprint(rec), fingerprintWithPrintf(rec, "membershipStatus", userFields); got != want {
			t.Fatalf("UserFingerprint %q, with Printf %q", got, want)
		}
		if got, want := PaymentFingerprint(rec), fingerprintWithPrintf(rec, "status", paymentFields); got != want {
			t.Fatalf("PaymentFingerprint %q, with Printf %q", got, want)
		}
	})
}

func BenchmarkUserFingerprint(b *testing.B) {
	user := map[string]any{"id": "u00000001", "firstName": "Grace", "lastName": "Hopper", "email": "grace@example.org", "phone": "+15550100",
		"membershipStatus": "eligible", "enrollmentDate": "2025-01-02", "eligibilityDate": "2026-03-14", "planId": "premium",
		"registrationStatus": "complete", "certificateId": nil, "deleted": false}
	b.Run("printf", func(b *testing.B) {
		for b.Loop() {
			fingerprintWithPrintf(user, "membershipStatus", userFields)
		}
	})
	b.Run("appendField", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			UserFingerprint(user)
		}
	})
}
