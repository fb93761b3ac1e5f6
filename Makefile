GO ?= go
export CGO_ENABLED = 1
SHELL := /bin/bash

.PHONY: test test-restart demo generate bench bench-scale bench-partition lint

## test: every test of every package, with the race detector, on the servers
## of internal/testdb (the variables, else the local defaults); the last line
## says how many tests ran and what was skipped, and why (internal/testsummary).
test:
	@set -o pipefail; $(GO) test -race -count=1 -timeout 30m -json ./... | $(GO) run ./internal/testsummary

## test-restart: stop and start the local PostgreSQL and MariaDB under open
## backends (internal/reliability, build tag "restart"). It disturbs every other
## test using those servers, so it runs alone, after make test (.ci/run).
test-restart:
	$(GO) test -race -count=1 -tags restart -run Restart ./internal/reliability/

## demo: a device flow, a PKCE flow, a refresh rotation and a replay, on a
## fresh SQLite file (removed afterwards), printing each step.
demo:
	@echo "building authdb (the first build compiles SQLite and takes a minute or two)..." >&2; \
	$(GO) build -o /dev/null ./cmd/authdb || exit 1; \
	dir=$$(mktemp -d "$${TMPDIR:-/tmp}/authdb-demo.XXXXXX") && \
	$(GO) run ./cmd/authdb --db "sqlite://$$dir/demo.db" demo; \
	status=$$?; rm -rf "$$dir"; exit $$status

## generate: regenerate the ent code from ent/schema.
generate:
	$(GO) generate ./ent

## bench: every Backend operation on memory, SQLite, PostgreSQL and MariaDB,
## authdb beside a hand-written database/sql baseline, interleaved, printed as
## one table (internal/bench; local servers as in the test set-up). Options:
## listing with 1,000,000 tokens included (-1m=false leaves it out); BENCH_FLAGS, e.g.
## BENCH_FLAGS='-engines sqlite -ops Rotate -budget 2s -mode prepared'; -families: both
## implementations with the refresh-token family options on (docs/families.md).
## The testing.B form: go test -run '^$$' -bench SQL ./internal/bench
bench:
	cd internal/bench && \
	AUTHDB_TEST_POSTGRES_URL="$${AUTHDB_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}" \
	AUTHDB_TEST_MYSQL_URL="$${AUTHDB_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}" AUTHDB_TEST_REQUIRE_DBS=1 \
	$(GO) test -count=1 -timeout 60m -run '^TestBenchTable$$' -table -1m $(BENCH_FLAGS)

## bench-scale: the scale tables of docs/benchmarks.md (internal/bench,
## TestScaleTable): throughput by concurrency (1-256 goroutines, authdb
## beside the baseline, p50/p99/p999, server counters), foreground p99 while
## clean-up and partition maintenance run, per-operation latency by table
## size, and listing by partition count; CSV files in $(SCALE_OUT) and the
## PNG plots drawn from them in $(PLOT_OUT) (docs/img). Options in SCALE_FLAGS, e.g.
## SCALE_FLAGS='-scale.parts curve -scale.engines postgres -scale.goroutines 1,64'.
SCALE_OUT ?= /tmp/authdb-scale
PLOT_OUT ?= docs/img
bench-scale:
	cd internal/bench && \
	AUTHDB_TEST_POSTGRES_URL="$${AUTHDB_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}" \
	AUTHDB_TEST_MYSQL_URL="$${AUTHDB_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}" AUTHDB_TEST_REQUIRE_DBS=1 \
	$(GO) test -count=1 -timeout 90m -run '^TestScaleTable$$' -scale -scale.out $(SCALE_OUT) $(SCALE_FLAGS)
	$(GO) run ./internal/bench/plot -in $(SCALE_OUT) -out $(PLOT_OUT)

## bench-partition: fill one month with 1,000,000 refresh tokens on MariaDB/MySQL
## (AUTHDB_TEST_MYSQL_URL, default the local server; AUTHDB_PURGE_TOKENS sets the
## count) and time purging it by DROP PARTITION and by CleanExpiredRefreshTokens.
bench-partition:
	AUTHDB_TEST_MYSQL_URL="$${AUTHDB_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}" AUTHDB_TEST_REQUIRE_DBS=1 \
	$(GO) test -run '^$$' -bench BenchmarkPurgeMonth -benchtime 1x -timeout 60m ./partition/internal/purgebench

## lint: gofmt and go vet.
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
