package sandbox

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

type orderPageT struct {
	Data []struct {
		OrderID   int64
		Purchaser *purchaserJSON
	}
	RecordsTotal    int
	RecordsFiltered int
}

// TestOrderSearchPagesTheMatches checks searchString on the order list
// against the full list filtered here: the match count, and which orders
// each page holds.
func TestOrderSearchPagesTheMatches(t *testing.T) {
	h := newHarness(t, 100, sandboxkit.Options{})
	var all orderPageT
	h.api("GET", E+"/staff/orders?size=500", nil, &all)
	if len(all.Data) < 4 || all.RecordsFiltered != all.RecordsTotal {
		t.Fatalf("unfiltered list: %d orders, filtered %d of %d", len(all.Data), all.RecordsFiltered, all.RecordsTotal)
	}
	first := all.Data[0]
	domain := first.Purchaser.Email[strings.LastIndex(first.Purchaser.Email, "@"):]
	expect := func(needle string) []int64 {
		var ids []int64
		for _, o := range all.Data {
			p := o.Purchaser
			if strconv.FormatInt(o.OrderID, 10) == needle || strings.Contains(strings.ToLower(p.FirstName+" "+p.LastName), needle) ||
				strings.Contains(strings.ToLower(p.Email), needle) {
				ids = append(ids, o.OrderID)
			}
		}
		return ids
	}
	cases := []struct {
		name, needle string
		page, size   int
	}{
		{"by order id", strconv.FormatInt(first.OrderID, 10), 0, 10},
		{"by email, first page", strings.ToLower(domain), 0, 3},
		{"by email, second page", strings.ToLower(domain), 1, 3},
		{"by first name", strings.ToLower(first.Purchaser.FirstName), 0, 100},
		{"past the last page", strings.ToLower(domain), 1000, 3},
		{"no match", "no-such-buyer-anywhere", 0, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := expect(c.needle)
			var got orderPageT
			path := fmt.Sprintf("%s/staff/orders?searchString=%s&page=%d&size=%d", E, url.QueryEscape(c.needle), c.page, c.size)
			if s := h.api("GET", path, nil, &got); s != 200 {
				t.Fatalf("status %d", s)
			}
			if got.RecordsFiltered != len(want) || got.RecordsTotal != all.RecordsTotal {
				t.Errorf("filtered %d of %d, want %d of %d", got.RecordsFiltered, got.RecordsTotal, len(want), all.RecordsTotal)
			}
			lo := min(c.page*c.size, len(want))
			page := want[lo:min(lo+c.size, len(want))]
			if len(got.Data) != len(page) {
				t.Fatalf("page holds %d orders, want %d", len(got.Data), len(page))
			}
			for i, o := range got.Data {
				if o.OrderID != page[i] {
					t.Errorf("order %d of the page is %d, want %d", i, o.OrderID, page[i])
				}
			}
		})
	}
}
