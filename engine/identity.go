package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// metaIdentity prefixes the recorded identity of each connection, by the
// recipes' name for it.
const metaIdentity = "identity/"

// ConnectionIdentity is what a store records of one connection: the
// account its service reported on first use.
type ConnectionIdentity struct {
	Connection string `json:"connection"`
	Connector  string `json:"connector"`
	connectors.Identity
}

func (c ConnectionIdentity) String() string {
	s := c.Connector + " at " + c.BaseURL
	if c.Account != "" {
		s += ", " + c.Account
	}
	if c.Name != "" {
		s += " (" + c.Name + ")"
	}
	return s
}

// sameAccount compares what identifies the account; names may change.
func (c ConnectionIdentity) sameAccount(o ConnectionIdentity) bool {
	return c.Connector == o.Connector && strings.TrimRight(c.BaseURL, "/") == strings.TrimRight(o.BaseURL, "/") && c.Account == o.Account
}

// ErrIdentityChanged matches an *IdentityError.
var ErrIdentityChanged = errors.New("a connection reaches another account than the one this store was made with")

// IdentityError reports a connection that reaches another account than
// the one the store recorded: the store's cursors, per-subject memory and
// echoes are about the other account's data, and would silently skip
// records of this one.
type IdentityError struct {
	Stored, Current ConnectionIdentity
}

func (e *IdentityError) Error() string {
	return fmt.Sprintf("connection %q reaches %s, but this store was made with %s", e.Current.Connection, e.Current, e.Stored)
}

// Is makes errors.Is(err, ErrIdentityChanged) true.
func (e *IdentityError) Is(target error) bool { return target == ErrIdentityChanged }

// CheckIdentities asks each connection's service which account it
// reaches (connectors.Identifier), records it in the store on first use,
// and returns an error joining one *IdentityError per connection whose
// account differs from the record. Call it after Add and before Run or
// RunOnce; without a MetaStore it does nothing. Transient failures are
// retried under the default retry policy.
//
// It first opens the store's saved OAuth tokens, when a connection uses
// them, so that a wrong store key (ErrStoreKey) stops the runner before
// any call.
func (e *Engine) CheckIdentities(ctx context.Context) error {
	if e.meta == nil {
		return nil
	}
	e.mu.Lock()
	vaults := slices.Clone(e.vaultsUsed)
	e.mu.Unlock()
	for _, v := range vaults {
		if err := v.open(ctx); err != nil {
			return fmt.Errorf("opening the OAuth tokens saved in the store: %w", err)
		}
	}
	e.mu.Lock()
	byName := map[string][]*openConn{}
	for _, oc := range e.conns {
		byName[oc.name] = append(byName[oc.name], oc)
	}
	e.mu.Unlock()
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var asked []*openConn
	for _, name := range names {
		for _, oc := range byName[name] {
			// Connections that cannot say which account they reach (files,
			// notifications, the engine's own events) hold no synced data
			// to tell apart.
			if _, ok := oc.conn.(connectors.Identifier); ok {
				asked = append(asked, oc)
			}
		}
	}
	// All at once: a service that is down is retried for up to the retry
	// policy's backoffs, and several down must not add theirs up.
	ids := make([]ConnectionIdentity, len(asked))
	errs := make([]error, len(asked))
	var wg sync.WaitGroup
	for i, oc := range asked {
		wg.Go(func() {
			if ids[i], errs[i] = e.identify(ctx, oc); errs[i] != nil {
				errs[i] = fmt.Errorf("connection %q (%s): asking the service which account it reaches: %w", oc.name, oc.connector, errs[i])
			}
		})
	}
	wg.Wait()
	for i := range asked {
		if errs[i] == nil {
			errs[i] = e.recordIdentity(ctx, ids[i])
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) identify(ctx context.Context, oc *openConn) (ConnectionIdentity, error) {
	id := ConnectionIdentity{Connection: oc.name, Connector: oc.connector, Identity: connectors.Identity{BaseURL: oc.baseURL}}
	if who, ok := oc.conn.(connectors.Identifier); ok {
		backoff := e.opts.Retry.Backoff
		for attempt := 1; ; attempt++ {
			got, err := who.Identify(ctx)
			if err == nil {
				id.Identity = got
				break
			}
			if !connectors.Retryable(err) || attempt >= e.opts.Retry.Attempts {
				return id, err
			}
			// Said at each attempt: until the last one fails, nothing
			// else tells the operator why the runner has not started.
			wait := jitter(&backoff, e.opts.Retry.MaxBackoff)
			e.log.Warn("asking the service which account it reaches failed; retrying", "connection", oc.name,
				"attempt", attempt, "of", e.opts.Retry.Attempts, "in", wait.Round(time.Millisecond), "error", e.redact.String(err.Error()))
			if err := e.sleep(ctx, wait); err != nil {
				return id, err
			}
		}
	}
	if oc.place != "" {
		// A service whose address changes at every start (the in-process
		// sandbox) is recorded by a stable name.
		id.BaseURL = oc.place
	}
	return id, nil
}

func (e *Engine) recordIdentity(ctx context.Context, cur ConnectionIdentity) error {
	key := metaIdentity + cur.Connection
	for {
		raw, version, err := e.meta.GetMeta(ctx, key)
		if err != nil {
			return err
		}
		if raw != nil {
			var stored ConnectionIdentity
			if err := json.Unmarshal(raw, &stored); err != nil {
				return fmt.Errorf("connection %q: reading the identity recorded in the store: %w", cur.Connection, err)
			}
			if !stored.sameAccount(cur) {
				return &IdentityError{Stored: stored, Current: cur}
			}
			return nil
		}
		b, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		ok, err := e.meta.SwapMeta(ctx, key, version, b)
		if err != nil {
			return fmt.Errorf("connection %q: recording its identity: %w", cur.Connection, err)
		}
		if ok {
			e.log.Info("recorded the account of a connection in the store", "connection", cur.Connection, "identity", cur.String())
			return nil
		}
		// Another runner recorded one first: compare with it.
	}
}

// Identities returns the connection identities recorded in a store.
func Identities(ctx context.Context, meta MetaStore) ([]ConnectionIdentity, error) {
	entries, err := meta.ListMeta(ctx, metaIdentity)
	if err != nil {
		return nil, err
	}
	out := make([]ConnectionIdentity, 0, len(entries))
	for _, en := range entries {
		var id ConnectionIdentity
		if err := json.Unmarshal(en.Value, &id); err != nil {
			return nil, fmt.Errorf("reading %s: %w", en.Key, err)
		}
		out = append(out, id)
	}
	return out, nil
}

// Rebind forgets the recorded identity of the named connections (all
// when none is named), so that the next run records the accounts they
// reach then. It returns the identities it forgot.
func Rebind(ctx context.Context, meta MetaStore, connections ...string) ([]ConnectionIdentity, error) {
	entries, err := meta.ListMeta(ctx, metaIdentity)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, c := range connections {
		want[c] = true
	}
	var forgot []ConnectionIdentity
	for _, en := range entries {
		name := strings.TrimPrefix(en.Key, metaIdentity)
		if len(want) > 0 && !want[name] {
			continue
		}
		delete(want, name)
		var id ConnectionIdentity
		json.Unmarshal(en.Value, &id)
		if _, err := meta.SwapMeta(ctx, en.Key, en.Version, nil); err != nil {
			return forgot, err
		}
		forgot = append(forgot, id)
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for n := range want {
			missing = append(missing, n)
		}
		sort.Strings(missing)
		return forgot, fmt.Errorf("no identity is recorded for connection(s) %s", strings.Join(missing, ", "))
	}
	return forgot, nil
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
