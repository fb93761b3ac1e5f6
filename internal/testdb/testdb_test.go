package testdb

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestNewDatabaseIsEmptyAndReachable(t *testing.T) {
	for _, e := range []Engine{Postgres, MySQL} {
		t.Run(string(e), func(t *testing.T) {
			u := NewDatabase(t, e)
			db, err := AdminDB(u)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			q := "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
			if e == Postgres {
				q = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
			}
			var n int
			if err := db.QueryRowContext(context.Background(), q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("new database has %d tables, want 0", n)
			}
		})
	}
}

func TestDSNErrorHidesPassword(t *testing.T) {
	_, _, err := DSN("mysql://root:s3cret@127.0.0.1:33 06/test")
	if err == nil {
		t.Fatal("DSN of a malformed URL succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("DSN error %q contains the password", err)
	}
}

// TestMissingDatabaseMessage: a URL naming a database that does not exist
// gets one clear line naming it, not a driver error per test.
func TestMissingDatabaseMessage(t *testing.T) {
	for _, e := range []Engine{Postgres, MySQL} {
		t.Run(string(e), func(t *testing.T) {
			u, err := parseURL(ServerURL(t, e))
			if err != nil {
				t.Fatal(err)
			}
			u.Path = "/authdb_no_such_database"
			err = probe(u.String(), 10*time.Second)
			want := `database "authdb_no_such_database" does not exist on ` + u.Host
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("probe: %v, want %q...", err, want)
			}
		})
	}
}

// TestNoServerMessage: nothing listening gets a one-line reason.
func TestNoServerMessage(t *testing.T) {
	err := probe("postgres://postgres@127.0.0.1:1/test?sslmode=disable", 5*time.Second)
	if err == nil || err.Error() != "nothing listens on 127.0.0.1:1" {
		t.Fatalf("probe: %v, want nothing listens on 127.0.0.1:1", err)
	}
}
