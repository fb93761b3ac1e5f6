package main

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/testdb"
)

// The rough edges of a newcomer's first hour (issue 14), one test each.

// oneLine fails unless s is exactly one line.
func wantOneLine(t *testing.T, what, s string) {
	t.Helper()
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
		t.Errorf("%s: want one line, got %q", what, s)
	}
}

func TestVersion(t *testing.T) {
	re := regexp.MustCompile(`^authdb \S+ \((revision [0-9a-f]{12}( of \S+)?(, modified)?|revision unknown \(built outside a git checkout or with -buildvcs=false\)), go1\.\d+\S*\)\n$`)
	v := cli(t, nil, "version")
	if v.code != 0 || !re.MatchString(v.stdout) {
		t.Errorf("authdb version: exit %d, %q; want %s", v.code, v.stdout, re)
	}
	if f := cli(t, nil, "--version"); f.code != 0 || f.stdout != v.stdout {
		t.Errorf("authdb --version: exit %d, %q; want %q", f.code, f.stdout, v.stdout)
	}
}

func TestDidYouMean(t *testing.T) {
	for typo, want := range map[string]string{"migrte": "migrate", "tokns": "tokens", "partition": "partitions", "clean": "cleanup", "verison": "version"} {
		r := cli(t, nil, typo)
		if r.code != exitUsage || !strings.Contains(r.stderr, `did you mean "`+want+`"?`) {
			t.Errorf("authdb %s: exit %d, stderr %q; want a suggestion of %s", typo, r.code, r.stderr, want)
		}
	}
	if r := cli(t, nil, "frobnicate"); strings.Contains(r.stderr, "did you mean") {
		t.Errorf("authdb frobnicate: %q suggests a command", r.stderr)
	}
}

// TestHelpFlags: every --help lists the flags as the usage writes them.
func TestHelpFlags(t *testing.T) {
	for _, args := range [][]string{{"migrate"}, {"cleanup"}, {"partitions"}, {"tokens", "list"}, {"tokens", "revoke"}, {"demo"}, {"version"}} {
		r := cli(t, nil, append(args, "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "\n  --db URL\n") || !strings.Contains(r.stdout, "\n  -v\n") ||
			regexp.MustCompile(`\n  -[a-z][a-z-]+`).MatchString(r.stdout) {
			t.Errorf("authdb %s --help: exit %d, flags not shown as --db URL and -v:\n%s", strings.Join(args, " "), r.code, r.stdout)
		}
	}
}

// TestVerbose: -v=false after the command turns the global -v off, and -v on
// an up-to-date SQLite file logs no change it leaves alone.
func TestVerbose(t *testing.T) {
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "v.db")
	ok(t, dbURL, "migrate")
	if r := cli(t, nil, "--db", dbURL, "-v", "migrate", "-v=false"); r.code != 0 || r.stderr != "" {
		t.Errorf("-v migrate -v=false: exit %d, stderr %q; want nothing", r.code, r.stderr)
	}
	r := cli(t, nil, "--db", dbURL, "-v", "migrate")
	if r.code != 0 || !strings.Contains(r.stderr, "level=DEBUG") || strings.Contains(r.stderr, "left as it is") ||
		strings.Contains(r.stderr, "->") {
		t.Errorf("-v migrate on an up-to-date file: exit %d, stderr %q; want debug lines, no change logged", r.code, r.stderr)
	}
}

// TestMissingSQLiteFile: the commands that do not create the schema never
// create a database: a mistyped path is an error and no file appears.
func TestMissingSQLiteFile(t *testing.T) {
	for _, args := range [][]string{{"tokens", "list"}, {"tokens", "revoke", "--sub", "bob"}, {"partitions", "--dry-run"}, {"partitions"}, {"cleanup"}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "typo.db")
		r := cli(t, nil, append([]string{"--db", "sqlite://" + path}, args...)...)
		want := "authdb " + strings.Join(args[:min(2, len(args))], " ")
		if args[0] != "tokens" {
			want = "authdb " + args[0]
		}
		want += ": sqlite " + path + ": no such file; this command never creates a database (check the path, or create it with 'authdb migrate')\n"
		if r.code != exitFailure || r.stderr != want {
			t.Errorf("%v on a missing file: exit %d, stderr %q; want %q", args, r.code, r.stderr, want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%v on a missing file left %d files in its folder", args, len(entries))
		}
	}
}

// TestURLWithoutDatabase: a server URL must name a database, on every engine.
func TestURLWithoutDatabase(t *testing.T) {
	for _, u := range []string{"postgres://u:s3cret@127.0.0.1:5432?sslmode=disable", "postgresql://127.0.0.1:5432/", "mysql://root@127.0.0.1:3306/", "mysql://root@127.0.0.1:3306"} {
		for _, cmd := range []string{"migrate", "tokens list", "cleanup"} {
			r := cli(t, nil, append([]string{"--db", u}, strings.Fields(cmd)...)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "the URL names no database") || strings.Contains(r.stderr, "s3cret") {
				t.Errorf("%s %s: exit %d, stderr %q; want the URL refused", u, cmd, r.code, r.stderr)
			}
			wantOneLine(t, u+" "+cmd, r.stderr)
		}
	}
}

// TestMissingDatabase: a URL naming a database the server does not have.
func TestMissingDatabase(t *testing.T) {
	for _, e := range []testdb.Engine{testdb.Postgres, testdb.MySQL} {
		t.Run(string(e), func(t *testing.T) {
			u, err := url.Parse(testdb.ServerURL(t, e))
			if err != nil {
				t.Fatal(err)
			}
			u.Path = "/authdb_no_such_db"
			r := cli(t, nil, "--db", u.String(), "tokens", "list")
			want := "the database does not exist; create it first (authdb creates tables, not databases)"
			if r.code != exitFailure || !strings.Contains(r.stderr, u.Host+"/authdb_no_such_db: "+want) {
				t.Errorf("tokens list on a missing database: exit %d, stderr %q; want %q", r.code, r.stderr, want)
			}
			wantOneLine(t, "stderr", r.stderr)
		})
	}
}

// TestTargetNamedOnce: an error names the database once, on one line, with
// a hint when the schema is missing.
func TestTargetNamedOnce(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine, dbURL string) {
		if engine == "sqlite" {
			ok(t, dbURL, "migrate")
			os.Remove(strings.TrimPrefix(dbURL, "sqlite://"))
			f, err := os.Create(strings.TrimPrefix(dbURL, "sqlite://")) // an empty database: no tables
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		r := cli(t, nil, "--db", dbURL, "tokens", "list")
		tgt := target(dbURL)
		host := tgt[strings.LastIndexByte(tgt, ' ')+1:]
		if i := strings.IndexByte(host, '/'); i > 0 && engine != "sqlite" {
			host = host[:i]
		}
		if r.code != exitFailure || strings.Count(r.stderr, host) != 1 || !strings.Contains(r.stderr, "run 'authdb migrate' first") ||
			strings.Contains(r.stderr, "authdb: ") {
			t.Errorf("tokens list on an empty database: exit %d, stderr %q; want %s once and the migrate hint", r.code, r.stderr, host)
		}
		wantOneLine(t, "stderr", r.stderr)
	})
}

// TestPartitionsMessages: partitions on an un-migrated MySQL database says to
// migrate; the backend's ErrUnsupported elsewhere says MySQL/MariaDB is needed.
func TestPartitionsMessages(t *testing.T) {
	dbURL := testdb.NewDatabase(t, testdb.MySQL)
	for _, args := range [][]string{{"partitions"}, {"partitions", "--dry-run"}} {
		r := cli(t, nil, append([]string{"--db", dbURL}, args...)...)
		want := "authdb partitions: " + target(dbURL) + " has no RefreshTokens table; run 'authdb migrate' first\n"
		if r.code != exitFailure || r.stderr != want {
			t.Errorf("%v on an empty database: exit %d, stderr %q; want %q", args, r.code, r.stderr, want)
		}
	}
	pg := testdb.NewDatabase(t, testdb.Postgres)
	b, err := authdb.Open(context.Background(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.(backend.PartitionMaintainer).PlanRefreshTokenPartitions(context.Background(), 6, 12)
	if !errors.Is(err, backend.ErrUnsupported) || !strings.Contains(err.Error(), "MySQL/MariaDB") {
		t.Errorf("PlanRefreshTokenPartitions on PostgreSQL: %v; want ErrUnsupported saying MySQL/MariaDB is needed", err)
	}
}

// TestMakeDemoSaysBuilding: make demo says what it does before the cold build.
func TestMakeDemoSaysBuilding(t *testing.T) {
	out, err := exec.Command("make", "-n", "-C", "../..", "demo").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `echo "building authdb`) || strings.Index(string(out), "building authdb") > strings.Index(string(out), "go build") {
		t.Errorf("make demo does not say it is building before it builds:\n%s", out)
	}
}
