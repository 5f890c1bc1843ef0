package accredible

import (
	"strings"
	"testing"
)

// TestBulkItemErrorsAsDocumented: POST /v2/credentials/bulk_create puts an
// item's error under "errors" (its own 207 and 422 schemas and examples;
// the sandbox answers so). bulk_create_credentials must read it: a refused
// item fails with its code, an item created without credits is
// unpublished, and a chunk the service refuses whole fails item by item.
func TestBulkItemErrorsAsDocumented(t *testing.T) {
	e := setup(t)
	e.sb.SetCredits(1)
	// Sent: member 1 (published), member 2 (unknown group: the service
	// refuses it), member 3 (created, unpublished: no credit left).
	items := []any{
		map[string]any{"recipient": member(1), "group_id": 100001},
		map[string]any{"recipient": member(2), "group_id": 999999},
		map[string]any{"recipient": member(3), "group_id": 100001},
	}
	o := out(e.run(t, "bulk_create_credentials", map[string]any{"credentials": items}))
	results := o["results"].([]any)
	want := []struct{ status, code, msg string }{
		{itemCreated, "", ""},
		{itemFailed, "credential_invalid", "group_id is invalid"},
		{itemUnpublished, "insufficient_credits", "created but not published"},
	}
	for i, w := range want {
		r := results[i].(map[string]any)
		if r["status"] != w.status {
			t.Errorf("item %d: status %v, want %s (%v)", i, r["status"], w.status, r)
			continue
		}
		if w.code == "" {
			continue
		}
		ie, _ := r["error"].(map[string]any)
		if ie == nil || ie["code"] != w.code || !strings.Contains(ie["message"].(string), w.msg) {
			t.Errorf("item %d: error %v, want %s mentioning %q", i, ie, w.code, w.msg)
		}
	}
	if o["created"] != 1 || o["failed"] != 1 || o["unpublished"] != 1 {
		t.Errorf("counts created %v failed %v unpublished %v", o["created"], o["failed"], o["unpublished"])
	}

	// A chunk refused whole: 422, each item with the service's reason.
	o = out(e.run(t, "bulk_create_credentials", map[string]any{"credentials": []any{
		map[string]any{"recipient": member(4), "group_id": 999998},
		map[string]any{"recipient": member(5), "group_id": 999997},
	}}))
	for i, r := range o["results"].([]any) {
		r := r.(map[string]any)
		ie, _ := r["error"].(map[string]any)
		if r["status"] != itemFailed || ie == nil || ie["code"] != "credential_invalid" || !strings.Contains(ie["message"].(string), "group_id is invalid") {
			t.Errorf("422 item %d: %v", i, r)
		}
	}
}
