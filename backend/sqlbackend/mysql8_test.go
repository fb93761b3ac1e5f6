package sqlbackend

import (
	"context"
	"testing"

	"entgo.io/ent/dialect"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/internal/testdb"
)

// TestConformanceMySQL8Statements runs the conformance suite on MariaDB with
// the statements the backend uses on MySQL 8 (no RETURNING), which the
// test servers otherwise never exercise.
func TestConformanceMySQL8Statements(t *testing.T) {
	u := testdb.NewDatabase(t, testdb.MySQL)
	first, err := Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	admin, err := testdb.AdminDB(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	conformance.Run(t, func(t *testing.T, opts ...backend.Option) backend.Backend {
		for _, table := range []string{"DeviceFlows", "AuthorizationFlows", "RefreshTokens"} {
			if _, err := admin.Exec("DELETE FROM `" + table + "`"); err != nil {
				t.Fatal(err)
			}
		}
		b, err := Open(t.Context(), u, append([]backend.Option{backend.WithoutMigration()}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if !b.mariaDB {
			t.Fatal("the test server is not MariaDB")
		}
		b.mariaDB = false
		b.q = buildQueries(dialect.MySQL, false, b.opts.FamilyLifetime > 0, "utf8mb4")
		b.stmts.close()
		b.stmts = newStmtCache(b.db, b.q) // prepared as Open prepares its own
		b.pool = pool{b.stmts}
		return b
	})
}
