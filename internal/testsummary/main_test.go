package main

import (
	"strings"
	"testing"
)

const stream = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: boom\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- FAIL: TestB (0.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    testdb.go:80: testdb: no postgres server (AUTHDB_TEST_POSTGRES_URL unset; nothing listens on 127.0.0.1:5432; no Docker engine running): set AUTHDB_TEST_POSTGRES_URL or start PostgreSQL on 127.0.0.1:5432\n"}
{"Action":"skip","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Test":"TestD","Output":"    testdb.go:80: testdb: no postgres server (AUTHDB_TEST_POSTGRES_URL unset; nothing listens on 127.0.0.1:5432; no Docker engine running): set AUTHDB_TEST_POSTGRES_URL or start PostgreSQL on 127.0.0.1:5432\n"}
{"Action":"skip","Package":"p","Test":"TestD"}
{"Action":"output","Package":"p","Test":"TestE","Output":"    e_test.go:3: short mode\n"}
{"Action":"skip","Package":"p","Test":"TestE"}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}
{"Action":"fail","Package":"p"}
`

func TestSummarise(t *testing.T) {
	var out strings.Builder
	failed, err := summarise(strings.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("a failed test: summarise reports no failure")
	}
	got := out.String()
	for _, want := range []string{
		"    b_test.go:9: boom\n--- FAIL: TestB (0.00s)\n",
		"FAIL\tp\t0.1s\n",
		"make test: 2 tests ran (1 passed, 1 failed), 3 skipped: postgres: 2 (AUTHDB_TEST_POSTGRES_URL unset; nothing listens on 127.0.0.1:5432; no Docker engine running; to run them: set AUTHDB_TEST_POSTGRES_URL or start PostgreSQL on 127.0.0.1:5432); 1 not for a server (e.g. p TestE; see go test -v for why)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "TestA") || strings.Contains(got, "=== RUN") {
		t.Errorf("output shows a passing test or RUN lines:\n%s", got)
	}
}

func TestSummariseAllPassed(t *testing.T) {
	var out strings.Builder
	failed, err := summarise(strings.NewReader(`{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}
`), &out)
	if err != nil || failed {
		t.Fatalf("summarise: failed=%v err=%v", failed, err)
	}
	if want := "ok  \tp\t0.1s\nmake test: 1 tests ran (1 passed, 0 failed), 0 skipped\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}
