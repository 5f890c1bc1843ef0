package sqlitestore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/memberflow/memberflow/engine"
)

// A runner whose process ended (its proof-of-life lock freed, as the
// operating system frees it at a SIGKILL) is listed as gone; a live one,
// of this handle or another, is not.
func TestRunnersTellTheGoneFromTheLive(t *testing.T) {
	if !proofOfLife {
		t.Skip("no proof-of-life locks on this platform")
	}
	path := filepath.Join(t.TempDir(), "m.db")
	ctx := context.Background()
	open := func() *Store {
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b, reader := open(), open(), open()
	if _, err := a.Join(ctx, engine.RunnerInfo{Owner: "alive"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, engine.RunnerInfo{Owner: "victim"}); err != nil {
		t.Fatal(err)
	}
	b.liveMu.Lock()
	b.live["victim"].unlock() // the process died: the OS drops its lock
	delete(b.live, "victim")
	b.liveMu.Unlock()

	for _, s := range []*Store{a, reader} {
		rs, err := s.Runners(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gone := map[string]bool{}
		for _, r := range rs {
			gone[r.Owner] = r.Gone
		}
		if len(gone) != 2 || gone["alive"] || !gone["victim"] {
			t.Fatalf("runners %+v: want alive live and victim gone", rs)
		}
	}
	// The probe left the lock free: the owner can still be taken over.
	l, free, err := tryLock(a.lockPath("victim"))
	if err != nil || !free {
		t.Fatalf("the probe kept the lock: free %v, %v", free, err)
	}
	l.unlock()
}
