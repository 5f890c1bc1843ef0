package reconcile

import (
	"encoding/json"
	"testing"
)

func TestSameMoney(t *testing.T) {
	cases := []struct {
		name              string
		want, got         any
		wantCur, gotCur   string
		same              bool
		wantText, gotText string // the sides as the report renders them
	}{
		{name: "equal", want: 180.0, got: 180.0, wantCur: "USD", gotCur: "USD", same: true, wantText: "USD 180.00", gotText: "USD 180.00"},
		{name: "a sum in floating point", want: 526.07 - 320, got: 206.07, wantCur: "USD", gotCur: "USD", same: true, wantText: "USD 206.07", gotText: "USD 206.07"},
		{name: "half a cent, rounded by one side", want: 10.005, got: 10.0, wantCur: "USD", gotCur: "USD", same: true, wantText: "USD 10.01", gotText: "USD 10.00"},
		{name: "a cent", want: 10.01, got: 10.0, wantCur: "USD", gotCur: "USD", same: false, wantText: "USD 10.01", gotText: "USD 10.00"},
		{name: "ten", want: 206.07, got: 196.07, wantCur: "USD", gotCur: "USD", same: false, wantText: "USD 206.07", gotText: "USD 196.07"},
		{name: "another currency, the same number", want: 42.5, got: 42.5, wantCur: "USD", gotCur: "EUR", same: false, wantText: "USD 42.50", gotText: "EUR 42.50"},
		{name: "currency codes without case", want: 42.5, got: "42.50", wantCur: "usd", gotCur: "USD", same: true, wantText: "USD 42.50", gotText: "USD 42.50"},
		{name: "one side names no currency", want: 42.5, got: 42.5, wantCur: "EUR", gotCur: "", same: true, wantText: "EUR 42.50", gotText: "42.50"},
		{name: "yen have no minor unit: less than one yen", want: 1000.0, got: 1000.4, wantCur: "JPY", gotCur: "JPY", same: true, wantText: "JPY 1000", gotText: "JPY 1000"},
		{name: "a yen", want: 1000.0, got: 1001.0, wantCur: "JPY", gotCur: "JPY", same: false, wantText: "JPY 1000", gotText: "JPY 1001"},
		{name: "dinars have three decimals: a fils", want: 1.5, got: 1.501, wantCur: "KWD", gotCur: "KWD", same: false, wantText: "KWD 1.500", gotText: "KWD 1.501"},
		{name: "dinars: half a fils", want: 1.5, got: 1.5004, wantCur: "KWD", gotCur: "KWD", same: true, wantText: "KWD 1.500", gotText: "KWD 1.500"},
		{name: "a JSON number", want: json.Number("99.9"), got: 99.9, wantCur: "USD", gotCur: "USD", same: true, wantText: "USD 99.90", gotText: "USD 99.90"},
		{name: "no number", want: 10.0, got: "ten", wantCur: "USD", gotCur: "USD", same: false, wantText: "USD 10.00", gotText: "USD ten"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, g := moneyOf(tc.want, tc.wantCur), moneyOf(tc.got, tc.gotCur)
			if got := sameMoney(w, g); got != tc.same {
				t.Errorf("sameMoney(%v %s, %v %s) = %v, want %v", tc.want, tc.wantCur, tc.got, tc.gotCur, got, tc.same)
			}
			if s := w.side(g, "").String(); s != tc.wantText {
				t.Errorf("expected side %q, want %q", s, tc.wantText)
			}
			if s := g.side(w, "").String(); s != tc.gotText {
				t.Errorf("found side %q, want %q", s, tc.gotText)
			}
		})
	}
}
