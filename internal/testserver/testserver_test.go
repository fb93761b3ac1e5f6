package testserver

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/authdb/authdb/internal/testdb"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// TestKillRestart starts each engine with a non-default setting, writes a
// committed row, kills every server process with SIGKILL, restarts on the
// same data directory and finds the row again.
func TestKillRestart(t *testing.T) {
	for _, tc := range []struct {
		kind    Kind
		args    []string
		setting string
		want    string
	}{
		{Postgres, []string{"max_connections=12"}, "SHOW max_connections", "12"},
		{MariaDB, []string{"--max-connections=12", "--character-set-server=latin1"}, "SELECT CONCAT(@@max_connections, @@character_set_server)", "12latin1"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			s := Start(t, tc.kind, Config{Args: tc.args})
			db := s.AdminDB(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var got string
			if err := db.QueryRowContext(ctx, tc.setting).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("%s = %q, want %q", tc.setting, got, tc.want)
			}
			u := s.NewDatabase(t)
			d, err := testdb.AdminDB(u)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			for _, q := range []string{"CREATE TABLE k (v INT)", "INSERT INTO k VALUES (42)"} {
				if _, err := d.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			s.Kill9(t)
			if s.Running() {
				t.Fatal("running after Kill9")
			}
			if err := d.PingContext(ctx); err == nil {
				t.Fatal("ping succeeded on a killed server")
			}
			s.Restart(t)
			var v int
			if err := d.QueryRowContext(ctx, "SELECT v FROM k").Scan(&v); err != nil || v != 42 {
				t.Fatalf("after restart: v=%d err=%v", v, err)
			}
		})
	}
}

// TestShared returns one server per configuration.
func TestShared(t *testing.T) {
	a := Shared(t, MariaDB, Config{Args: []string{"--sql-mode="}})
	b := Shared(t, MariaDB, Config{Args: []string{"--sql-mode="}})
	if a != b {
		t.Fatal("two shared servers for one configuration")
	}
	var mode string
	if err := a.AdminDB(t).QueryRow("SELECT @@GLOBAL.sql_mode").Scan(&mode); err != nil || mode != "" {
		t.Fatalf("sql_mode %q, %v", mode, err)
	}
}

// TestTLS starts each engine with a certificate from a private CA and
// checks that a connection is encrypted.
func TestTLS(t *testing.T) {
	ca := NewCA(t)
	for _, kind := range []Kind{Postgres, MariaDB} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			s := Start(t, kind, Config{TLS: ca.ServerFiles(t)})
			db := s.AdminDB(t)
			q := "SHOW ssl"
			if kind == MariaDB {
				q = "SELECT @@have_ssl"
			}
			var got string
			if err := db.QueryRow(q).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != "on" && got != "YES" {
				t.Fatalf("%s = %q: TLS not on", q, got)
			}
		})
	}
}
