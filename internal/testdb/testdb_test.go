package testdb

import (
	"context"
	"strings"
	"testing"
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
