package files

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// BenchmarkRecordsToEnd polls a file from its start to its end the way a
// backfill does (a fresh connection per poll, the cursor carried over).
// ns/record must stay flat as the file grows: reading is linear.
func BenchmarkRecordsToEnd(b *testing.B) {
	for _, n := range []int{10_000, 40_000} {
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "members.jsonl")
			out, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < n; i++ {
				fmt.Fprintf(out, `{"id":"m%07d","email":"m%d@example.com","eligible":%t,"score":%d,"name":"Member %d"}`+"\n", i, i, i%3 == 0, i%100, i)
			}
			out.Close()
			trig := Spec().Trigger("records")
			params := map[string]any{"path": path, "batch": float64(500), "key": "id"}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cursor, seen := "", 0
				for {
					c, _ := Open(connectors.ConnectionConfig{Name: "files"})
					res, err := trig.Poll(context.Background(), c, connectors.PollRequest{Params: params, Cursor: cursor})
					if err != nil {
						b.Fatal(err)
					}
					seen += len(res.Events)
					cursor = res.Cursor
					if !res.More {
						break
					}
				}
				if seen != n {
					b.Fatalf("read %d records, want %d", seen, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
