package engine

import (
	"encoding/json"
	"fmt"

	"github.com/memberflow/memberflow/internal/jsonenc"
)

// redactJSON encodes v with every known secret replaced. It runs for
// each step's input and output (the journal), so it encodes once, into
// the bytes kept, and leaves them as they are when they hold no secret.
func (e *Engine) redactJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := jsonenc.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprintf("unencodable %T: %v", v, err))
	}
	return json.RawMessage(e.redact.Bytes(b))
}
