package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/memberflow/memberflow/engine/pgstore"
)

// testStore is how a test's commands name a store of one kind.
type testStore struct {
	// store and secrets are the --store and --secrets values of the
	// commands that read secrets (run, reconcile, console).
	store, secrets string
	// direct is the --store value for the others (runs, dlq).
	direct string
}

// eachStoreKind runs fn against a new SQLite store and a new Postgres
// schema whose DSN comes from a secret in the secrets file, as an
// operator keeps one with a password. Postgres is reached as
// engine/pgstore's tests reach it (MEMBERFLOW_TEST_POSTGRES; unreachable
// fails under CI, skips otherwise).
func eachStoreKind(t *testing.T, fn func(t *testing.T, st testStore)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "mf.db")
		fn(t, testStore{store: path, direct: path})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn, schema := pgstore.TestSchema(t)
		t.Setenv("MEMBERFLOW_PG_SCHEMA", schema)
		secrets := filepath.Join(t.TempDir(), "secrets.env")
		if err := os.WriteFile(secrets, []byte("MF_TEST_STORE="+dsn+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fn(t, testStore{store: "secret.MF_TEST_STORE", secrets: secrets, direct: dsn})
	})
}
