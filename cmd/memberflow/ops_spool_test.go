package main

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/ops"
)

// TestSpoolMetricsAndReadiness: a runner with a delivery spool exports
// its depth (a spool left by an earlier runner, one delivery, written in
// the documented format), and the exposition passes promtool.
func TestSpoolMetricsAndReadiness(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"recipe":"r","received":"` + time.Now().Add(-90*time.Second).UTC().Format(time.RFC3339Nano) + `","events":[{"id":"e1","data":{}}]}`)
	rec := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	rec = binary.LittleEndian.AppendUint32(rec, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(filepath.Join(dir, "spool-00000000000000000001.log"), append(append([]byte("MFSPOOL1"), rec...), payload...), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := engine.OpenSpool(dir, engine.SpoolOptions{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "mf.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	metrics := ops.NewMetrics()
	eng, err := engine.New(engine.Options{Store: store, Observer: metrics, Owner: "spool-test", Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	metrics.Attach(eng, store)
	srv := httptest.NewServer(httpHandler(eng, metrics, nil))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"memberflow_spool_deliveries 1", "memberflow_spool_full 0", "memberflow_spool_bytes ", "memberflow_spool_oldest_age_seconds 9"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	promtoolCheck(t, body)

	var spoolCheck *engine.Check
	for _, c := range eng.Checks(context.Background()) {
		if c.Name == "spool" {
			spoolCheck = &c
		}
	}
	if spoolCheck == nil || !spoolCheck.OK {
		t.Errorf("spool check: %+v", spoolCheck)
	}
}
