package memberships

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Fingerprints are "<status>.<hash>": the hash covers a record's
// sync-relevant fields, and the status prefix lets the status trigger
// read a member's previous status from any remembered fingerprint, the
// ones write actions report included. Timestamps are left out, so that a
// write that changes nothing has the fingerprint of the record before it.
var (
	userFields    = []string{"firstName", "lastName", "email", "phone", "membershipStatus", "enrollmentDate", "eligibilityDate", "planId", "registrationStatus", "certificateId", "certificateStatus", "issuanceDate", "deleted"}
	paymentFields = []string{"userId", "amount", "currency", "status", "externalRef", "source"}
)

// UserFingerprint is the fingerprint of a user as the API answers it.
func UserFingerprint(u map[string]any) string {
	return fingerprint(u, "membershipStatus", userFields)
}

// PaymentFingerprint is the fingerprint of a payment.
func PaymentFingerprint(p map[string]any) string {
	return fingerprint(p, "status", paymentFields)
}

func fingerprint(rec map[string]any, statusField string, fields []string) string {
	var buf [512]byte
	b := buf[:0]
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, '=')
		b = appendField(b, rec[f])
		b = append(b, '\x1f')
	}
	sum := sha256.Sum256(b)
	status, _ := rec[statusField].(string)
	return status + "." + hex.EncodeToString(sum[:8])
}

// appendField appends v as fmt's %v writes it, a missing or null field
// as "": the bytes fingerprints have always hashed. The types a JSON
// answer decodes to are written here; others go to fmt
// (TestAppendFieldIsPrintf, FuzzAppendField).
func appendField(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return b
	case string:
		return append(b, x...)
	case bool:
		return strconv.AppendBool(b, x)
	case float64:
		if !math.IsInf(x, 0) && !math.IsNaN(x) {
			return strconv.AppendFloat(b, x, 'g', -1, 64)
		}
	}
	return fmt.Appendf(b, "%v", v)
}

// statusOf returns the status a fingerprint was taken in.
func statusOf(fp string) string {
	s, _, ok := strings.Cut(fp, ".")
	if !ok {
		return ""
	}
	return s
}

func userSubject(id string) string    { return "user/" + id }
func paymentSubject(id string) string { return "payment/" + id }
