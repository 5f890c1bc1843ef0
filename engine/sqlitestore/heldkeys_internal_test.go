package sqlitestore

import (
	"database/sql"
	"encoding/json"
	"maps"
	"testing"
)

// TestDecodeKeySetReadsWhatSQLiteReads: a claim's keys decoded here are
// the keys json_each reads in page_runs, or are not decoded at all (nil:
// page_runs is asked about the claim).
func TestDecodeKeySetReadsWhatSQLiteReads(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The texts claimPage writes, for keys of every kind.
	written := func(keys ...string) string {
		var c claimPage
		for i, k := range keys {
			q, err := json.Marshal(k)
			if err != nil {
				t.Fatal(err)
			}
			c.add(int64(100+i), int64(i), k, q, "", 0, nil, nil)
		}
		c.keys.WriteByte('}')
		return c.keys.String()
	}
	texts := map[string]bool{ // the text, and whether it is decoded here
		written("member/1", "member/2"):             true,
		written("a b", "é", "日本", "x:y", "{}", ","): true,
		written(`a"b`):       false,
		written("<tag>"):     false, // json.Marshal escapes <
		written("new\nline"): false,
		`{}`:                 true,
		`{"a":1,"b":22}`:     true,
		`{"a":1,"a":2}`:      true,
		`{"a":1,}`:           false,
		`{"a":1} `:           false,
		`{ "a":1}`:           false,
		`{"a":-1}`:           false,
		`{"a":1.5}`:          false,
		`{"a":"1"}`:          false,
		`{"a"}`:              false,
		`{"a`:                false,
		`[1]`:                false,
		``:                   false,
	}
	for text, decoded := range texts {
		set := decodeKeySet(text)
		if (set != nil) != decoded {
			t.Errorf("decodeKeySet(%q) = %v, want decoded: %v", text, set, decoded)
			continue
		}
		if set == nil {
			continue
		}
		rows, err := db.Query(`SELECT key, value FROM json_each(?)`, text)
		if err != nil {
			t.Fatal(err)
		}
		want := keySet{}
		for rows.Next() {
			var k string
			var v int64
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			want[k] = v // a repeated key: the last, as here
		}
		rows.Close()
		if !maps.Equal(set, want) {
			t.Errorf("decodeKeySet(%q) = %v, json_each reads %v", text, set, want)
		}
	}
}
