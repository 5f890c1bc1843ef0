package recipes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	"gopkg.in/yaml.v3"

	"github.com/memberflow/memberflow/connectors"
)

// Options configure loading.
type Options struct {
	// Registry resolves `connector:` names; nil means connectors.Default.
	Registry *connectors.Registry
	// Connections, when set, are shared connections files that replace
	// every recipe's own connections_file: this is how a run picks the
	// sandbox variant of the production connections.
	Connections []string
	// Logger receives debug lines; nil discards them.
	Logger hclog.Logger
}

// Load loads recipe files and folders (recursively, *.yaml and *.yml).
// Recipe test files (see IsTestFile) are skipped; shared connections files
// are validated and used by the recipes that refer to them. It returns
// the recipes that loaded without errors and every problem found.
func Load(opts Options, paths ...string) ([]*Recipe, Diagnostics) {
	l := newLoader(opts)
	var out []*Recipe
	for _, f := range l.expand(paths) {
		data, err := os.ReadFile(f)
		if err != nil {
			l.ioError(f, err)
			continue
		}
		if r := l.load(f, data); r != nil {
			out = append(out, r)
		}
	}
	clash := l.crossCheck()
	kept := out[:0]
	for _, r := range out {
		if !clash[r] {
			kept = append(kept, r)
		}
	}
	return kept, l.finish()
}

// LoadFile loads one recipe file. A shared connections file yields no
// recipe, only its diagnostics.
func LoadFile(path string, opts Options) (*Recipe, Diagnostics) {
	l := newLoader(opts)
	data, err := os.ReadFile(path)
	if err != nil {
		l.ioError(path, err)
		return nil, l.finish()
	}
	r := l.load(path, data)
	return r, l.finish()
}

// LoadBytes loads a recipe held in memory; name is its file name, used in
// diagnostics and to find a relative connections_file.
func LoadBytes(name string, data []byte, opts Options) (*Recipe, Diagnostics) {
	l := newLoader(opts)
	r := l.load(name, data)
	return r, l.finish()
}

// IsTestFile reports whether path is a recipe test file (*.test.yaml or
// *.test.yml), which the loader leaves to the test runner.
func IsTestFile(path string) bool {
	base := strings.ToLower(filepath.Base(path))
	return strings.HasSuffix(base, ".test.yaml") || strings.HasSuffix(base, ".test.yml")
}

// IsRecipeFile reports whether a folder walk should load path.
func IsRecipeFile(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return (ext == ".yaml" || ext == ".yml") && !IsTestFile(path)
}

type loader struct {
	opts     Options
	reg      *connectors.Registry
	log      hclog.Logger
	diags    Diagnostics
	shared   map[string]*connFile // by cleaned path
	loaded   []*loadedRecipe
	overlay  []*connFile // opts.Connections, loaded on first use
	overlaid bool
	rt       *runtimeCompiler // shared by every file of the load
	// secretScope checks auth and webhook values, which see only secret.
	secretScope *scope
}

type loadedRecipe struct {
	r        *Recipe
	nameNode *yaml.Node
	src      *source
}

// connFile is a shared connections file.
type connFile struct {
	path  string
	src   *source // for diagnostics at its keys; nil when it did not parse
	conns map[string]*Connection
	keys  map[string]*yaml.Node
	ok    bool // read and parsed; its problems are reported on its own
}

func newLoader(opts Options) *loader {
	l := &loader{opts: opts, reg: opts.Registry, log: opts.Logger, shared: map[string]*connFile{}, rt: new(runtimeCompiler)}
	if l.reg == nil {
		l.reg = connectors.Default
	}
	if l.log == nil {
		l.log = hclog.NewNullLogger()
	}
	l.log = l.log.Named("recipes")
	return l
}

// ErrNoRecipes is the Err of the diagnostic for a folder that holds no
// recipe file.
var ErrNoRecipes = errors.New("no recipe file in the folder")

func (l *loader) ioError(path string, err error) {
	l.diags = append(l.diags, &Diagnostic{
		Severity: Error,
		Summary:  fmt.Sprintf("cannot read %s: %v", path, unwrapPathError(err)),
		Subject:  &Range{File: path, Start: Pos{File: path, Line: 1, Column: 1}, End: Pos{File: path, Line: 1, Column: 1}},
		Err:      err,
	})
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// expand turns files and folders into the files to load, in a stable
// order, each once.
func (l *loader) expand(paths []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if c := filepath.Clean(p); !seen[c] {
			seen[c] = true
			out = append(out, p)
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			l.ioError(p, err)
			continue
		}
		if !info.IsDir() {
			if !IsTestFile(p) {
				add(p)
			}
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				l.ioError(path, err)
				return nil
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if IsRecipeFile(path) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			l.ioError(p, err)
		} else if len(found) == 0 {
			// A folder named on purpose and holding nothing is most likely
			// a wrong path: "0 recipes valid" would pass a CI check that
			// checks nothing.
			l.diags = append(l.diags, &Diagnostic{Severity: Error, Summary: fmt.Sprintf("no recipe file (*.yaml, *.yml) in the folder %s", p),
				Subject: &Range{File: p, Start: Pos{File: p, Line: 1, Column: 1}, End: Pos{File: p, Line: 1, Column: 1}}, Err: ErrNoRecipes})
		}
		sort.Strings(found)
		for _, f := range found {
			add(f)
		}
	}
	return out
}

// isConnectionsFile: a top level with connections but no trigger.
func isConnectionsFile(root *yaml.Node) bool {
	return getKey(root, "connections") != nil && getKey(root, "trigger") == nil && getKey(root, "steps") == nil
}

// load parses and checks one file; it returns the recipe when the file is
// a recipe without errors.
func (l *loader) load(name string, data []byte) *Recipe {
	before := l.errorCount()
	s := newSource(name, data, &l.diags, l.rt)
	root := parseYAML(s)
	if root == nil {
		return nil
	}
	checkKeys(s, root, 0)
	if root.Kind != yaml.MappingNode {
		s.errorf(root, "a recipe is a mapping with version, name, trigger and steps, not a %s", kindName(root))
		return nil
	}
	if isConnectionsFile(root) {
		l.loadConnFile(s, root)
		return nil
	}
	lr := l.compileRecipe(s, root)
	if lr == nil {
		return nil
	}
	l.loaded = append(l.loaded, lr)
	if l.errorCount() > before {
		return nil
	}
	l.log.Debug("loaded recipe", "file", name, "name", lr.r.Name, "steps", len(lr.r.Steps))
	return lr.r
}

func (l *loader) errorCount() int {
	n := 0
	for _, d := range l.diags {
		if d.Severity == Error {
			n++
		}
	}
	return n
}

// loadConnFile checks a shared connections file given on the command line
// (or found in a folder); recipes that refer to it reuse the result.
func (l *loader) loadConnFile(s *source, root *yaml.Node) *connFile {
	key := filepath.Clean(s.name)
	if cf, ok := l.shared[key]; ok {
		return cf
	}
	cf := &connFile{path: s.name, src: s, conns: map[string]*Connection{}, keys: map[string]*yaml.Node{}, ok: true}
	l.shared[key] = cf
	budget := maxValues
	value, err := toValue(root, &budget)
	if err != nil {
		s.errorf(root, "%v", err)
		return cf
	}
	_, connSchema, doc, err := compiledSchemas()
	if err != nil {
		s.errorf(root, "recipe schema: %v", err)
		return cf
	}
	s.checkSchema(root, value, connSchema, doc, "", nil)
	for _, p := range pairs(get(root, "connections")) {
		if c := l.compileConnection(s, p[0], resolve(p[1])); c != nil {
			cf.conns[c.Name] = c
			cf.keys[c.Name] = p[0]
		}
	}
	return cf
}

// sharedFile loads a connections file referred to by a recipe.
func (l *loader) sharedFile(path string) (*connFile, error) {
	if cf, ok := l.shared[filepath.Clean(path)]; ok {
		return cf, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := newSource(path, data, &l.diags, l.rt)
	root := parseYAML(s)
	if root == nil {
		cf := &connFile{path: path}
		l.shared[filepath.Clean(path)] = cf
		return cf, nil
	}
	checkKeys(s, root, 0)
	if root.Kind != yaml.MappingNode || !isConnectionsFile(root) {
		s.errorf(root, "a connections file has a top-level connections mapping and no trigger")
		cf := &connFile{path: path}
		l.shared[filepath.Clean(path)] = cf
		return cf, nil
	}
	return l.loadConnFile(s, root), nil
}

// crossCheck finds what no single file shows: two recipes with one name
// or one webhook path. It returns the recipes that clash with an earlier
// one (the error is reported on them).
func (l *loader) crossCheck() map[*Recipe]bool {
	clash := map[*Recipe]bool{}
	names := map[string]*loadedRecipe{}
	ids := map[string]*loadedRecipe{}
	hooks := map[string]*loadedRecipe{}
	for _, lr := range l.loaded {
		r := lr.r
		// One id, one recipe's state: two recipes sharing one would read
		// and move each other's cursors.
		if r.ID != "" {
			if first, dup := ids[r.ID]; dup && first.r.Name != r.Name {
				lr.src.errorf(lr.nameNode, "recipe id %q is also used by %s", r.ID, first.r.File)
				clash[r] = true
			} else if !dup {
				ids[r.ID] = lr
			}
		}
		if r.Name != "" {
			if first, dup := names[r.Name]; dup {
				lr.src.errorf(lr.nameNode, "recipe name %q is also used by %s", r.Name, first.r.File)
				clash[r] = true
			} else {
				names[r.Name] = lr
			}
		}
		if r.Trigger != nil && r.Trigger.WebhookPath != "" && r.Trigger.Mode == "webhook" {
			if first, dup := hooks[r.Trigger.WebhookPath]; dup {
				lr.src.errorAt(r.Trigger.Pos, "webhook path %q is also used by %s", r.Trigger.WebhookPath, first.r.File)
				clash[r] = true
			} else {
				hooks[r.Trigger.WebhookPath] = lr
			}
		}
	}
	return clash
}

// finish sorts the diagnostics and drops repeats.
func (l *loader) finish() Diagnostics {
	l.diags.Sort()
	out := l.diags[:0]
	var prev *Diagnostic
	for _, d := range l.diags {
		if prev != nil && prev.Error() == d.Error() {
			continue
		}
		out = append(out, d)
		prev = d
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
