package engine_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// captureSpec is a connector whose Open keeps the TokenStore the engine
// hands an oauth2 connection.
func captureSpec(got *connectors.TokenStore) *connectors.Spec {
	return &connectors.Spec{Name: "oauthy", Open: func(cfg connectors.ConnectionConfig) (connectors.Conn, error) {
		*got = cfg.Tokens
		return struct{}{}, nil
	}}
}

func tokenStoreOf(t *testing.T, store engine.Store, key string, auth connectors.Auth) connectors.TokenStore {
	t.Helper()
	eng, err := engine.New(engine.Options{Store: store, StoreKey: []byte(key), Owner: "t"})
	if err != nil {
		t.Fatal(err)
	}
	var ts connectors.TokenStore
	if err := eng.AddConnectionForTest("c", engine.Connection{Spec: captureSpec(&ts), Config: connectors.ConnectionConfig{Auth: auth}}); err != nil {
		t.Fatal(err)
	}
	if ts == nil {
		t.Fatal("the engine gave the oauth2 connection no TokenStore")
	}
	return ts
}

const key1 = "k1-0123456789abcdef0123456789abcdef"

var rotating = connectors.Auth{Type: connectors.AuthOAuth2, ClientID: "app", ClientSecret: "s3cret-client", RefreshToken: "rt-configured-0001", TokenURL: "https://auth.example/token"}

func TestTokenVault(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	store, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a := tokenStoreOf(t, store, key1, rotating)

	if tok, v, err := a.Load(ctx); err != nil || tok != nil || v != 0 {
		t.Fatalf("Load on an empty store = %v, %d, %v", tok, v, err)
	}
	var calls atomic.Int32
	fetch := func(refresh string) func(context.Context, *connectors.OAuthToken) (*connectors.OAuthToken, error) {
		return func(_ context.Context, saved *connectors.OAuthToken) (*connectors.OAuthToken, error) {
			calls.Add(1)
			return &connectors.OAuthToken{AccessToken: "at-" + refresh, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour).Round(0)}, nil
		}
	}
	tok, v1, err := a.Replace(ctx, 0, fetch("rt-secret-0002"))
	if err != nil || tok.RefreshToken != "rt-secret-0002" || v1 == 0 {
		t.Fatalf("Replace = %+v, %d, %v", tok, v1, err)
	}

	t.Run("another process sees the newest and does not refresh again", func(t *testing.T) {
		b := tokenStoreOf(t, store, key1, rotating)
		got, v, err := b.Load(ctx)
		if err != nil || got.RefreshToken != "rt-secret-0002" || v != v1 {
			t.Fatalf("Load = %+v, %d, %v", got, v, err)
		}
		// A caller that saw an older version gets the saved token.
		before := calls.Load()
		got, v, err = b.Replace(ctx, 0, fetch("rt-never"))
		if err != nil || got.RefreshToken != "rt-secret-0002" || v != v1 || calls.Load() != before {
			t.Fatalf("Replace(seen old) = %+v, %d, %v; fetch called %d times", got, v, err, calls.Load()-before)
		}
	})

	t.Run("concurrent refreshes call the service once", func(t *testing.T) {
		before := calls.Load()
		var wg sync.WaitGroup
		results := make([]string, 8)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := tokenStoreOf(t, store, key1, rotating)
				got, _, err := s.Replace(ctx, v1, fetch("rt-secret-0003"))
				if err != nil {
					results[i] = err.Error()
					return
				}
				results[i] = got.RefreshToken
			}()
		}
		wg.Wait()
		for _, r := range results {
			if r != "rt-secret-0003" {
				t.Errorf("a refresher got %q", r)
			}
		}
		if n := calls.Load() - before; n != 1 {
			t.Errorf("the service was called %d times, want 1", n)
		}
	})

	t.Run("other OAuth settings have their own tokens", func(t *testing.T) {
		other := rotating
		other.RefreshToken = "rt-reauthorised-0009"
		got, v, err := tokenStoreOf(t, store, key1, other).Load(ctx)
		if err != nil || got != nil || v != 0 {
			t.Fatalf("Load = %+v, %d, %v: a re-authorised connection must start from its new token", got, v, err)
		}
	})

	t.Run("a wrong key is refused", func(t *testing.T) {
		_, _, err := tokenStoreOf(t, store, "k2-wrongwrongwrongwrongwrongwrong!", rotating).Load(ctx)
		if !errors.Is(err, engine.ErrStoreKey) {
			t.Fatalf("Load with another key = %v, want ErrStoreKey", err)
		}
	})

	t.Run("a sealed token moved to another slot does not open", func(t *testing.T) {
		entries, err := store.ListMeta(ctx, "tokens/oauth2/")
		if err != nil || len(entries) < 1 {
			t.Fatalf("ListMeta = %v, %v", entries, err)
		}
		other := rotating
		other.RefreshToken = "rt-another-0010"
		s := tokenStoreOf(t, store, key1, other)
		if _, _, err := s.Replace(ctx, 0, fetch("rt-x")); err != nil {
			t.Fatal(err)
		}
		all, _ := store.ListMeta(ctx, "tokens/oauth2/")
		var target engine.MetaEntry
		for _, e := range all {
			if e.Key != entries[0].Key && !strings.HasSuffix(e.Key, ".lock") {
				target = e
			}
		}
		if ok, err := store.SwapMeta(ctx, target.Key, target.Version, entries[0].Value); !ok || err != nil {
			t.Fatalf("swap: %v %v", ok, err)
		}
		if _, _, err := s.Load(ctx); !errors.Is(err, engine.ErrStoreKey) {
			t.Fatalf("Load of a moved token = %v, want it refused", err)
		}
	})

	t.Run("nothing is in plain text", func(t *testing.T) {
		store.Close()
		files, _ := filepath.Glob(path + "*")
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, s := range []string{"rt-secret-0002", "rt-secret-0003", "at-rt-secret", "rt-configured-0001", "s3cret-client", "app"} {
				if s != "app" && bytes.Contains(b, []byte(s)) {
					t.Errorf("%s holds %q", filepath.Base(f), s)
				}
			}
		}
		store, err = sqlitestore.Open(path, sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("forget-tokens lets another key start afresh", func(t *testing.T) {
		n, err := engine.ForgetTokens(ctx, store)
		if err != nil || n < 4 {
			t.Fatalf("ForgetTokens = %d, %v", n, err)
		}
		got, _, err := tokenStoreOf(t, store, "k2-wrongwrongwrongwrongwrongwrong!", rotating).Load(ctx)
		if err != nil || got != nil {
			t.Fatalf("Load after forgetting = %+v, %v", got, err)
		}
	})
}

func TestStoreKeyRules(t *testing.T) {
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "s.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := engine.New(engine.Options{Store: store, StoreKey: []byte("short")}); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("a short key: %v", err)
	}
	eng, err := engine.New(engine.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	var ts connectors.TokenStore
	err = eng.AddConnectionForTest("c", engine.Connection{Spec: captureSpec(&ts), Config: connectors.ConnectionConfig{Auth: rotating}})
	if err == nil || !strings.Contains(err.Error(), "store key") {
		t.Errorf("a rotating refresh token without a store key: %v, want a refusal", err)
	}
	cc := rotating
	cc.RefreshToken = ""
	if err := eng.AddConnectionForTest("cc", engine.Connection{Spec: captureSpec(&ts), Config: connectors.ConnectionConfig{Auth: cc}}); err != nil || ts != nil {
		t.Errorf("client credentials without a key: %v, tokens %v; want them kept in memory", err, ts)
	}
}
