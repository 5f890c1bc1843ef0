package memberships

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/memberships/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

type received struct {
	header http.Header
	body   []byte
}

// deliveries registers a receiver with the sandbox and returns what it
// gets.
func (f *fixture) deliveries() <-chan received {
	ch := make(chan received, 64)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- received{r.Header.Clone(), b}
	}))
	f.t.Cleanup(hook.Close)
	f.sb.RegisterWebhook(hook.URL)
	return ch
}

func next(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook delivered")
	}
	return received{}
}

func TestWebhookVerify(t *testing.T) {
	f := newFixture(t, 10, nil, nil)
	ch := f.deliveries()
	f.must("upsert_user", map[string]any{"email": "hook@example.org", "firstName": "Hoo", "lastName": "K"})
	d := next(t, ch)
	verify := f.spec.Trigger("user_created").Webhook.Verify
	tampered := append([]byte(nil), d.body...)
	tampered[len(tampered)-3] ^= 1
	other := newFixture(t, 0, nil, func(cfg *connectors.ConnectionConfig) {
		// A key from another seed: the signature must not verify.
		sb := sandbox.New(sandboxkit.Options{})
		sb.Seed(sandboxkit.Seed{Seed: 99})
		cfg.Webhook.PublicKey = sb.PublicKeyPEM()
	})
	noKey := newFixture(t, 0, nil, func(cfg *connectors.ConnectionConfig) { cfg.Webhook.PublicKey = "" })
	now := time.Now()
	cases := []struct {
		name   string
		conn   *Client
		header http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"good", f.conn, d.header, d.body, now, nil},
		{"tampered body", f.conn, d.header, tampered, now, connectors.ErrUnauthorized},
		{"no signature", f.conn, http.Header{}, d.body, now, connectors.ErrUnauthorized},
		{"not base64", f.conn, http.Header{"X-Wh-Signature": {"%%%"}}, d.body, now, connectors.ErrUnauthorized},
		{"another key", other.conn, d.header, d.body, now, connectors.ErrUnauthorized},
		{"stale", f.conn, d.header, d.body, now.Add(6 * time.Minute), connectors.ErrStale},
		{"from the future", f.conn, d.header, d.body, now.Add(-6 * time.Minute), connectors.ErrStale},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := verify(c.conn, c.header, c.body, c.now)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("verify: %v, want %v", err, c.want)
			}
		})
	}
	if err := verify(noKey.conn, d.header, d.body, now); err == nil {
		t.Error("verified without a public key")
	}
}

func TestWebhookParse(t *testing.T) {
	f := newFixture(t, 50, nil, nil)
	ch := f.deliveries()
	parse := func(trigger string, params map[string]any, body []byte) []connectors.Event {
		t.Helper()
		evs, err := f.spec.Trigger(trigger).Webhook.Parse(context.Background(), f.conn, body, connectors.WebhookRequest{Params: params, Prior: &memPrior{m: map[string]string{}}})
		if err != nil {
			t.Fatalf("%s: %v", trigger, err)
		}
		return evs
	}
	created := f.must("upsert_user", map[string]any{"email": "w@example.org", "firstName": "W", "lastName": "H", "membershipStatus": "active"})
	create := next(t, ch)
	id := out(created)["user"].(map[string]any)["id"].(string)
	evs := parse("user_created", nil, create.body)
	if len(evs) != 1 || evs[0].Subject != "user/"+id || evs[0].Fingerprint != created.Wrote[0].State {
		t.Fatalf("user_created: %+v", evs)
	}
	if again := parse("user_created", nil, create.body); again[0].ID != evs[0].ID {
		t.Errorf("a repeated delivery has another event ID: %s vs %s", again[0].ID, evs[0].ID)
	}
	if _, has := evs[0].Data["webhookId"]; has {
		t.Errorf("envelope fields left in the data: %v", evs[0].Data)
	}
	if got := parse("user_updated", nil, create.body); len(got) != 0 {
		t.Errorf("user_updated took a UserCreate: %v", got)
	}
	// A delivery for another location (signed alike: the service has one
	// key for all) or naming none is not this connection's.
	for _, loc := range []any{"someOtherLocation", nil} {
		var m map[string]any
		json.Unmarshal(create.body, &m)
		if loc == nil {
			delete(m, "locationId")
		} else {
			m["locationId"] = loc
		}
		foreign, _ := json.Marshal(m)
		if got := parse("user_created", nil, foreign); len(got) != 0 {
			t.Errorf("a delivery for location %v was taken: %v", loc, got)
		}
	}

	set := f.must("set_membership_status", map[string]any{"userId": id, "membershipStatus": "eligible"})
	update := next(t, ch)
	cases := []struct {
		name    string
		trigger string
		params  map[string]any
		want    int
	}{
		{"updated", "user_updated", nil, 1},
		{"status, no filter", "membership_status_changed", nil, 1},
		{"status from active to eligible", "membership_status_changed", map[string]any{"from": "active", "to": []any{"eligible", "lapsed"}}, 1},
		{"status to lapsed", "membership_status_changed", map[string]any{"to": "lapsed"}, 0},
		{"status from pending", "membership_status_changed", map[string]any{"from": "pending"}, 0},
		{"payment trigger ignores users", "payment_updated", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := parse(c.trigger, c.params, update.body)
			if len(got) != c.want {
				t.Fatalf("%d events, want %d", len(got), c.want)
			}
			if c.want == 1 && !strings.HasPrefix(got[0].ID, "user/"+id+"@") {
				t.Errorf("event ID %s, want the change's user/%s@<dateUpdated>, as the poll names it", got[0].ID, id)
			}
			if c.want == 1 && got[0].Fingerprint != set.Wrote[0].State {
				t.Errorf("fingerprint %s, the write's %s", got[0].Fingerprint, set.Wrote[0].State)
			}
			if c.trigger == "membership_status_changed" && c.want == 1 && (got[0].Data["from"] != "active" || got[0].Data["to"] != "eligible") {
				t.Errorf("data %v", got[0].Data)
			}
		})
	}

	if _, err := f.sb.Mutate(sandboxkit.Mutation{Kind: "payment", Count: 1}); err != nil {
		t.Fatal(err)
	}
	pay := next(t, ch)
	var m map[string]any
	_ = json.Unmarshal(pay.body, &m)
	pe := parse("payment_created", map[string]any{"status": "paid"}, pay.body)
	// The change is named as the poll names it (a hybrid trigger runs it once).
	if len(pe) != 1 || pe[0].ID != "payment/"+m["id"].(string)+"/created" || pe[0].Subject != "payment/"+m["id"].(string) {
		t.Errorf("payment_created: %+v", pe)
	}
	if got := parse("payment_created", map[string]any{"status": "refunded"}, pay.body); len(got) != 0 {
		t.Errorf("status filter let %v through", got)
	}
}
