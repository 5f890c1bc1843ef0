package engine

import "context"

// MetaStore keeps small named values beside the runner's state: what must
// survive a restart and be shared by every runner of the store (OAuth
// tokens, encrypted; the identity of each connection's account). A Store
// that implements it gets both; the engine finds it by type assertion.
//
// Every value has a version, incremented by each write; 0 means never
// written. Writes are compare-and-swap, so that several processes can
// agree on one value (the newest refresh token, the holder of a lock).
type MetaStore interface {
	// GetMeta returns the value under key and its version; nil and 0
	// when the key was never written, nil and the version when it was
	// deleted.
	GetMeta(ctx context.Context, key string) (value []byte, version int64, err error)
	// SwapMeta writes value (nil deletes) under key if the key's version
	// is still version, and reports whether it did. The new version is
	// version+1.
	SwapMeta(ctx context.Context, key string, version int64, value []byte) (bool, error)
	// ListMeta returns the keys with prefix that have a value, with their
	// values, in key order.
	ListMeta(ctx context.Context, prefix string) ([]MetaEntry, error)
}

// MetaEntry is one value of a MetaStore.
type MetaEntry struct {
	Key     string
	Value   []byte
	Version int64
}
