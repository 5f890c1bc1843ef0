package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testRecords(n int) []spoolRecord {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	recs := make([]spoolRecord, n)
	for i := range recs {
		recs[i] = spoolRecord{Recipe: "record", Received: at.Add(time.Duration(i) * time.Second),
			Events: []spoolEvent{{ID: fmt.Sprintf("d%d", i), Subject: fmt.Sprintf("member/m%d", i), Data: json.RawMessage(fmt.Sprintf(`{"id":"m%d","seq":%d}`, i, i))}}}
	}
	recs[n-1].Events, recs[n-1].Body = nil, []byte(`{"type":"UserUpdate"}`)
	return recs
}

func segmentOf(t testing.TB, recs []spoolRecord) []byte {
	t.Helper()
	b, err := encodeSpool(recs)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(spoolMagic), b...)
}

// TestParseSpoolDropsATornLastRecord: a segment cut at any byte (a crash
// mid-append) reads as the records written whole before the cut, and
// says it dropped the rest; one whose last record's bytes are damaged
// (written, not yet synced, at a power loss) likewise.
func TestParseSpoolDropsATornLastRecord(t *testing.T) {
	recs := testRecords(4)
	data := segmentOf(t, recs)
	ends := []int{len(spoolMagic)} // where each record ends
	for i := range recs {
		b, _ := encodeSpool(recs[:i+1])
		ends = append(ends, len(spoolMagic)+len(b))
	}
	for cut := 0; cut <= len(data); cut++ {
		got, valid, err := parseSpool(data[:cut])
		whole := 0
		for whole < len(recs) && ends[whole+1] <= cut {
			whole++
		}
		if cut < len(spoolMagic) {
			whole = 0
		}
		if len(got) != whole || !reflect.DeepEqual(got, recs[:whole]) && whole > 0 {
			t.Fatalf("cut at %d: %d records, want %d", cut, len(got), whole)
		}
		atEnd := cut < len(spoolMagic) || cut == ends[whole]
		if atEnd != (err == nil) {
			t.Fatalf("cut at %d: error %v, want one only for a torn record", cut, err)
		}
		if cut >= len(spoolMagic) && valid != ends[whole] {
			t.Fatalf("cut at %d: valid prefix %d, want %d", cut, valid, ends[whole])
		}
	}
	for _, at := range []int{ends[3] + 1, ends[3] + 6, len(data) - 1} {
		bad := bytes.Clone(data)
		bad[at] ^= 0x40
		got, valid, err := parseSpool(bad)
		if err == nil || len(got) != 3 || valid != ends[3] {
			t.Errorf("last record damaged at byte %d: %d records, valid %d, %v", at, len(got), valid, err)
		}
	}
	// Zeros where a record should be (a file extended, its data lost) are
	// not an empty record.
	if got, _, err := parseSpool(append(bytes.Clone(data), make([]byte, 16)...)); err == nil || len(got) != 4 {
		t.Errorf("zeros after the records: %d records, %v", len(got), err)
	}
	if _, _, err := parseSpool([]byte("PK\x03\x04 not a spool")); !errors.Is(err, errNotSpool) {
		t.Errorf("a foreign file: %v", err)
	}
}

// TestSpoolReopensAfterATornAppend: OpenSpool counts the whole records of
// what a crashed runner left, drops its torn tail, and appends to a new
// segment, never after the torn bytes.
func TestSpoolReopensAfterATornAppend(t *testing.T) {
	dir := t.TempDir()
	data := segmentOf(t, testRecords(3))
	torn := data[:len(data)-5]
	if err := os.WriteFile(filepath.Join(dir, spoolName(7)), torn, 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := OpenSpool(dir, SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if st := sp.Stats(); st.Deliveries != 2 || st.Bytes != int64(len(torn)) {
		t.Errorf("stats %+v, want the 2 whole records", st)
	}
	if ok, err := sp.append(testRecords(2)[:1], false); !ok || err != nil {
		t.Fatalf("append: %v %v", ok, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "spool-*.log"))
	if len(files) != 2 || filepath.Base(files[1]) != spoolName(8) {
		t.Fatalf("files %v: the append must start segment 8", files)
	}
	if st := sp.Stats(); st.Deliveries != 3 {
		t.Errorf("%d deliveries after the append, want 3", st.Deliveries)
	}
	// A file that is not a spool's is refused, not deleted.
	if err := os.WriteFile(filepath.Join(dir, spoolName(9)), []byte("something else"), 0o600); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	if _, err := OpenSpool(dir, SpoolOptions{}); err == nil || !strings.Contains(err.Error(), spoolName(9)) {
		t.Errorf("a foreign file in the spool: %v", err)
	}
}

// TestSpoolAgeLimit: a spool whose oldest delivery has waited longer than
// MaxAge refuses deliveries with an error naming the limit.
func TestSpoolAgeLimit(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	sp, err := OpenSpool(t.TempDir(), SpoolOptions{MaxAge: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	rec := testRecords(2)[:1]
	rec[0].Received = now
	if _, err := sp.append(rec, false); err != nil {
		t.Fatal(err)
	}
	now = now.Add(61 * time.Minute)
	_, err = sp.append(rec, false)
	if !errors.Is(err, ErrSpoolFull) || !strings.Contains(err.Error(), "--spool-max-age") {
		t.Fatalf("append past the age limit: %v", err)
	}
	if st := sp.Stats(); st.Full == nil {
		t.Error("stats do not say the spool is full")
	}
}

// FuzzSpoolReader: whatever a spool file holds (a torn append, a damaged
// disk, a foreign file), the reader neither panics nor returns a record
// it did not read whole and intact: the valid prefix it reports reads
// back as the same records, cleanly; and records written then cut or
// damaged past some byte read back as a prefix of what was written.
func FuzzSpoolReader(f *testing.F) {
	whole := segmentOf(f, testRecords(3))
	f.Add(whole, uint16(len(whole)), uint8(0))
	f.Add(whole, uint16(len(whole)-3), uint8(0))
	f.Add(whole, uint16(20), uint8(7))
	f.Add([]byte(spoolMagic+"\x05\x00\x00\x00\x00\x00\x00\x00{}"), uint16(5), uint8(1))
	f.Add([]byte("MFSP"), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, flip uint8) {
		recs, valid, err := parseSpool(data)
		if valid < 0 || valid > len(data) {
			t.Fatalf("valid prefix %d of %d bytes", valid, len(data))
		}
		if err == nil && valid != len(data) && len(data) >= len(spoolMagic) {
			t.Fatalf("no error, but only %d of %d bytes read", valid, len(data))
		}
		if errors.Is(err, errNotSpool) {
			return
		}
		again, valid2, err2 := parseSpool(data[:valid])
		if err2 != nil || valid2 != valid || len(again) != len(recs) {
			t.Fatalf("the valid prefix reads back as %d records (%v), want %d", len(again), err2, len(recs))
		}
		for _, r := range recs {
			if r.Recipe == "" || (len(r.Events) == 0) == (len(r.Body) == 0) {
				t.Fatalf("a record that is not a delivery: %+v", r)
			}
		}

		// Records written whole, then cut at some byte and one byte after
		// the cut damaged: a prefix of them reads back.
		if len(recs) == 0 {
			return
		}
		written := append([]byte(spoolMagic), mustEncode(t, recs)...)
		at := int(cut) % (len(written) + 1)
		torn := bytes.Clone(written[:at])
		if flip != 0 && at > len(spoolMagic) {
			torn[at-1] ^= flip
		}
		got, _, _ := parseSpool(torn)
		if len(got) > len(recs) {
			t.Fatalf("%d records read from a cut of %d", len(got), len(recs))
		}
		for i := range got {
			a, _ := json.Marshal(got[i])
			b, _ := json.Marshal(recs[i])
			if !bytes.Equal(a, b) {
				t.Fatalf("record %d read back as %s, written %s", i, a, b)
			}
		}
	})
}

func mustEncode(t *testing.T, recs []spoolRecord) []byte {
	b, err := encodeSpool(recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
