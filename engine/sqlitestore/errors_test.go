package sqlitestore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// filled makes a store of several hundred pages and closes it.
func filled(t *testing.T, path string) {
	t.Helper()
	s := open(t, path)
	ctx := context.Background()
	for batch := 0; batch < 20; batch++ {
		var evs []engine.NewEvent
		for i := 0; i < 100; i++ {
			evs = append(evs, ev(fmt.Sprintf("e%d-%d", batch, i), fmt.Sprintf("k%d", i)))
		}
		if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: str(fmt.Sprint(batch)), Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func digest(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestOpenFindsDamage: a store damaged in the middle of the file (a
// page overwritten, the header intact) or not a store at all is refused
// at open with ErrCorrupt, and nothing is written to it.
func TestOpenFindsDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"a page in the middle overwritten", func(b []byte) []byte {
			page := 4096
			mid := (len(b) / page / 2) * page
			copy(b[mid:mid+page], bytes.Repeat([]byte{0xA5, 0x5A, 0x00, 0xFF}, page/4))
			return b
		}},
		{"an interior b-tree page's cells scrambled", func(b []byte) []byte {
			// Page 2 onwards: flip bytes in the cell area of every 7th page.
			for p := 2 * 4096; p+4096 <= len(b); p += 7 * 4096 {
				for i := p + 2000; i < p+2100; i++ {
					b[i] ^= 0x5C
				}
			}
			return b
		}},
		{"not a store", func(b []byte) []byte { return bytes.Repeat([]byte("memberflow"), 1000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			filled(t, path)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			before := digest(t, path)
			s, err := sqlitestore.Open(path, sqlitestore.Options{})
			if err == nil {
				s.Close()
				t.Fatal("a damaged store opened")
			}
			if !errors.Is(err, sqlitestore.ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			if digest(t, path) != before {
				t.Error("the damaged store was written to")
			}
		})
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no", "such")
	_, err := sqlitestore.Open(filepath.Join(dir, "s.db"), sqlitestore.Options{})
	if !errors.Is(err, sqlitestore.ErrNoDirectory) {
		t.Fatalf("Open = %v, want ErrNoDirectory", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Error("Open created the directory")
	}
}

// mountTmpfs mounts a tmpfs with opts for the test, or skips it when
// this machine cannot (not root, no mount).
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the mapping of SQLite's codes is tested in TestKindOfCodes", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestReadOnlyPlaces: a store on a read-only file system, existing or
// not, is refused at open with ErrReadOnly.
func TestReadOnlyPlaces(t *testing.T) {
	var dir string
	if os.Geteuid() == 0 {
		// root writes through permissions: a read-only mount it is.
		dir = mountTmpfs(t, "size=4m,mode=0755")
		filled(t, filepath.Join(dir, "existing.db"))
		if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot remount read-only: %v: %s", err, out)
		}
	} else {
		dir = t.TempDir()
		filled(t, filepath.Join(dir, "existing.db"))
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	for _, name := range []string{"existing.db", "new.db"} {
		_, err := sqlitestore.Open(filepath.Join(dir, name), sqlitestore.Options{})
		if !errors.Is(err, sqlitestore.ErrReadOnly) {
			t.Errorf("%s: Open = %v, want ErrReadOnly", name, err)
		}
	}
}

// TestDiskFull: writes to a store on a full file system fail with
// ErrDiskFull; what was committed before stays.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "size=512k")
	path := filepath.Join(dir, "s.db")
	s := open(t, path)
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 8<<10)
	var err error
	committed := 0
	for i := 0; i < 200 && err == nil; i++ {
		e := ev(fmt.Sprintf("e%d", i), "k")
		e.Data = []byte(`{"pad":"` + string(big) + `"}`)
		if _, err = s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{e}}); err == nil {
			committed++
		}
	}
	s.Close()
	if !errors.Is(err, sqlitestore.ErrDiskFull) {
		t.Fatalf("after %d writes: %v, want ErrDiskFull", committed, err)
	}
	if committed == 0 {
		t.Fatal("nothing fit: the test proves nothing")
	}
}
