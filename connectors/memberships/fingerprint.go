package memberships

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
