package engine

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if got := h.quantile(0.5); got != 0 {
		t.Errorf("empty histogram p50 = %v", got)
	}
	// 98 fast runs, 2 slow ones.
	for range 98 {
		h.observe(2 * time.Millisecond)
	}
	h.observe(900 * time.Millisecond)
	h.observe(time.Second)
	tests := []struct {
		name   string
		q      float64
		lo, hi time.Duration
	}{
		{"p50 is a fast run", 0.5, 2 * time.Millisecond, 2400 * time.Microsecond},
		{"p98 is still fast", 0.98, 2 * time.Millisecond, 2400 * time.Microsecond},
		{"p99 is slow", 0.99, 900 * time.Millisecond, 1100 * time.Millisecond},
		{"p100 is the slowest", 1, time.Second, 1200 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := h.quantile(tc.q); got < tc.lo || got > tc.hi {
			t.Errorf("%s: quantile(%v) = %v, want within [%v, %v]", tc.name, tc.q, got, tc.lo, tc.hi)
		}
	}
	if got := bucketOf(0); got != 0 {
		t.Errorf("bucketOf(0) = %d", got)
	}
	if got := bucketOf(100 * time.Hour); got != 129 {
		t.Errorf("bucketOf(100h) = %d, want the last bucket", got)
	}
}

// The summary's quantiles are known to about 19 %: printed with two
// significant digits, not the bucket bound's seven.
func TestTwoDigits(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{2097152 * time.Microsecond, 2100 * time.Millisecond},
		{9975792 * time.Microsecond, 10 * time.Second},
		{4096 * time.Microsecond, 4100 * time.Microsecond},
		{1414 * time.Nanosecond, 1400 * time.Nanosecond},
		{42 * time.Nanosecond, 42 * time.Nanosecond},
		{0, 0},
	} {
		if got := twoDigits(tc.in); got != tc.want {
			t.Errorf("twoDigits(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
