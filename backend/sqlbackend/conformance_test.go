package sqlbackend_test

import (
	"testing"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/conformance"
)

// TestConformance runs the conformance suite on each engine.
//
// SQLite gets a new temporary file (and so a full migration) per subtest.
// PostgreSQL and MariaDB get one fresh database per engine, created and
// migrated (on MariaDB: partitioned) by a first Open, and emptied with
// DELETE before each subtest's Open: a new server database per subtest
// costs about 0.4 s on PostgreSQL (CREATE and DROP DATABASE), over 40 s for
// the suite, against under 0.05 s for emptying three tables.
func TestConformance(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			conformance.Run(t, newBackendFunc(t, e))
		})
	}
}

// newBackendFunc returns the suite's newBackend for engine e.
func newBackendFunc(t *testing.T, e engine) func(t *testing.T, opts ...backend.Option) backend.Backend {
	if e.name == "sqlite" {
		return func(t *testing.T, opts ...backend.Option) backend.Backend {
			t.Helper()
			b, err := sqlbackend.Open(t.Context(), newURL(t, e), opts...)
			if err != nil {
				t.Fatalf("open sqlite: %v", err)
			}
			return b
		}
	}
	u := newURL(t, e)
	open(t, u).Close() // creates the schema
	admin := rawDB(t, e, u)
	return func(t *testing.T, opts ...backend.Option) backend.Backend {
		t.Helper()
		emptyTables(t, e, admin)
		b, err := sqlbackend.Open(t.Context(), u, append([]backend.Option{backend.WithoutMigration()}, opts...)...)
		if err != nil {
			t.Fatalf("open %s: %v", e.name, err)
		}
		return b
	}
}
