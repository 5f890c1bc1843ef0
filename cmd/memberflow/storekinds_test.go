package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	memberships "github.com/memberflow/memberflow/connectors/memberships/sandbox"
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

// TestReadersKeepTheTokenChainInEitherStore: reconcile and the console
// (readerTokens) refresh a rotating OAuth token through the store --store
// names, so the runner goes on with the token the reader saved.
func TestReadersKeepTheTokenChainInEitherStore(t *testing.T) {
	eachStoreKind(t, func(t *testing.T, st testStore) {
		sb := startOAuthSandbox(t)
		recipe := oauthRecipe(t, t.TempDir(), sb.URL)
		t.Setenv("MS_CLIENT_SECRET", memberships.DemoClientSecret)
		t.Setenv("MS_REFRESH_TOKEN", sb.authorise(t))
		t.Setenv("MEMBERFLOW_STORE_KEY", testStoreKey)
		run := []string{"run", "--once", "--store", st.store, recipe}
		if st.secrets != "" {
			run = append(run, "--secrets", st.secrets)
		}
		if code, out, errs := cli(t, run...); code != exitOK {
			t.Fatalf("first run: exit %d\n%s\n%s", code, out, errs)
		}

		var errb bytes.Buffer
		io := stdio{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &errb}
		_, conns, code := loadForReading(context.Background(), "reconcile", runOptions{paths: []string{recipe}}, newLogger("off", "text", &errb), io)
		if code != exitOK {
			t.Fatalf("loading: %d %s", code, errb.String())
		}
		closeTokens, code := readerTokens("reconcile", st.store, st.secrets, conns, io)
		if code != exitOK {
			t.Fatalf("readerTokens: %d %s", code, errb.String())
		}
		c := conns["read-members"]["members"]
		conn, err := c.Spec.Open(c.Config)
		if err != nil {
			t.Fatal(err)
		}
		before := len(sb.tokens())
		if _, err := conn.(connectors.Identifier).Identify(context.Background()); err != nil {
			t.Fatalf("a reader's call: %v", err)
		}
		closeTokens()
		if len(sb.tokens()) <= before {
			t.Fatal("the reader did not refresh: it proves nothing")
		}
		if code, out, errs := cli(t, run...); code != exitOK || strings.Contains(errs, "Unauthorized") {
			t.Fatalf("run after the reader: exit %d\n%s\n%s", code, out, errs)
		}
	})
}
