package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"
)

// TestMetaCompareAndSwap: writes succeed only from the version read; a
// deletion keeps the version; ListMeta lists live values by prefix, the
// value of another process's swap included.
func TestMetaCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s, other := open(t, path), open(t, path)
	defer s.Close()
	defer other.Close()
	step := func(key string, version int64, value string, want bool) {
		t.Helper()
		var v []byte
		if value != "" {
			v = []byte(value)
		}
		ok, err := s.SwapMeta(ctx, key, version, v)
		if err != nil || ok != want {
			t.Fatalf("SwapMeta(%q, %d, %q) = %v, %v; want %v", key, version, value, ok, err, want)
		}
	}
	get := func(key string) (string, int64) {
		t.Helper()
		v, ver, err := other.GetMeta(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return string(v), ver
	}
	if v, ver := get("a/x"); v != "" || ver != 0 {
		t.Fatalf("unwritten key: %q, %d", v, ver)
	}
	step("a/x", 0, "one", true)
	step("a/x", 0, "again", false) // exists
	step("a/x", 2, "skip", false)  // not yet version 2
	step("a/x", 1, "two", true)
	if v, ver := get("a/x"); v != "two" || ver != 2 {
		t.Fatalf("after two writes: %q, %d", v, ver)
	}
	step("a/y", 0, "y", true)
	step("a%/z", 0, "z", true)
	step("a/x", 2, "", true) // delete
	if v, ver := get("a/x"); v != "" || ver != 3 {
		t.Fatalf("deleted: %q, %d; want the version kept", v, ver)
	}
	step("a/x", 0, "back", false)
	step("a/x", 3, "back", true)
	list, err := other.ListMeta(ctx, "a/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range list {
		keys = append(keys, e.Key+"="+string(e.Value))
	}
	if len(keys) != 2 || keys[0] != "a/x=back" || keys[1] != "a/y=y" {
		t.Fatalf("ListMeta(a/) = %v", keys)
	}
}
