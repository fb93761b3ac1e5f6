package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/testdb"
	"github.com/authdb/authdb/partition"
)

// binary is the authdb command built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "authdb-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "authdb")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build authdb:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is the outcome of one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary with args in a fresh temporary folder, without
// AUTHDB_URL unless env sets it.
func cli(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envURL+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run authdb %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs the binary on dbURL and fails the test unless it exits 0.
func ok(t *testing.T, dbURL string, args ...string) string {
	t.Helper()
	r := cli(t, nil, append([]string{"--db", dbURL}, args...)...)
	if r.code != 0 {
		t.Fatalf("authdb %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}

// engines are the databases the CLI is tried on; each call makes a fresh,
// empty database.
var engines = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "authdb.db") }},
	{"postgres", func(t *testing.T) string { return testdb.NewDatabase(t, testdb.Postgres) }},
	{"mysql", func(t *testing.T) string { return testdb.NewDatabase(t, testdb.MySQL) }},
}

func forEachEngine(t *testing.T, test func(t *testing.T, engine, dbURL string)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, e.name, e.url(t)) })
	}
}

// open opens dbURL in the test process (creating the schema), closed at the end.
func open(t *testing.T, dbURL string, opts ...backend.Option) backend.Backend {
	t.Helper()
	b, err := authdb.Open(context.Background(), dbURL, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", backend.Redact(dbURL), err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// jtiAt returns a random UUIDv7 with the timestamp of at.
func jtiAt(t *testing.T, at time.Time) uuid.UUID {
	t.Helper()
	id := backend.LowestUUIDv7(at)
	var r [10]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	id[6] = 0x70 | r[0]&0x0f
	id[7] = r[1]
	id[8] = 0x80 | r[2]&0x3f
	copy(id[9:], r[3:])
	return id
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"migrate", "--help"}, {"cleanup", "--help"}, {"partitions", "--help"}, {"demo", "--help"},
		{"tokens", "--help"}, {"tokens", "list", "--help"}, {"tokens", "revoke", "-h"},
		{"help", "cleanup"},
	} {
		r := cli(t, nil, args...)
		if r.code != 0 || strings.Count(r.stdout, "Usage") != 1 || r.stderr != "" {
			t.Errorf("authdb %s: exit %d, stdout %q, stderr %q; want usage on stdout, exit 0",
				strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	r := cli(t, nil, "partitions", "--help")
	wantContains(t, "partitions --help", r.stdout, "must outlive the longest refresh-token", "revoked", "--dry-run")
	r = cli(t, nil, "cleanup", "--help")
	wantContains(t, "cleanup --help", r.stdout, "ceil(retention / 28 days)", "--refresh-retention")
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"--nope", "migrate"}, {"cleanup", "--device-retention", "soon"},
		{"cleanup", "--device-retention", "-5m"}, {"tokens"}, {"tokens", "drop"},
		{"--db", "memory://", "tokens", "revoke"},
		{"--db", "memory://", "tokens", "revoke", "--sub", "a", "--jti", uuid.NewString()},
		{"--db", "memory://", "tokens", "revoke", "--jti", "not-a-uuid"},
		{"--db", "memory://", "tokens", "revoke", "--family", "not-a-uuid"},
		{"--db", "memory://", "tokens", "revoke", "--family", uuid.NewString(), "--sub", "a"},
		{"--db", "memory://", "partitions", "--retention-months", "0"},
		{"--db", "memory://", "migrate", "extra"},
	} {
		r := cli(t, nil, args...)
		if r.code != exitUsage || r.stderr == "" {
			t.Errorf("authdb %s: exit %d, stderr %q; want exit 2 with a message", strings.Join(args, " "), r.code, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("authdb %s: usage error wrote to stdout: %q", strings.Join(args, " "), r.stdout)
		}
	}
}

func TestBadURL(t *testing.T) {
	for _, c := range []struct {
		url   string
		wants []string
	}{
		{"postgres://u:s3cret@127.0.0.1:1/db?sslmode=disable", []string{"postgres", "127.0.0.1:1"}},
		{"mysql://u:s3cret@127.0.0.1:1/db", []string{"mysql", "127.0.0.1:1"}},
		{"foo://u:s3cret@somewhere/db", []string{`unknown scheme "foo"`, "somewhere"}},
		{"u:s3cret@somewhere/db", []string{"no scheme"}},
	} {
		for _, cmd := range []string{"migrate", "tokens list", "cleanup", "demo"} {
			args := append([]string{"--db", c.url}, strings.Fields(cmd)...)
			r := cli(t, nil, args...)
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if r.code == 0 || len(lines) != 1 || strings.Contains(r.stderr+r.stdout, "s3cret") {
				t.Errorf("authdb --db %s %s: exit %d, stderr %q; want one line without the password, non-zero exit",
					c.url, cmd, r.code, r.stderr)
				continue
			}
			wantContains(t, "stderr", r.stderr, c.wants...)
		}
	}
}

func TestDefaultURL(t *testing.T) {
	// No --db, no AUTHDB_URL: sqlite://authdb.db in the current folder.
	dir := t.TempDir()
	cmd := exec.Command(binary, "migrate")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("authdb migrate: %v\n%s", err, out)
	}
	wantContains(t, "migrate", string(out), "sqlite authdb.db")
	if _, err := os.Stat(filepath.Join(dir, "authdb.db")); err != nil {
		t.Fatalf("no authdb.db in the current folder: %v", err)
	}
	// AUTHDB_URL is used when --db is not given, and --db wins over it.
	file := filepath.Join(t.TempDir(), "env.db")
	r := cli(t, []string{envURL + "=sqlite://" + file}, "migrate")
	wantContains(t, "migrate with AUTHDB_URL", r.stdout, "sqlite "+file)
	r = cli(t, []string{envURL + "=sqlite://" + file}, "--db", "memory://", "migrate")
	wantContains(t, "migrate with --db", r.stdout, "memory store")
}

func TestMigrate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine, dbURL string) {
		out := ok(t, dbURL, "migrate")
		wantContains(t, "first migrate", out, "created tables DeviceFlows, AuthorizationFlows, RefreshTokens")
		if engine == "mysql" {
			wantContains(t, "first migrate", out, "RefreshTokens partitions: created 24 monthly partitions")
		}
		out = ok(t, dbURL, "migrate") // --db after the command works too
		wantContains(t, "second migrate", out, "schema up to date")
		if engine == "mysql" {
			wantContains(t, "second migrate", out, "RefreshTokens partitions: has 24 monthly partitions")
		}
		// The schema works: a token written through the library is listed.
		b := open(t, dbURL, backend.WithoutMigration())
		jti := jtiAt(t, time.Now())
		if err := b.InsertRefreshToken(context.Background(), jti, "alice", "openid"); err != nil {
			t.Fatal(err)
		}
		wantContains(t, "tokens list", ok(t, dbURL, "tokens", "list"), jti.String())
	})
}

// TestMigrateDiracXTable: on MySQL, a RefreshTokens table that existed
// before (as DiracX creates it, unpartitioned) is partitioned by migrate if
// it is empty, and left alone with the statement to run if it is not.
func TestMigrateDiracXTable(t *testing.T) {
	for _, rows := range []int{0, 1} {
		t.Run(fmt.Sprintf("rows=%d", rows), func(t *testing.T) {
			dbURL := testdb.NewDatabase(t, testdb.MySQL)
			admin, err := testdb.AdminDB(dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			stmts := []string{"CREATE TABLE `RefreshTokens` (`JTI` CHAR(32) NOT NULL, " +
				"`Status` VARCHAR(16) NOT NULL DEFAULT 'CREATED', `Scope` VARCHAR(1024) NOT NULL, " +
				"`Sub` VARCHAR(256) NOT NULL, PRIMARY KEY (`JTI`))"}
			if rows > 0 {
				stmts = append(stmts, fmt.Sprintf("INSERT INTO RefreshTokens (JTI, Scope, Sub) VALUES ('%s', 'openid', 'dave')",
					backend.HexJTI(jtiAt(t, time.Now()))))
			}
			for _, stmt := range stmts {
				if _, err := admin.Exec(stmt); err != nil {
					t.Fatal(err)
				}
			}
			r := cli(t, nil, "--db", dbURL, "migrate")
			if r.code != 0 {
				t.Fatalf("migrate: exit %d, stderr %s", r.code, r.stderr)
			}
			wantContains(t, "migrate", r.stdout, "created tables DeviceFlows, AuthorizationFlows on")
			if rows == 0 {
				wantContains(t, "migrate", r.stdout, "RefreshTokens partitions: created 24 monthly partitions")
				ok(t, dbURL, "partitions", "--dry-run")
				return
			}
			wantContains(t, "migrate", r.stdout, "RefreshTokens is not partitioned: it holds rows, so it was left alone")
			wantContains(t, "migrate warning", r.stderr, "PARTITION BY RANGE COLUMNS")
			r = cli(t, nil, "--db", dbURL, "partitions")
			if r.code != exitUnsupported || !strings.Contains(r.stderr, "RefreshTokens is not partitioned") ||
				!strings.Contains(r.stderr, "'authdb migrate' prints the ALTER TABLE statement") || len(r.stderr) > 300 {
				t.Fatalf("partitions on an unpartitioned table: exit %d, stderr %q", r.code, r.stderr)
			}
			// cleanup still deletes by range.
			wantContains(t, "cleanup", ok(t, dbURL, "cleanup", "--refresh-retention", "1h"), "refresh tokens older than 1h: 0 deleted")
		})
	}
}

func TestDemo(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine, dbURL string) {
		for run := 1; run <= 2; run++ { // a second run on the same database works too
			out := ok(t, dbURL, "demo")
			wantContains(t, fmt.Sprintf("demo run %d", run), out,
				"== 1. Device flow", "ErrAuthorizationPending", "status=READY", "status=DONE",
				"== 2. Authorization code with PKCE S256", "method=S256",
				"== 3. Refresh-token rotation", "old is now REVOKED",
				"== 4. Replay", "ErrTokenReused", "live tokens of alice: 0", "demo complete")
		}
	})
}

func TestTokens(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine, dbURL string) {
		ctx := context.Background()
		b := open(t, dbURL)
		now := time.Now()
		a1, a2, b1 := jtiAt(t, now.Add(-2*time.Second)), jtiAt(t, now.Add(-time.Second)), jtiAt(t, now)
		for _, tok := range []struct {
			jti uuid.UUID
			sub string
		}{{a1, "alice"}, {a2, "alice"}, {b1, "bob"}} {
			if err := b.InsertRefreshToken(ctx, tok.jti, tok.sub, "openid profile"); err != nil {
				t.Fatal(err)
			}
		}

		out := ok(t, dbURL, "tokens", "list")
		wantContains(t, "tokens list", out, "JTI", "STATUS", "FAMILY", a1.String(), a2.String(), b1.String())
		var listed []tokenJSON
		if err := json.Unmarshal([]byte(ok(t, dbURL, "tokens", "list", "--sub", "alice", "--json")), &listed); err != nil {
			t.Fatalf("tokens list --json: %v", err)
		}
		if len(listed) != 2 || listed[0].JTI != a1.String() || listed[1].JTI != a2.String() ||
			listed[0].Sub != "alice" || listed[0].Status != "CREATED" || listed[0].Scope != "openid profile" {
			t.Fatalf("tokens list --sub alice --json = %+v", listed)
		}
		if listed[0].Family != a1.String() || listed[0].ReplacedBy != "" {
			t.Errorf("family %q, replaced_by %q; want %s (its own family's first token) and none", listed[0].Family, listed[0].ReplacedBy, a1)
		}
		if d := listed[0].Created.Sub(backend.UUIDv7Time(a1)); d != 0 {
			t.Errorf("created = %v, want the JTI's time %v", listed[0].Created, backend.UUIDv7Time(a1))
		}

		wantContains(t, "revoke --jti", ok(t, dbURL, "tokens", "revoke", "--jti", a1.String()), "revoked refresh token "+a1.String())
		wantContains(t, "revoke --jti again", ok(t, dbURL, "tokens", "revoke", "--jti", a1.String()), "already revoked")
		if tok, err := b.GetRefreshToken(ctx, a1); err != nil || tok.Status != backend.TokenRevoked {
			t.Fatalf("after revoke: %+v, %v", tok, err)
		}
		wantContains(t, "revoke --sub", ok(t, dbURL, "tokens", "revoke", "--sub", "alice"), `revoked 1 refresh token(s) of "alice"`)
		wantContains(t, "list --sub alice", ok(t, dbURL, "tokens", "list", "--sub", "alice"), "no refresh tokens")
		if out := ok(t, dbURL, "tokens", "list", "--sub", "alice", "--json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("tokens list --json with no tokens = %q, want []", out)
		}
		wantContains(t, "list --sub bob", ok(t, dbURL, "tokens", "list", "--sub", "bob"), b1.String())

		// One session of bob's: b1 rotated into b2; another, b3.
		b2, b3 := jtiAt(t, now), jtiAt(t, now)
		if _, err := b.RotateRefreshToken(ctx, b1, b2); err != nil {
			t.Fatal(err)
		}
		if err := b.InsertRefreshToken(ctx, b3, "bob", "openid"); err != nil {
			t.Fatal(err)
		}
		wantContains(t, "list (rotated)", ok(t, dbURL, "tokens", "list", "--sub", "bob", "--json"),
			`"family": "`+b1.String()+`"`)
		wantContains(t, "revoke --family", ok(t, dbURL, "tokens", "revoke", "--family", b1.String()),
			"revoked 1 refresh token(s) of the family of "+b1.String())
		if tok, err := b.GetRefreshToken(ctx, b2); err != nil || tok.Status != backend.TokenRevoked {
			t.Errorf("after revoke --family: %+v, %v", tok, err)
		}
		wantContains(t, "list --sub bob after --family", ok(t, dbURL, "tokens", "list", "--sub", "bob"), b3.String())
		if r := cli(t, nil, "--db", dbURL, "tokens", "revoke", "--family", jtiAt(t, now).String()); r.code != exitFailure ||
			!strings.Contains(r.stderr, "no refresh token") {
			t.Errorf("revoke --family of an unknown JTI: exit %d, stderr %q", r.code, r.stderr)
		}

		r := cli(t, nil, "--db", dbURL, "tokens", "revoke", "--jti", jtiAt(t, now).String())
		if r.code != exitFailure || !strings.Contains(r.stderr, "no refresh token") {
			t.Errorf("revoke of an unknown JTI: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func TestCleanup(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine, dbURL string) {
		ctx := context.Background()
		now := time.Now()
		// Rows made two hours and two days ago, through a backend whose clock says so.
		past := open(t, dbURL, backend.WithClock(func() time.Time { return now.Add(-2 * time.Hour) }))
		if _, _, err := past.InsertDeviceFlow(ctx, "old-device", "openid"); err != nil {
			t.Fatal(err)
		}
		if _, err := past.InsertAuthorizationFlow(ctx, "old-web", "openid", "c", "S256", "http://x/cb"); err != nil {
			t.Fatal(err)
		}
		b := open(t, dbURL)
		if _, _, err := b.InsertDeviceFlow(ctx, "new-device", "openid"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.InsertAuthorizationFlow(ctx, "new-web", "openid", "c", "S256", "http://x/cb"); err != nil {
			t.Fatal(err)
		}
		oldJTI, newJTI := jtiAt(t, now.Add(-48*time.Hour)), jtiAt(t, now)
		for _, jti := range []uuid.UUID{oldJTI, newJTI} {
			if err := b.InsertRefreshToken(ctx, jti, "alice", "openid"); err != nil {
				t.Fatal(err)
			}
		}

		// Without --refresh-retention, tokens are kept.
		out := ok(t, dbURL, "cleanup")
		wantContains(t, "cleanup", out, "device flows older than 1h: 1 deleted",
			"authorization flows older than 1h: 1 deleted", "refresh tokens: skipped")
		out = ok(t, dbURL, "cleanup", "--device-retention", "0", "--refresh-retention", "1d")
		wantContains(t, "cleanup --refresh-retention 1d", out, "device flows: skipped",
			"authorization flows older than 1h: 0 deleted", "refresh tokens older than 1d: 1 deleted")
		if engine == "mysql" {
			wantContains(t, "cleanup on mysql", out, "refresh-token partitions older than 1 months: dropped 0")
		}
		toks, err := b.GetUserRefreshTokens(ctx, "")
		if err != nil || len(toks) != 1 || toks[0].JTI != newJTI {
			t.Fatalf("tokens after cleanup: %+v, %v; want only the new one", toks, err)
		}
	})
}

// partitionCount reads "N monthly partitions" from the output of partitions.
func partitionCount(t *testing.T, out string) int {
	t.Helper()
	m := regexp.MustCompile(`: (\d+) monthly partitions \+ p_future`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no partition count in:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestPartitions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine, dbURL string) {
		ok(t, dbURL, "migrate")
		if engine != "mysql" {
			r := cli(t, nil, "--db", dbURL, "partitions")
			if r.code != exitUnsupported || !strings.Contains(r.stderr, "MySQL/MariaDB") || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("partitions on %s: exit %d, stderr %q; want exit 2 and one clear line", engine, r.code, r.stderr)
			}
			return
		}
		now := time.Now().UTC()
		cur := partition.MonthStart(now)

		out := ok(t, dbURL, "partitions", "--dry-run", "--months-ahead", "30")
		wantContains(t, "dry run", out, "dry run: nothing changed", partition.Name(cur),
			partition.Name(partition.AddMonths(cur, 30)))
		before := partitionCount(t, out)
		if before != 24 {
			t.Fatalf("after migrate: %d partitions, want 24", before)
		}
		if again := partitionCount(t, ok(t, dbURL, "partitions", "--dry-run", "--months-ahead", "30")); again != before {
			t.Fatalf("--dry-run changed the partitions: %d, then %d", before, again)
		}

		out = ok(t, dbURL, "partitions", "--months-ahead", "30", "--pause", "0")
		wantContains(t, "apply", out, "applied: added 7, dropped 0")
		out = ok(t, dbURL, "partitions", "--months-ahead", "30")
		if n := partitionCount(t, out); n != 31 {
			t.Fatalf("after apply: %d partitions, want 31", n)
		}
		wantContains(t, "apply again", out, "nothing to do")

		// An old month (split off the first partition by hand, with a token in
		// it) is dropped by cleanup when all its tokens are past the retention.
		old := time.Date(now.Year()-1, now.Month(), 1, 0, 0, 0, 0, time.UTC)
		admin, err := testdb.AdminDB(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		stmt := fmt.Sprintf("ALTER TABLE RefreshTokens REORGANIZE PARTITION %s INTO (PARTITION %s VALUES LESS THAN ('%s'), PARTITION %s VALUES LESS THAN ('%s'))",
			partition.Name(cur), partition.Name(old), partition.Boundary(partition.AddMonths(old, 1)),
			partition.Name(cur), partition.Boundary(partition.AddMonths(cur, 1)))
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatalf("split off %s: %v", partition.Name(old), err)
		}
		b := open(t, dbURL, backend.WithoutMigration())
		if err := b.InsertRefreshToken(context.Background(), jtiAt(t, old.Add(24*time.Hour)), "alice", "openid"); err != nil {
			t.Fatal(err)
		}
		out = ok(t, dbURL, "partitions", "--dry-run")
		wantContains(t, "dry run with an old partition", out, "drop "+partition.Name(old))
		out = ok(t, dbURL, "cleanup", "--refresh-retention", "90d")
		wantContains(t, "cleanup with an old partition", out,
			"refresh-token partitions older than 4 months: dropped 1 ("+partition.Name(old)+")",
			"refresh tokens older than 90d: 0 deleted")
		if toks, err := b.GetUserRefreshTokens(context.Background(), ""); err != nil || len(toks) != 0 {
			t.Fatalf("tokens after dropping the old partition: %+v, %v", toks, err)
		}
	})
}

// TestRetentionMonthsNeverDropsYoungTokens checks the cleanup derivation: a
// partition dropped with retentionMonthsFor(d) months holds only tokens
// older than d, for every day of four years and a range of d.
func TestRetentionMonthsNeverDropsYoungTokens(t *testing.T) {
	day := 24 * time.Hour
	for _, d := range []time.Duration{time.Minute, time.Hour, 27 * day, 28 * day, 28*day + time.Second,
		29 * day, 30 * day, 31 * day, 56 * day, 59 * day, 62 * day, 90 * day, 365 * day, 400 * day} {
		n := retentionMonthsFor(d)
		if n < 1 {
			t.Fatalf("retentionMonthsFor(%v) = %d", d, n)
		}
		for now := time.Date(2024, 1, 1, 13, 0, 0, 0, time.UTC); now.Year() < 2028; now = now.Add(day) {
			// Plan drops a month when its upper bound <= AddMonths(now, -n):
			// every token in it is older than that horizon.
			if horizon := partition.AddMonths(now, -n); horizon.After(now.Add(-d)) {
				t.Fatalf("d=%v, now=%v: %d months back is %v, after now-d", d, now, n, horizon)
			}
		}
	}
	if got := retentionMonthsFor(30 * day); got != 2 {
		t.Errorf("retentionMonthsFor(30d) = %d, want 2", got)
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s",
		48 * time.Hour: "2d", 36 * time.Hour: "36h", 2*time.Hour + 5*time.Second: "2h0m5s", 10 * time.Minute: "10m", 0: "0"} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "36h": 36 * time.Hour, "30d": 30 * 24 * time.Hour, "0": 0} {
		if got, err := parseRetention(in); err != nil || got != want {
			t.Errorf("parseRetention(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "-1h", "-2d", "soon"} {
		if _, err := parseRetention(in); err == nil {
			t.Errorf("parseRetention(%q) succeeded", in)
		}
	}
}

func TestTarget(t *testing.T) {
	for in, want := range map[string]string{
		"sqlite://authdb.db":                           "sqlite authdb.db",
		"sqlite:///tmp/x.db?_busy=1":                   "sqlite /tmp/x.db",
		"memory://":                                    "memory store",
		"postgres://u:pw@db.example:5432/auth?x=1":     "postgres db.example:5432/auth",
		"mysql://root@127.0.0.1:3306/authdb":           "mysql 127.0.0.1:3306/authdb",
		"mysql://u:p%zz@h:1/db":                        "mysql h:1/db",
		"postgres://u:s3cret?pw#x@h:5450/adv":          "postgres h:5450/adv",
		"postgresql://u:s3cret@host/db?sslmode=verify": "postgresql host/db",
	} {
		if got := target(in); got != want {
			t.Errorf("target(%q) = %q, want %q", in, got, want)
		}
	}
}
