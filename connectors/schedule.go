package connectors

import (
	"encoding/json"
	"time"
)

// Schedule is the built-in trigger of a recipe whose trigger is a
// `schedule:` (cron). It is described like a connector trigger so that
// one description types `trigger.*` in the validator, documents the event
// data and is what the engine emits (ScheduleEvent).
var Schedule = &TriggerSpec{
	Operation: Operation{
		Name:    "schedule",
		Summary: "A cron tick: the recipe runs once per scheduled time.",
		Description: "The event ID is `<recipe>@<scheduled_time>`, so a tick runs once even with several runners. " +
			"`run` fires each tick; `run --once` fires a schedule that is due: never fired, or the tick after its last fire has passed " +
			"(missed ticks are coalesced into one, stamped with the latest tick that passed).",
		Input: json.RawMessage(`{"type":"object","additionalProperties":false}`),
		Output: json.RawMessage(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["recipe", "scheduled_time"],
  "properties": {
    "recipe": {"type": "string", "description": "The recipe's name."},
    "scheduled_time": {"type": "string", "format": "date-time", "description": "The tick, RFC 3339 in UTC: date(trigger.scheduled_time)."}
  }
}`),
	},
}

// ScheduleEvent is the event of a recipe's tick at the given time.
func ScheduleEvent(recipe string, at time.Time) Event {
	stamp := at.UTC().Format(time.RFC3339Nano)
	return Event{
		ID:      recipe + "@" + stamp,
		Subject: "schedule/" + recipe,
		Time:    at,
		Data:    map[string]any{"recipe": recipe, "scheduled_time": stamp},
	}
}
