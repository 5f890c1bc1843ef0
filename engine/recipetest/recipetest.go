// Package recipetest runs offline recipe tests: each case feeds one trigger
// event to the real engine, which runs the recipe's real connector code
// against canned HTTP answers (an http.RoundTripper set as every
// connection's HTTPClient) with a temporary store. Nothing touches the
// network. A case then checks the run's outcome and the requests sent.
//
// Tests live beside the recipe (x.test.yaml next to x.yaml) or in the
// recipe's `tests:` section; docs/testing.md describes the format.
package recipetest

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/recipes"
)

// Options configure a test run.
type Options struct {
	// Registry resolves connectors; nil means connectors.Default.
	Registry *connectors.Registry
	// Logger receives the engine's and connectors' logs; nil discards.
	Logger hclog.Logger
	// Filter, when set, runs only the cases whose name it matches.
	Filter *regexp.Regexp
	// Timeout bounds each case; default 30 s.
	Timeout time.Duration
}

// Failure is one problem, at the place in a test (or recipe) file that
// states what was not met.
type Failure struct {
	Pos     recipes.Pos `json:"pos"`
	Message string      `json:"message"`
}

func (f Failure) String() string {
	if f.Pos.File == "" {
		return f.Message
	}
	return fmt.Sprintf("%s:%d:%d: %s", f.Pos.File, f.Pos.Line, f.Pos.Column, f.Message)
}

// CaseResult is the result of one case.
type CaseResult struct {
	Recipe   string        `json:"recipe"`
	Name     string        `json:"name"`
	Pos      recipes.Pos   `json:"pos"`
	Outcome  string        `json:"outcome"`
	Failures []Failure     `json:"failures,omitempty"`
	Requests []*Exchange   `json:"requests"`
	Duration time.Duration `json:"duration_ns"`
}

// Passed reports whether the case met every expectation.
func (c *CaseResult) Passed() bool { return len(c.Failures) == 0 }

// SuiteResult is a recipe file and its cases.
type SuiteResult struct {
	Recipe string `json:"recipe"`
	// Problems stop the suite: the recipe does not load, a test file does
	// not parse.
	Problems []Failure    `json:"problems,omitempty"`
	Cases    []CaseResult `json:"cases"`
	// Filtered counts the cases Options.Filter left out.
	Filtered int `json:"filtered,omitempty"`
}

// Report is every suite's result.
type Report struct {
	Suites []SuiteResult `json:"suites"`
}

// Counts returns the number of passed and failed cases, and of suites
// with problems.
func (r *Report) Counts() (passed, failed, broken int) {
	for _, s := range r.Suites {
		if len(s.Problems) > 0 {
			broken++
		}
		for _, c := range s.Cases {
			if c.Passed() {
				passed++
			} else {
				failed++
			}
		}
	}
	return
}

// OK reports whether every case passed and every file loaded.
func (r *Report) OK() bool {
	_, failed, broken := r.Counts()
	return failed == 0 && broken == 0
}

// Untested lists the recipes without a test case (cases a filter left
// out count as tests).
func (r *Report) Untested() []string {
	var out []string
	for _, s := range r.Suites {
		if len(s.Problems) == 0 && len(s.Cases) == 0 && s.Filtered == 0 {
			out = append(out, s.Recipe)
		}
	}
	return out
}

// suite is a recipe file with the test files that test it.
type suite struct {
	recipe    string
	testFiles []string
}

// discover finds recipes and their tests under paths. A test file tests
// the recipe beside it (x.test.yaml → x.yaml) unless it names another;
// shared connections files are not recipes.
func discover(paths []string) ([]*suite, []Failure) {
	byRecipe := map[string]*suite{}
	var order []string
	var problems []Failure
	addRecipe := func(p string) *suite {
		key := filepath.Clean(p)
		if s, ok := byRecipe[key]; ok {
			return s
		}
		s := &suite{recipe: p}
		byRecipe[key] = s
		order = append(order, key)
		return s
	}
	addTest := func(p string) {
		s := addRecipe(recipeFor(p))
		for _, t := range s.testFiles {
			if filepath.Clean(t) == filepath.Clean(p) {
				return
			}
		}
		s.testFiles = append(s.testFiles, p)
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			problems = append(problems, Failure{Pos: recipes.Pos{File: p, Line: 1, Column: 1}, Message: fmt.Sprintf("cannot read: %v", err)})
			continue
		}
		if !info.IsDir() {
			if recipes.IsTestFile(p) {
				addTest(p)
				continue
			}
			s := addRecipe(p)
			for _, ext := range []string{".test.yaml", ".test.yml"} {
				t := strings.TrimSuffix(p, filepath.Ext(p)) + ext
				if _, err := os.Stat(t); err == nil {
					s.testFiles = append(s.testFiles, t)
				}
			}
			continue
		}
		var files []string
		filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				problems = append(problems, Failure{Pos: recipes.Pos{File: path, Line: 1, Column: 1}, Message: fmt.Sprintf("cannot read: %v", err)})
				return nil
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if recipes.IsTestFile(path) || (recipes.IsRecipeFile(path) && isRecipeDoc(path)) {
				files = append(files, path)
			}
			return nil
		})
		sort.Strings(files)
		for _, f := range files {
			if recipes.IsTestFile(f) {
				addTest(f)
			} else {
				addRecipe(f)
			}
		}
	}
	out := make([]*suite, 0, len(order))
	for _, k := range order {
		out = append(out, byRecipe[k])
	}
	return out, problems
}

// recipeFor is the recipe a test file tests: its `recipe:` key, or the
// file beside it without ".test".
func recipeFor(testFile string) string {
	if named, _, _ := readTestFile(testFile); named != "" {
		return named
	}
	base := testFile
	for _, ext := range []string{".test.yaml", ".test.yml", ".TEST.YAML", ".TEST.YML"} {
		if strings.HasSuffix(base, ext) {
			base = strings.TrimSuffix(base, ext)
			break
		}
	}
	for _, ext := range []string{".yaml", ".yml"} {
		if _, err := os.Stat(base + ext); err == nil {
			return base + ext
		}
	}
	return base + ".yaml"
}

// Run runs the tests of the recipes and test files under paths.
func Run(ctx context.Context, opts Options, paths ...string) *Report {
	if opts.Registry == nil {
		opts.Registry = connectors.Default
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	log := opts.Logger.Named("recipetest")
	suites, problems := discover(paths)
	rep := &Report{}
	if len(problems) > 0 {
		rep.Suites = append(rep.Suites, SuiteResult{Problems: problems})
	}
	for _, s := range suites {
		rep.Suites = append(rep.Suites, runSuite(ctx, opts, log, s))
	}
	return rep
}

func runSuite(ctx context.Context, opts Options, log hclog.Logger, s *suite) SuiteResult {
	res := SuiteResult{Recipe: s.recipe}
	var cases []*Case
	for _, tf := range s.testFiles {
		_, cs, problems := readTestFile(tf)
		cases = append(cases, cs...)
		res.Problems = append(res.Problems, problems...)
	}
	if _, err := os.Stat(s.recipe); err != nil {
		at := recipes.Pos{File: s.recipe, Line: 1, Column: 1}
		if len(s.testFiles) > 0 {
			at = recipes.Pos{File: s.testFiles[0], Line: 1, Column: 1}
		}
		res.Problems = append(res.Problems, Failure{Pos: at, Message: fmt.Sprintf("no recipe %s to test: name it with `recipe:` or put the test file beside it", s.recipe)})
		return res
	}
	r, diags := recipes.LoadFile(s.recipe, recipes.Options{Registry: opts.Registry, Logger: opts.Logger})
	if diags.HasErrors() || r == nil {
		for _, d := range diags {
			if d.Severity != recipes.Error {
				continue
			}
			f := Failure{Message: "the recipe does not load: " + d.Summary}
			if d.Subject != nil {
				f.Pos = d.Subject.Start
			}
			res.Problems = append(res.Problems, f)
		}
		if len(res.Problems) == 0 {
			res.Problems = append(res.Problems, Failure{Pos: recipes.Pos{File: s.recipe, Line: 1, Column: 1}, Message: "the recipe does not load"})
		}
		return res
	}
	inline, problems := readRecipeTests(s.recipe)
	cases = append(inline, cases...)
	res.Problems = append(res.Problems, problems...)
	if len(res.Problems) > 0 {
		return res
	}
	for _, c := range cases {
		if opts.Filter != nil && !opts.Filter.MatchString(c.Name) {
			res.Filtered++
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		cr := runCase(cctx, opts, log.With("recipe", r.Name, "case", c.Name), r, c)
		cancel()
		res.Cases = append(res.Cases, cr)
		if ctx.Err() != nil {
			break
		}
	}
	return res
}
