package engine

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// OAuth tokens are kept in the MetaStore, sealed with AES-256-GCM under a
// key derived (HKDF-SHA256) from the operator's store key and a random
// salt kept in the store. Each value is bound to its slot (the slot is the
// GCM additional data), so a sealed token cannot be moved to another
// connection. Slot names are an HMAC of the connection's OAuth settings:
// the store shows neither a token nor a client ID in plain text.
const (
	metaSalt      = "tokens/salt"
	metaKeyCheck  = "tokens/check"
	metaTokenSlot = "tokens/oauth2/"
	// MinStoreKey is the shortest store key accepted: HKDF does not
	// stretch a weak secret, so the key must be random (openssl rand
	// -base64 32).
	MinStoreKey = 32
	// tokenLockTTL bounds how long a process that died while refreshing
	// keeps the others waiting.
	tokenLockTTL = time.Minute
)

// ErrStoreKey is returned when the store key does not open the tokens
// the store holds. It matches connectors.ErrSavedTokenUnreadable: no
// retry opens them.
var ErrStoreKey error = storeKeyError{}

type storeKeyError struct{}

func (storeKeyError) Error() string {
	return "the store key does not open the OAuth tokens saved in this store: it is not the key they were saved with"
}
func (storeKeyError) Is(target error) bool { return target == connectors.ErrSavedTokenUnreadable }

// tokenVault seals and opens the tokens of one store.
type tokenVault struct {
	meta   MetaStore
	secret []byte
	owner  string // this process, in refresh locks

	once  sync.Once
	err   error
	aead  cipher.AEAD
	names []byte // HMAC key of slot names
}

func newTokenVault(meta MetaStore, secret []byte, owner string) *tokenVault {
	return &tokenVault{meta: meta, secret: secret, owner: owner + "/" + randomSuffix()}
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// open derives the keys once: it reads (or makes) the store's salt and
// checks the key against the value sealed when the first token was saved.
func (v *tokenVault) open(ctx context.Context) error {
	v.once.Do(func() { v.err = v.derive(ctx) })
	return v.err
}

func (v *tokenVault) derive(ctx context.Context) error {
	salt, saltVersion, err := v.meta.GetMeta(ctx, metaSalt)
	if err != nil {
		return err
	}
	if salt == nil {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return err
		}
		if _, err := v.meta.SwapMeta(ctx, metaSalt, saltVersion, fresh); err != nil {
			return err
		}
		// Another process may have won the race: read what is stored.
		if salt, _, err = v.meta.GetMeta(ctx, metaSalt); err != nil {
			return err
		}
		if salt == nil {
			return errors.New("the store's token salt was deleted while starting")
		}
	}
	key, err := hkdf.Key(sha256.New, v.secret, salt, "memberflow oauth tokens v1", 32)
	if err != nil {
		return err
	}
	if v.names, err = hkdf.Key(sha256.New, v.secret, salt, "memberflow token slots v1", 32); err != nil {
		return err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	if v.aead, err = cipher.NewGCM(block); err != nil {
		return err
	}
	const check = "memberflow store key check"
	sealed, version, err := v.meta.GetMeta(ctx, metaKeyCheck)
	if err != nil {
		return err
	}
	if sealed != nil {
		got, err := v.openValue(metaKeyCheck, sealed)
		if err != nil || string(got) != check {
			return ErrStoreKey
		}
		return nil
	}
	if _, err := v.meta.SwapMeta(ctx, metaKeyCheck, version, v.seal(metaKeyCheck, []byte(check))); err != nil {
		return err
	}
	// Two processes with different keys starting at once: one loses.
	sealed, _, err = v.meta.GetMeta(ctx, metaKeyCheck)
	if err != nil {
		return err
	}
	if got, err := v.openValue(metaKeyCheck, sealed); err != nil || string(got) != check {
		return ErrStoreKey
	}
	return nil
}

func (v *tokenVault) seal(slot string, plain []byte) []byte {
	nonce := make([]byte, v.aead.NonceSize())
	rand.Read(nonce)
	return v.aead.Seal(nonce, nonce, plain, []byte(slot))
}

func (v *tokenVault) openValue(slot string, sealed []byte) ([]byte, error) {
	n := v.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed value too short")
	}
	return v.aead.Open(nil, sealed[:n], sealed[n:], []byte(slot))
}

// tokens returns the TokenStore of a connection. The slot is named by
// the connection's OAuth settings, the configured refresh token included:
// connections with one OAuth grant share their tokens, and a refresh
// token the operator replaces (after authorising again) starts afresh.
func (v *tokenVault) tokens(baseURL string, au connectors.Auth) *connTokens {
	return &connTokens{v: v, settings: strings.Join([]string{baseURL, au.TokenURL, au.ClientID, au.RefreshToken, strings.Join(au.Scopes, " ")}, "\x00")}
}

// connTokens is the connectors.TokenStore of one connection.
type connTokens struct {
	v        *tokenVault
	settings string
	slotOnce sync.Once
	slotName string
}

var _ connectors.TokenStore = (*connTokens)(nil)

func (t *connTokens) slot(ctx context.Context) (string, error) {
	if err := t.v.open(ctx); err != nil {
		return "", err
	}
	t.slotOnce.Do(func() {
		m := hmac.New(sha256.New, t.v.names)
		m.Write([]byte(t.settings))
		t.slotName = metaTokenSlot + hex.EncodeToString(m.Sum(nil)[:16])
	})
	return t.slotName, nil
}

type sealedToken struct {
	Access  string    `json:"a"`
	Refresh string    `json:"r,omitempty"`
	Expiry  time.Time `json:"e,omitzero"`
}

// Load implements connectors.TokenStore.
func (t *connTokens) Load(ctx context.Context) (*connectors.OAuthToken, int64, error) {
	slot, err := t.slot(ctx)
	if err != nil {
		return nil, 0, err
	}
	return t.read(ctx, slot)
}

func (t *connTokens) read(ctx context.Context, slot string) (*connectors.OAuthToken, int64, error) {
	sealed, version, err := t.v.meta.GetMeta(ctx, slot)
	if err != nil || sealed == nil {
		return nil, version, err
	}
	plain, err := t.v.openValue(slot, sealed)
	if err != nil {
		return nil, 0, fmt.Errorf("opening the saved token: %w", ErrStoreKey)
	}
	var st sealedToken
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, 0, fmt.Errorf("decoding the saved token: %w", err)
	}
	return &connectors.OAuthToken{AccessToken: st.Access, RefreshToken: st.Refresh, Expiry: st.Expiry}, version, nil
}

type tokenLock struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

// Replace implements connectors.TokenStore. A lock in the store (a value
// swapped in with the holder and an end) lets one process at a time call
// the service; the others wait for the token it saves.
func (t *connTokens) Replace(ctx context.Context, seen int64, fetch func(context.Context, *connectors.OAuthToken) (*connectors.OAuthToken, error)) (*connectors.OAuthToken, int64, error) {
	slot, err := t.slot(ctx)
	if err != nil {
		return nil, 0, err
	}
	lockKey := slot + ".lock"
	for {
		saved, version, err := t.read(ctx, slot)
		if err != nil {
			return nil, 0, err
		}
		if version != seen && saved != nil {
			return saved, version, nil // another process has refreshed
		}
		held, lockVersion, err := t.v.meta.GetMeta(ctx, lockKey)
		if err != nil {
			return nil, 0, err
		}
		if held != nil {
			var l tokenLock
			if json.Unmarshal(held, &l) == nil && time.Now().Before(l.Until) && l.Owner != t.v.owner {
				if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
					return nil, 0, err
				}
				continue
			}
		}
		mine, _ := json.Marshal(tokenLock{Owner: t.v.owner, Until: time.Now().Add(tokenLockTTL)})
		ok, err := t.v.meta.SwapMeta(ctx, lockKey, lockVersion, mine)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			continue // another process took the lock first
		}
		tok, version, err := t.replaceLocked(ctx, slot, seen, fetch)
		// Released with a fresh context: a cancelled refresh must not
		// leave the others waiting for the lock to end.
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.v.meta.SwapMeta(rctx, lockKey, lockVersion+1, nil)
		cancel()
		return tok, version, err
	}
}

func (t *connTokens) replaceLocked(ctx context.Context, slot string, seen int64, fetch func(context.Context, *connectors.OAuthToken) (*connectors.OAuthToken, error)) (*connectors.OAuthToken, int64, error) {
	saved, version, err := t.read(ctx, slot)
	if err != nil {
		return nil, 0, err
	}
	if version != seen && saved != nil {
		return saved, version, nil // saved between our read and the lock
	}
	tok, err := fetch(ctx, saved)
	if err != nil {
		return nil, 0, err
	}
	plain, err := json.Marshal(sealedToken{Access: tok.AccessToken, Refresh: tok.RefreshToken, Expiry: tok.Expiry})
	if err != nil {
		return nil, 0, err
	}
	// The token is saved even if the caller gave up meanwhile: the
	// service has already rotated the refresh token.
	wctx := context.WithoutCancel(ctx)
	ok, err := t.v.meta.SwapMeta(wctx, slot, version, t.v.seal(slot, plain))
	if err != nil {
		return nil, 0, fmt.Errorf("saving the new token: %w", err)
	}
	if !ok {
		return nil, 0, errors.New("saving the new token: the saved token changed while this process held the refresh lock")
	}
	return tok, version + 1, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ForgetTokens deletes every OAuth token saved in the store, with its
// salt and key check: for a lost store key. The next run starts from the
// configured refresh tokens (which the service may have rotated away:
// authorise again). It returns how many values it deleted.
func ForgetTokens(ctx context.Context, meta MetaStore) (int, error) {
	entries, err := meta.ListMeta(ctx, "tokens/")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, en := range entries {
		ok, err := meta.SwapMeta(ctx, en.Key, en.Version, nil)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// TokenStores returns what gives a connection its TokenStore in meta,
// for the connections that commands open without an engine (reconcile,
// the console) or share with one: connections of one process and one
// store then refresh one token chain, whoever opens them. It returns nil
// for a connection that is not oauth2.
func TokenStores(meta MetaStore, storeKey []byte, owner string) (func(cfg connectors.ConnectionConfig) connectors.TokenStore, error) {
	if len(storeKey) < MinStoreKey {
		return nil, fmt.Errorf("the store key is %d bytes; it must be a random secret of at least %d (openssl rand -base64 32)", len(storeKey), MinStoreKey)
	}
	v := newTokenVault(meta, storeKey, owner)
	return func(cfg connectors.ConnectionConfig) connectors.TokenStore {
		if cfg.Auth.Type != connectors.AuthOAuth2 {
			return nil
		}
		return v.tokens(cfg.BaseURL, cfg.Auth)
	}, nil
}
