package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// envListTokens sets the number of tokens of TestTokensListMemory (default
// 100,000; CI runs 1,000,000).
const envListTokens = "AUTHDB_TEST_LIST_TOKENS"

// TestTokensListMemory: 'tokens list --json' streams, so the CLI's peak
// memory stays under 100 MB whatever the number of tokens (it was 1.27 GB
// for 1,000,000 when the listing was read whole). The tokens are loaded into
// a SQLite file with one INSERT ... SELECT of a recursive CTE (1,000,000 in
// about 5 s, the listing about 30 s: CI runs that, make test 100,000); the child's
// peak RSS comes from getrusage.
func TestTokensListMemory(t *testing.T) {
	n := 100_000
	if v := os.Getenv(envListTokens); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", envListTokens, v)
		}
	}
	path := filepath.Join(t.TempDir(), "big.db")
	dbURL := "sqlite://" + path
	ok(t, dbURL, "migrate")
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	// The listing of every token reads the primary key only: the two
	// indexes on Sub, which would make the load ten times slower (random
	// inserts into them), are dropped first.
	if _, err := db.Exec(`DROP INDEX "ix_RefreshTokens_Sub"; DROP INDEX "index_status_sub"`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// JTI: a UUIDv7 in 32 hex digits, its timestamp 2025-11-24 plus i ms,
	// version 7, variant 8, i again in the random bits (so all differ).
	_, err = db.Exec(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM c WHERE i < ?)
		INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub")
		SELECT printf('%012x7000%016x', 1764000000000 + i, 0x8000000000000000 + i),
		       CASE WHEN i % 10 = 0 THEN 'REVOKED' ELSE 'CREATED' END,
		       'openid profile offline_access', 'user-' || (i % 5000)
		FROM c`, n-1)
	db.Close()
	if err != nil {
		t.Fatalf("load %d tokens: %v", n, err)
	}
	t.Logf("loaded %d tokens in %s", n, time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--db", dbURL, "tokens", "list", "--json")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read the array element by element (valid JSON, n tokens), never whole.
	dec := json.NewDecoder(bufio.NewReader(out))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		t.Fatalf("output starts with %v (%v), want [", tok, err)
	}
	count := 0
	var last tokenJSON
	for dec.More() {
		if err := dec.Decode(&last); err != nil {
			t.Fatalf("token %d: %v", count, err)
		}
		count++
	}
	if _, err := dec.Token(); err != nil {
		t.Fatalf("after %d tokens: %v", count, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tokens list --json: %v", err)
	}
	if count != n || last.Status != "CREATED" {
		t.Errorf("listed %d tokens (last %+v), want %d", count, last, n)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024 // KiB on Linux
	t.Logf("tokens list --json of %d tokens: %s, peak RSS %.1f MB", n, time.Since(start).Round(time.Millisecond), float64(rss)/1e6)
	if rss > 100e6 {
		t.Errorf("tokens list --json of %d tokens: peak RSS %.1f MB, want under 100 MB", n, float64(rss)/1e6)
	}
}
