package ops

import (
	"context"

	"github.com/memberflow/memberflow/engine"
)

// EngineChecker adapts an engine to Checker.
type EngineChecker struct{ Engine *engine.Engine }

func (e EngineChecker) Checks(ctx context.Context) []Check {
	var out []Check
	for _, c := range e.Engine.Checks(ctx) {
		out = append(out, Check{Name: c.Name, OK: c.OK, Error: c.Error})
	}
	return out
}
