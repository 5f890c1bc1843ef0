package reconcile

import (
	"math/big"
	"strings"
)

// Money is one side of an amount drift: an amount in a currency, and the
// record that holds it.
type Money struct {
	// Amount is a decimal in the currency's major unit, rounded to its
	// minor unit ("206.07", "1000" for JPY); as given when it is no
	// number.
	Amount string `json:"amount"`
	// Currency is the ISO 4217 code; empty when the record names none.
	Currency string `json:"currency,omitempty"`
	// Record names the record as the report's records do ("payment/…").
	Record string `json:"record"`
}

// AmountDrift is an amount drift: the amount the fixing recipe computes
// from the source record (Expected) and the amount its mirror in the other
// system holds (Found).
type AmountDrift struct {
	Expected Money `json:"expected"`
	Found    Money `json:"found"`
}

// money is an amount as a record or a recipe gives it.
type money struct {
	value    *big.Rat // nil when the amount is no number
	text     string   // as given
	currency string   // upper case; "" when unknown
}

// moneyOf reads an amount (a JSON number, or a decimal in a string) and a
// currency code.
func moneyOf(amount any, currency string) money {
	m := money{text: scalar(amount), currency: strings.ToUpper(strings.TrimSpace(currency))}
	if v, ok := new(big.Rat).SetString(strings.TrimSpace(m.text)); ok && m.text != "" {
		m.value = v
	}
	return m
}

// minorDigits is the number of decimals of a currency's minor unit (ISO
// 4217's exponent): 2 for most, and for a code not listed or unknown.
func minorDigits(currency string) int {
	if d, ok := exponents[currency]; ok {
		return d
	}
	return 2
}

// exponents are the ISO 4217 currencies whose minor unit is not a
// hundredth.
var exponents = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
}

// sameMoney reports whether a mirror holds the amount expected of it.
// Currencies compare when both sides name one (without case); the
// amounts agree when they differ by less than one minor unit of the
// currency (a cent; a yen; a thousandth of a dinar), so that rounding to
// the minor unit, or a sum computed in binary floating point
// (206.07000000000005), is no drift, while a cent is.
func sameMoney(want, got money) bool {
	if want.currency != "" && got.currency != "" && want.currency != got.currency {
		return false
	}
	if want.value == nil || got.value == nil {
		return strings.TrimSpace(want.text) == strings.TrimSpace(got.text)
	}
	d := new(big.Rat).Sub(want.value, got.value)
	d.Abs(d)
	return d.Cmp(minorUnit(want.unitCurrency(got))) < 0
}

// unitCurrency is the currency whose minor unit the comparison uses: the
// expected one, else the one found.
func (m money) unitCurrency(other money) string {
	if m.currency != "" {
		return m.currency
	}
	return other.currency
}

func minorUnit(currency string) *big.Rat {
	return new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(minorDigits(currency))), nil))
}

// side renders an amount for the report, rounded to the minor unit of its
// currency (or, when it names none, of the other side's).
func (m money) side(other money, record string) Money {
	out := Money{Amount: m.text, Currency: m.currency, Record: record}
	if m.value != nil {
		out.Amount = m.value.FloatString(minorDigits(m.unitCurrency(other)))
	}
	return out
}

// String is the amount as the summary says it: "USD 206.07".
func (m Money) String() string {
	if m.Currency == "" {
		return m.Amount
	}
	return m.Currency + " " + m.Amount
}
