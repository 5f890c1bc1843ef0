package engine

import (
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/recipes"
)

// TestPrepareReadsTheFieldsTheTriggerDecoded: an undecoded event whose
// trigger gave the values of the condition's fields (Event.Fields, in
// the order of PollRequest.Fields, NoField for one the record lacks) is
// decided on them, without reading its record again; an undecoded event
// without them is read from its record. The two events below carry
// values that disagree with their record, which shows what was read.
func TestPrepareReadsTheFieldsTheTriggerDecoded(t *testing.T) {
	when, err := recipes.CompileExpr(`trigger.eligible && trigger.score >= 70 && trigger.plan == nil`, recipes.Pos{File: "t.yaml", Line: 1, Column: 1})
	if err != nil {
		t.Fatal(err)
	}
	paths, err := exprPaths(when.Source)
	if err != nil {
		t.Fatal(err)
	}
	rt := &recipeRT{r: &recipes.Recipe{Name: "r", When: when, Trigger: &recipes.Trigger{}}, whenFields: whenFields(paths), condReads: condReads(paths)}
	if want := []string{"eligible", "score", "plan"}; len(rt.whenFields) != 3 || rt.whenFields[2] != want[2] {
		t.Fatalf("when fields %q, want %q", rt.whenFields, want)
	}
	e := &Engine{cache: eventCache{m: map[eventKey]map[string]any{}, max: 10}}
	low := []byte(`{"id":"a","eligible":true,"score":10}`)
	events := []connectors.Event{
		// kept on its fields (the record says score 10)
		{ID: "1", Subject: "a", Raw: low, Undecoded: true, Fields: []any{true, 90.0, connectors.NoField}},
		// skipped on its fields (the record says score 90)
		{ID: "2", Subject: "b", Raw: []byte(`{"id":"b","eligible":true,"score":90}`), Undecoded: true, Fields: []any{true, 50.0, nil}},
		// no fields: its record decides (skipped, score 10)
		{ID: "3", Subject: "c", Raw: low, Undecoded: true},
		// a plan: skipped; the next lacks one, and nothing of this one's
		// stays for it (kept)
		{ID: "4", Subject: "d", Raw: []byte(`{"id":"d","eligible":true,"score":90,"plan":"gold"}`), Undecoded: true, Fields: []any{true, 90.0, "gold"}},
		{ID: "5", Subject: "e", Raw: []byte(`{"id":"e","eligible":true,"score":90}`), Undecoded: true, Fields: []any{true, 90.0, connectors.NoField}},
	}
	p, err := e.prepareEvents(rt, nil, nil, events, false)
	if err != nil {
		t.Fatal(err)
	}
	var skipped []bool
	for _, ev := range p.adv.Events {
		skipped = append(skipped, ev.Skipped)
	}
	if len(skipped) != 5 || skipped[0] || !skipped[1] || !skipped[2] || !skipped[3] || skipped[4] {
		t.Fatalf("skipped %v, want [false true true true false]", skipped)
	}
	// The kept event runs on its whole record, decoded from its line.
	if string(p.adv.Events[0].Data) != string(low) || events[0].Undecoded || events[0].Data["score"] != 10.0 {
		t.Fatalf("kept event: data %s, decoded %v", p.adv.Events[0].Data, events[0].Data)
	}
}

// TestPreparedPageDropsOnlyWhatItCached: a page's kept events are cached
// for their runs under (recipe, event ID); the page forgets them when it
// is not committed, and has nothing cached for its skipped events.
func TestPreparedPageDropsOnlyWhatItCached(t *testing.T) {
	when, err := recipes.CompileExpr(`trigger.keep`, recipes.Pos{File: "t.yaml", Line: 1, Column: 1})
	if err != nil {
		t.Fatal(err)
	}
	rt := &recipeRT{r: &recipes.Recipe{Name: "r", When: when, Trigger: &recipes.Trigger{}}}
	e := &Engine{cache: eventCache{m: map[eventKey]map[string]any{}, max: 10}}
	other := cacheKey("other", "2") // another recipe's, same event ID
	e.cache.put(other, map[string]any{})
	events := []connectors.Event{
		{ID: "1", Subject: "a", Data: map[string]any{"keep": true}},
		{ID: "2", Subject: "b", Data: map[string]any{"keep": false}},
		{ID: "3", Subject: "c", Data: map[string]any{"keep": true}},
	}
	p, err := e.prepareEvents(rt, nil, nil, events, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "3"} {
		if _, ok := e.cache.m[cacheKey("r", id)]; !ok {
			t.Errorf("kept event %s not cached", id)
		}
	}
	if len(e.cache.m) != 3 {
		t.Fatalf("cache %v, want the two kept events and the other recipe's", e.cache.m)
	}
	e.dropPrepared(p)
	if _, ok := e.cache.m[other]; !ok || len(e.cache.m) != 1 {
		t.Fatalf("after the drop: %v, want only the other recipe's", e.cache.m)
	}
}
