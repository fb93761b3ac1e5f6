package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authdb/authdb/internal/testdb"
)

// TestWithoutCgo builds the CLI with CGO_ENABLED=0 and runs it on
// PostgreSQL and MariaDB; on a sqlite:// URL it says that SQLite needs cgo.
func TestWithoutCgo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "authdb-nocgo")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	run := func(t *testing.T, args ...string) result {
		t.Helper()
		saved := binary
		binary = bin
		defer func() { binary = saved }()
		return cli(t, nil, args...)
	}
	for _, e := range []testdb.Engine{testdb.Postgres, testdb.MySQL} {
		t.Run(string(e), func(t *testing.T) {
			dbURL := testdb.NewDatabase(t, e)
			for _, args := range [][]string{{"migrate"}, {"demo"}, {"tokens", "list"}, {"cleanup"}} {
				r := run(t, append([]string{"--db", dbURL}, args...)...)
				if r.code != 0 {
					t.Fatalf("authdb %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
				}
			}
		})
	}
	t.Run("sqlite", func(t *testing.T) {
		r := run(t, "--db", "sqlite://x.db", "migrate")
		want := "authdb migrate: open sqlite://x.db: unsupported: SQLite needs cgo, and this binary was built without it (CGO_ENABLED=0): rebuild with CGO_ENABLED=1 and a C compiler, or use PostgreSQL or MySQL/MariaDB\n"
		if r.code == 0 || r.stderr != want {
			t.Errorf("migrate on SQLite without cgo: exit %d, stderr %q, want %q", r.code, r.stderr, want)
		}
	})
}
