package engine

import (
	"testing"
	"time"
)

func TestLeadsInExcess(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	polling := func(n int) []string { return make([]string, n) }
	lease := time.Minute
	for _, c := range []struct {
		name    string
		runners []RunnerInfo
		want    int
	}{
		{"alone", []RunnerInfo{{Owner: "me", Seen: now, Polling: polling(13)}}, 0},
		{"12 to 1", []RunnerInfo{{Owner: "me", Seen: now, Polling: polling(12)}, {Owner: "b", Seen: now, Polling: polling(1)}}, 5},
		{"7 to 6 is balanced", []RunnerInfo{{Owner: "me", Seen: now, Polling: polling(7)}, {Owner: "b", Seen: now, Polling: polling(6)}}, 0},
		{"2 to 0", []RunnerInfo{{Owner: "me", Seen: now, Polling: polling(2)}, {Owner: "b", Seen: now}}, 1},
		{"the other polls more", []RunnerInfo{{Owner: "me", Seen: now, Polling: polling(1)}, {Owner: "b", Seen: now, Polling: polling(12)}}, 0},
		{"three runners", []RunnerInfo{{Owner: "me", Seen: now, Polling: polling(9)}, {Owner: "b", Seen: now, Polling: polling(3)}, {Owner: "c", Seen: now, Polling: polling(0)}}, 5},
		{"a gone runner is not counted", []RunnerInfo{{Owner: "me", Seen: now, Polling: polling(4)}, {Owner: "b", Seen: now, Gone: true}}, 0},
		{"a runner silent for over a lease is not counted", []RunnerInfo{{Owner: "me", Seen: now, Polling: polling(4)}, {Owner: "b", Seen: now.Add(-2 * lease)}}, 0},
		{"the store's clock, not this machine's", []RunnerInfo{{Owner: "me", Seen: now.Add(-time.Hour), Polling: polling(4)}, {Owner: "b", Seen: now.Add(-time.Hour)}}, 2},
		{"not listed", []RunnerInfo{{Owner: "b", Seen: now, Polling: polling(4)}, {Owner: "c", Seen: now}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := leadsInExcess(c.runners, "me", lease); got != c.want {
				t.Errorf("leadsInExcess = %d, want %d", got, c.want)
			}
		})
	}
}
