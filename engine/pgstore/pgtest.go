package pgstore

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDSN is the database tests use: MEMBERFLOW_TEST_POSTGRES, else the
// development machines' local server.
func TestDSN() string {
	if dsn := os.Getenv("MEMBERFLOW_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

var schemaSeq atomic.Int64

// TestSchema returns a fresh schema name on the test database, dropped
// when t ends. A test that cannot reach the database fails when CI is
// set (a skipped store test would hide a broken store) and is skipped,
// saying so, otherwise.
func TestSchema(t testing.TB) (dsn, schema string) {
	t.Helper()
	dsn = TestDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("postgres at MEMBERFLOW_TEST_POSTGRES cannot be reached or refused the connection, and CI is set: %s", redactDSNError(err))
		}
		t.Skipf("postgres unreachable (%s): set MEMBERFLOW_TEST_POSTGRES", redactDSNError(err))
	}
	defer conn.Close(ctx)
	schema = fmt.Sprintf("mf_test_%d_%d_%s", os.Getpid(), schemaSeq.Add(1), sanitize(t.Name()))
	if len(schema) > 60 {
		schema = schema[:60]
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})
	return dsn, schema
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
