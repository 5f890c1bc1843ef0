package console

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"
)

// chart is an inline SVG drawn on the server, with a text summary for
// screen readers (the SVG's title and description).
type chart struct {
	SVG template.HTML
}

type barSeries struct {
	Label, Class string
	Values       []int
}

// stackedBars draws one bar per bucket, the series stacked, with the
// largest total as the scale. The viewBox scales to the page width.
func stackedBars(title string, since time.Time, width time.Duration, series []barSeries) chart {
	n := 0
	for _, s := range series {
		n = max(n, len(s.Values))
	}
	const w, h, top, bottom, left = 600.0, 120.0, 8.0, 18.0, 34.0
	peak := 0
	totals := make([]int, n)
	sums := make([]int, len(series))
	for i := 0; i < n; i++ {
		for k, s := range series {
			if i < len(s.Values) {
				totals[i] += s.Values[i]
				sums[k] += s.Values[i]
			}
		}
		peak = max(peak, totals[i])
	}
	var b strings.Builder
	var desc []string
	for k, s := range series {
		desc = append(desc, fmt.Sprintf("%d %s", sums[k], s.Label))
	}
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="t-%s d-%s" preserveAspectRatio="none">`, w, h, id(title), id(title))
	fmt.Fprintf(&b, `<title id="t-%s">%s</title><desc id="d-%s">%s, from %s in %s buckets</desc>`, id(title), html.EscapeString(title), id(title),
		html.EscapeString(strings.Join(desc, ", ")), since.UTC().Format("2006-01-02 15:04Z"), width)
	plotH := h - top - bottom
	fmt.Fprintf(&b, `<line class="axis" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f"/>`, left, h-bottom, w, h-bottom)
	fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.1f" text-anchor="end">%d</text>`, left-4, top+8, peak)
	fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.1f" text-anchor="end">0</text>`, left-4, h-bottom)
	if n > 0 && peak > 0 {
		bw := (w - left) / float64(n)
		for i := 0; i < n; i++ {
			y := h - bottom
			for _, s := range series {
				if i >= len(s.Values) || s.Values[i] == 0 {
					continue
				}
				bh := plotH * float64(s.Values[i]) / float64(peak)
				y -= bh
				fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d %s</title></rect>`,
					s.Class, left+float64(i)*bw+0.5, y, max(bw-1, 0.5), bh, since.Add(time.Duration(i)*width).UTC().Format("01-02 15:04"), s.Values[i], html.EscapeString(s.Label))
			}
		}
	}
	fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.0f">%s</text>`, left, h-4, since.UTC().Format("01-02 15:04Z"))
	fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.0f" text-anchor="end">now</text>`, w, h-4)
	b.WriteString(`</svg>`)
	return chart{SVG: template.HTML(b.String())}
}

// latencyBars draws, per action, the median and the 95th percentile on
// a logarithmic scale from 100 µs to the slowest maximum.
func latencyBars(rows []latencyRow) chart {
	if len(rows) == 0 {
		return chart{}
	}
	const w, row, left = 600.0, 22.0, 230.0
	h := row*float64(len(rows)) + 20
	lo, hi := 100*time.Microsecond, time.Millisecond
	for _, r := range rows {
		hi = max(hi, r.Max)
	}
	scale := func(d time.Duration) float64 {
		d = max(d, lo)
		return (w - left - 8) * math.Log(float64(d)/float64(lo)) / math.Log(float64(hi)/float64(lo))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="t-lat d-lat">`, w, h)
	var desc []string
	for _, r := range rows {
		desc = append(desc, fmt.Sprintf("%s median %s, p95 %s", r.Action, r.P50, r.P95))
	}
	fmt.Fprintf(&b, `<title id="t-lat">Step latency per action</title><desc id="d-lat">%s</desc>`, html.EscapeString(strings.Join(desc, "; ")))
	for i, r := range rows {
		y := float64(i) * row
		fmt.Fprintf(&b, `<text class="label" x="%.0f" y="%.1f" text-anchor="end">%s</text>`, left-6, y+15, html.EscapeString(r.Action))
		fmt.Fprintf(&b, `<rect class="p95" x="%.0f" y="%.1f" width="%.1f" height="14"><title>p95 %s</title></rect>`, left, y+4, scale(r.P95), r.P95)
		fmt.Fprintf(&b, `<rect class="p50" x="%.0f" y="%.1f" width="%.1f" height="14"><title>median %s</title></rect>`, left, y+4, scale(r.P50), r.P50)
	}
	fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.0f">%s</text><text class="tick" x="%.0f" y="%.0f" text-anchor="end">%s (log scale)</text>`,
		left, h-4, lo, w-8, h-4, hi.Round(time.Millisecond))
	b.WriteString(`</svg>`)
	return chart{SVG: template.HTML(b.String())}
}

// id makes an SVG id out of a title.
func id(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}
