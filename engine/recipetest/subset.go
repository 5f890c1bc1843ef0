package recipetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/memberflow/memberflow/recipes"
)

// Difference is one place where an actual JSON value does not contain the
// expected one.
type Difference struct {
	Path string      // JSON path in the body, "credential.recipient.email"
	Pos  recipes.Pos // of the expected value in the test file
	Want string
	Got  string
}

func (d Difference) String() string {
	return fmt.Sprintf("%s (%s:%d:%d): want %s, got %s", d.Path, d.Pos.File, d.Pos.Line, d.Pos.Column, d.Want, d.Got)
}

// subset compares an expected YAML value with an actual JSON value: every
// key of an expected mapping must be in the actual object with a matching
// value (other keys are ignored); a list must have the same length and
// match item by item; scalars must be equal as JSON values, and null also
// matches a missing key. Two tags loosen a scalar: !any (present, any
// value) and !regex PATTERN (a string matching it), for values a test
// cannot know, such as today's date.
func subset(file string, want *yaml.Node, got any, present bool, path string, diffs *[]Difference) {
	want = resolveAlias(want)
	pos := recipes.Pos{File: file, Line: want.Line, Column: want.Column}
	if path == "" {
		path = "(body)"
	}
	add := func(w, g string) {
		*diffs = append(*diffs, Difference{Path: path, Pos: pos, Want: w, Got: g})
	}
	gotText := func() string {
		if !present {
			return "nothing (missing)"
		}
		return compact(got)
	}
	switch want.Kind {
	case yaml.MappingNode:
		m, ok := got.(map[string]any)
		if !ok {
			add("an object", gotText())
			return
		}
		for i := 0; i+1 < len(want.Content); i += 2 {
			key := want.Content[i].Value
			v, has := m[key]
			subset(file, want.Content[i+1], v, has, join(path, key), diffs)
		}
	case yaml.SequenceNode:
		list, ok := got.([]any)
		if !ok {
			add(fmt.Sprintf("a list of %d", len(want.Content)), gotText())
			return
		}
		if len(list) != len(want.Content) {
			add(fmt.Sprintf("a list of %d", len(want.Content)), fmt.Sprintf("a list of %d: %s", len(list), compact(list)))
			return
		}
		for i, item := range want.Content {
			subset(file, item, list[i], true, fmt.Sprintf("%s[%d]", path, i), diffs)
		}
	default:
		switch want.Tag {
		case "!any":
			if !present {
				add("any value", gotText())
			}
			return
		case "!regex":
			re, err := regexp.Compile(want.Value)
			if err != nil {
				add("a valid regular expression", err.Error())
				return
			}
			s, isString := got.(string)
			if !present || !isString || !re.MatchString(s) {
				add("a string matching "+strconv.Quote(want.Value), gotText())
			}
			return
		}
		var w any
		if err := decodePlain(want, &w); err != nil {
			add("a valid value", err.Error())
			return
		}
		b, _ := json.Marshal(normalizeYAML(w))
		var wj any
		json.Unmarshal(b, &wj)
		if wj == nil && (!present || got == nil) {
			return
		}
		if !present || !reflect.DeepEqual(wj, got) {
			add(compact(wj), gotText())
		}
	}
}

func join(path, key string) string {
	if path == "(body)" {
		return key
	}
	return path + "." + key
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return strconv.Quote(fmt.Sprint(v))
	}
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

func pretty(v any, indent string) string {
	b, err := json.MarshalIndent(v, indent, "  ")
	if err != nil {
		return indent + fmt.Sprint(v)
	}
	return indent + string(b)
}
