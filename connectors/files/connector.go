// Package files is memberflow's built-in connector for local files (name
// `file`): trigger `records` reads JSON Lines or CSV as one event per
// record, and action `append` writes JSON Lines. There is no service: bulk
// work (members arriving as CSV exports) and dry runs over a file.
package files

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
)

// Name is the connector name recipes use.
const Name = "file"

const optionsSchema = `{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "baseDir": {"type": "string", "minLength": 1, "description": "Directory relative paths are resolved against; default: the working directory."}
  }
}`

// Files is an opened file connection. It is safe for concurrent use: each
// path has one writer, so appends from concurrent steps never interleave.
type Files struct {
	name    string
	baseDir string
	log     hclog.Logger
	dryRun  func(connectors.PlannedWrite)

	mu      sync.Mutex
	writers map[string]*writer
	finders map[string]*finder

	// Stdin is read once, as a stream: the trigger keeps its position.
	Stdin   io.Reader
	stdinMu sync.Mutex
	stdin   *streamReader
}

// Spec returns a fresh spec of the connector.
func Spec() *connectors.Spec {
	return &connectors.Spec{
		Name:        Name,
		Title:       "Files",
		Summary:     "Read JSON Lines or CSV records; append JSON Lines.",
		Description: "A built-in connector with no service: the `records` trigger turns each record of a JSON Lines or CSV file (or stdin) into an event, resuming where the last run stopped; `append` writes one JSON object per line.",
		Auth:        []connectors.AuthKind{connectors.AuthNone},
		Options:     json.RawMessage(optionsSchema),
		Actions:     []*connectors.ActionSpec{appendAction()},
		Triggers:    []*connectors.TriggerSpec{recordsTrigger()},
		Open:        Open,
	}
}

func init() { connectors.MustRegister(Spec()) }

// Open makes a connection. It does no I/O.
func Open(cfg connectors.ConnectionConfig) (connectors.Conn, error) {
	f := &Files{name: cfg.Name, log: cfg.Logger, dryRun: cfg.DryRun, writers: map[string]*writer{}, finders: map[string]*finder{}, Stdin: os.Stdin}
	if f.log == nil {
		f.log = hclog.NewNullLogger()
	}
	if v, ok := cfg.Options["baseDir"]; ok {
		s, isString := v.(string)
		if !isString || s == "" {
			return nil, fmt.Errorf("file: connection %q: option baseDir must be a non-empty string", cfg.Name)
		}
		f.baseDir = s
	}
	return f, nil
}

// resolve makes a path absolute against baseDir.
func (f *Files) resolve(path string) (string, error) {
	if path == "" {
		return "", errors.New("path is empty")
	}
	if !filepath.IsAbs(path) && f.baseDir != "" {
		path = filepath.Join(f.baseDir, path)
	}
	return filepath.Abs(path)
}

// Close closes every file the connection appended to.
func (f *Files) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for p, w := range f.writers {
		w.mu.Lock()
		if w.file != nil {
			if err := w.file.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing %s: %w", p, err))
			}
			w.file = nil
		}
		w.mu.Unlock()
	}
	f.writers = map[string]*writer{}
	return errors.Join(errs...)
}

var _ io.Closer = (*Files)(nil)
