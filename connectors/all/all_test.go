package all

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// MinOperations is the catalogue size the project promises.
const MinOperations = 126

// noRemoteAPI lists connectors that talk to no service: they have no
// OpenAPI document and no sandbox.
var noRemoteAPI = map[string]bool{"file": true, "memberflow": true, "notify": true}

// packageDir finds the folder of the package that defines the spec, from
// its Open function, so that a connector named "file" may live in
// connectors/files.
func packageDir(t *testing.T, s *connectors.Spec) string {
	t.Helper()
	if s.Open == nil {
		t.Fatalf("connector %q: Open is nil", s.Name)
	}
	fn := runtime.FuncForPC(reflect.ValueOf(s.Open).Pointer()).Name()
	// "github.com/memberflow/memberflow/connectors/accredible.Spec.func1"
	slash := strings.LastIndex(fn, "/")
	pkg := fn[:slash+strings.Index(fn[slash:], ".")]
	const prefix = "github.com/memberflow/memberflow/connectors/"
	if !strings.HasPrefix(pkg, prefix) {
		t.Fatalf("connector %q is defined in %s, outside connectors/", s.Name, pkg)
	}
	return filepath.Join("..", strings.TrimPrefix(pkg, prefix))
}

// TestConventions checks that every registered connector follows the
// house layout (Telegraf-style): README.md, its OpenAPI document, a
// sandbox, and operations that document themselves.
func TestConventions(t *testing.T) {
	specs := connectors.Default.List()
	if len(specs) == 0 {
		t.Fatal("no connector is registered: connectors/all imports none")
	}
	for _, s := range specs {
		t.Run(s.Name, func(t *testing.T) {
			dir := packageDir(t, s)
			if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
				t.Errorf("%s/README.md: %v", dir, err)
			}
			if s.Summary == "" {
				t.Errorf("connector summary is empty")
			}
			if len(s.Auth) == 0 {
				t.Errorf("no auth kinds listed")
			}
			// Registering does not compile schemas (start-up stays fast):
			// every one of them must compile all the same.
			if err := connectors.CheckSchemas(s); err != nil {
				t.Error(err)
			}
			if !noRemoteAPI[s.Name] {
				checkOpenAPI(t, s, dir)
				checkSandbox(t, dir)
			}
			for _, a := range s.Actions {
				checkOperation(t, s.Name, "action", &a.Operation)
			}
			for _, tr := range s.Triggers {
				checkOperation(t, s.Name, "trigger", &tr.Operation)
				if len(tr.Modes()) == 0 {
					t.Errorf("trigger %q: neither poll nor webhook", tr.Name)
				}
			}
		})
	}
}

func checkOpenAPI(t *testing.T, s *connectors.Spec, dir string) {
	t.Helper()
	path := filepath.Join(dir, "openapi.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if !json.Valid(data) {
		t.Errorf("%s is not valid JSON", path)
	}
	if len(s.OpenAPI) == 0 {
		t.Errorf("Spec.OpenAPI is empty: embed %s", path)
	} else if !bytes.Equal(bytes.TrimSpace(s.OpenAPI), bytes.TrimSpace(data)) {
		t.Errorf("Spec.OpenAPI differs from %s", path)
	}
}

func checkSandbox(t *testing.T, dir string) {
	t.Helper()
	sb := filepath.Join(dir, "sandbox")
	entries, err := os.ReadDir(sb)
	if err != nil {
		t.Errorf("no sandbox subpackage: %v", err)
		return
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			return
		}
	}
	t.Errorf("%s holds no Go source", sb)
}

func checkOperation(t *testing.T, connector, kind string, op *connectors.Operation) {
	t.Helper()
	for _, p := range operationProblems(connector, kind, op) {
		t.Error(p)
	}
}

// operationProblems lists what an operation lacks: a one-line summary,
// schemas that compile, and an example valid against its input schema.
func operationProblems(connector, kind string, op *connectors.Operation) []string {
	where := kind + " " + connector + "." + op.Name
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, where+": "+fmt.Sprintf(format, args...)) }
	if strings.TrimSpace(op.Summary) == "" {
		add("summary is empty")
	}
	if strings.Contains(op.Summary, "\n") {
		add("summary is more than one line")
	}
	if len(op.Output) == 0 {
		add("output schema is missing")
	} else if _, err := connectors.CompileSchema(connector+"/"+op.Name+"/output", op.Output); err != nil {
		add("output schema: %v", err)
	}
	if len(op.Input) == 0 {
		add("input schema is missing")
		return problems
	}
	in, err := connectors.CompileSchema(connector+"/"+op.Name+"/input", op.Input)
	if err != nil {
		add("input schema: %v", err)
		return problems
	}
	if op.Example == nil {
		add("no example")
		return problems
	}
	// Validate the example as JSON would carry it (ints as numbers).
	raw, err := json.Marshal(op.Example)
	if err != nil {
		add("example does not encode: %v", err)
		return problems
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		add("example does not decode: %v", err)
		return problems
	}
	if err := in.Validate(doc); err != nil {
		add("example does not match the input schema: %v", err)
	}
	return problems
}

func TestOperationProblemsAreFound(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","required":["id"],"properties":{"id":{"type":"integer"}}}`)
	tests := []struct {
		name string
		op   connectors.Operation
		want string
	}{
		{"sound", connectors.Operation{Name: "get", Summary: "Get.", Input: schema, Output: schema, Example: map[string]any{"id": 3}}, ""},
		{"no summary", connectors.Operation{Name: "get", Input: schema, Output: schema, Example: map[string]any{"id": 3}}, "action x.get: summary is empty"},
		{"two-line summary", connectors.Operation{Name: "get", Summary: "a\nb", Input: schema, Output: schema, Example: map[string]any{"id": 3}}, "more than one line"},
		{"bad output schema", connectors.Operation{Name: "get", Summary: "Get.", Input: schema, Output: json.RawMessage(`{"type":3}`), Example: map[string]any{"id": 3}}, "output schema:"},
		{"no input schema", connectors.Operation{Name: "get", Summary: "Get.", Output: schema}, "input schema is missing"},
		{"no example", connectors.Operation{Name: "get", Summary: "Get.", Input: schema, Output: schema}, "no example"},
		{"invalid example", connectors.Operation{Name: "get", Summary: "Get.", Input: schema, Output: schema, Example: map[string]any{"id": "three"}}, "example does not match the input schema"},
		{"example missing a required key", connectors.Operation{Name: "get", Summary: "Get.", Input: schema, Output: schema, Example: map[string]any{}}, "missing properties: 'id'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(operationProblems("x", "action", &tc.op), "\n")
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCatalogueSize keeps the promise of the seeds: at least 126 real
// actions and triggers.
func TestCatalogueSize(t *testing.T) {
	total := 0
	for _, s := range connectors.Default.List() {
		n := len(s.Actions) + len(s.Triggers)
		t.Logf("%-12s %3d actions %2d triggers", s.Name, len(s.Actions), len(s.Triggers))
		total += n
	}
	t.Logf("total %d", total)
	if total < MinOperations {
		t.Fatalf("the catalogue has %d operations, fewer than the %d promised", total, MinOperations)
	}
}
