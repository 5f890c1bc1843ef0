package connectors

import (
	"encoding/json"
	"testing"
	"time"
)

// TestScheduleEventMatchesItsSchema: what the engine emits for a tick is
// what the validator types trigger.* by.
func TestScheduleEventMatchesItsSchema(t *testing.T) {
	sch, err := CompileSchema("schedule/output", Schedule.Output)
	if err != nil {
		t.Fatal(err)
	}
	ev := ScheduleEvent("nightly", time.Date(2026, 11, 22, 2, 0, 0, 0, time.FixedZone("CET", 3600)))
	b, _ := json.Marshal(ev.Data)
	var data any
	json.Unmarshal(b, &data)
	if err := sch.Validate(data); err != nil {
		t.Errorf("schedule event data %s does not match its schema: %v", b, err)
	}
	if ev.ID != "nightly@2026-11-22T01:00:00Z" || ev.Data["scheduled_time"] != "2026-11-22T01:00:00Z" {
		t.Errorf("event %+v: want the tick in UTC, in the ID and the data", ev)
	}
}
