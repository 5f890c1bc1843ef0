// Package memberflow is the built-in connector whose triggers are the
// runner's own events: a run dead-lettered, a step retrying, a trigger
// failing, a connection's credentials refused, a service rate-limiting,
// and the recovery from each. Recipes using them are alert recipes: the
// engine feeds them (no poll, no webhook), durably and deduplicated, one
// event per source and cause per window, and a `recovered` when the cause
// clears. Their steps notify someone (see connectors/notify).
package memberflow

import (
	"encoding/json"
	"fmt"

	"github.com/memberflow/memberflow/connectors"
)

// Name is the connector name recipes use.
const Name = "memberflow"

// Conn is the opened connection: the triggers need nothing from it.
type Conn struct{ Name string }

// Spec returns a fresh spec of the connector.
func Spec() *connectors.Spec {
	return &connectors.Spec{
		Name:    Name,
		Title:   "memberflow",
		Summary: "The runner's own events (dead letters, failing triggers, refused credentials) as triggers for alert recipes.",
		Description: "A built-in connector with no service. Each trigger is fed by the runner itself " +
			"when something goes wrong with the other recipes: at most one event per source (recipe or connection) " +
			"and cause per `window`, stored and deduplicated like any event, so a storm of failures is one alert; " +
			"`recovered` follows when the cause clears. Alert recipes are never sources themselves.",
		Auth:     []connectors.AuthKind{connectors.AuthNone},
		Options:  json.RawMessage(`{"type":"object","additionalProperties":false}`),
		Triggers: triggers(),
		Open: func(cfg connectors.ConnectionConfig) (connectors.Conn, error) {
			if len(cfg.Options) > 0 {
				return nil, fmt.Errorf("memberflow: connection %q takes no options", cfg.Name)
			}
			return &Conn{Name: cfg.Name}, nil
		},
	}
}

func init() { connectors.MustRegister(Spec()) }

// The input schemas share their parameters.
const (
	recipesParam = `"recipes": {"type": "array", "items": {"type": "string", "minLength": 1}, "description": "Recipes to watch (for connection causes: recipes using the connection); default every recipe that is not an alert."}`
	windowParam  = `"window": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", "description": "At most one event per source and cause in each window of this length (a Go duration); default 15m."}`
	forParam     = `"for": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", "description": "How long the cause must last before the event (a Go duration)."}`
)

func input(extra ...string) json.RawMessage {
	props := recipesParam + ",\n" + windowParam
	for _, e := range extra {
		props += ",\n" + e
	}
	return json.RawMessage(`{"type": "object", "additionalProperties": false, "properties": {` + props + `}}`)
}

// output is the event every trigger emits: `trigger` in alert recipes.
// Fields that do not apply to a cause are empty (or 0).
const output = `{
  "type": "object",
  "required": ["cause", "recipe", "connection", "connector", "count", "run_ids", "error", "since", "last", "window_start", "window_seconds", "failing_seconds", "message"],
  "properties": {
    "cause": {"type": "string", "enum": ["run_failed", "step_retrying", "trigger_failing", "auth_failing", "rate_limited", "recovered"], "description": "What happened."},
    "recovered_cause": {"type": "string", "description": "For recovered: the cause that cleared."},
    "recipe": {"type": "string", "description": "The recipe that failed (empty for connection causes)."},
    "connection": {"type": "string", "description": "The connection (auth_failing, rate_limited)."},
    "connector": {"type": "string", "description": "The connection's connector."},
    "step": {"type": "string", "description": "The failing step's id (run_failed, step_retrying)."},
    "action": {"type": "string", "description": "The failing step's connection.operation."},
    "trigger": {"type": "string", "description": "The failing trigger's connection.operation (trigger_failing)."},
    "count": {"type": "integer", "description": "Occurrences since the previous event of this source and cause (dead letters, retries, failed polls, 401s, 429s)."},
    "run_ids": {"type": "array", "items": {"type": "integer"}, "description": "Up to ten of the runs concerned (memberflow runs show ID)."},
    "error": {"type": "string", "description": "The last error, secrets redacted."},
    "status": {"type": "integer", "description": "The HTTP status, for connection causes."},
    "attempts": {"type": "integer", "description": "Attempts of the retrying step so far."},
    "since": {"type": "string", "format": "date-time", "description": "When the cause began."},
    "last": {"type": "string", "format": "date-time", "description": "The last occurrence."},
    "window_start": {"type": "string", "format": "date-time", "description": "Start of the window this event is the one event of."},
    "window_seconds": {"type": "integer", "description": "Length of the window."},
    "failing_seconds": {"type": "integer", "description": "How long the cause has lasted (for recovered: how long it lasted)."},
    "message": {"type": "string", "description": "One line for a person."}
  }
}`

func triggers() []*connectors.TriggerSpec {
	t := func(name, summary string, in json.RawMessage, example map[string]any) *connectors.TriggerSpec {
		return &connectors.TriggerSpec{Engine: true, Operation: connectors.Operation{
			Name: name, Summary: summary, Input: in, Output: json.RawMessage(output), Example: example,
		}}
	}
	return []*connectors.TriggerSpec{
		t("run_failed", "A recipe's runs were dead-lettered (one event per recipe and window, with the count and run ids).",
			input(), map[string]any{"window": "15m"}),
		t("step_retrying", "A step has been tried `attempts` times and is being tried again.",
			input(`"attempts": {"type": "integer", "minimum": 1, "description": "Attempts after which a retry is news; default 3."}`),
			map[string]any{"attempts": 3}),
		t("trigger_failing", "A trigger's polls (or a webhook's deliveries) have failed for `for`: the recipe sees nothing new.",
			input(forParam), map[string]any{"for": "15m"}),
		t("auth_failing", "A service refuses a connection's credentials (HTTP 401).",
			input(), map[string]any{"window": "1h"}),
		t("rate_limited", "A service has answered 429 for `for`, continuously.",
			input(forParam), map[string]any{"for": "5m"}),
		t("recovered", "A cause an event was sent for has cleared.",
			input(`"causes": {"type": "array", "items": {"type": "string", "enum": ["run_failed", "step_retrying", "trigger_failing", "auth_failing", "rate_limited"]}, "description": "Causes whose recovery is news; default all."}`),
			map[string]any{"causes": []any{"auth_failing", "trigger_failing"}}),
	}
}
