package testdb

import (
	"context"
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
