#!/usr/bin/env bash
# Interop tests of examples/tokenserver with two real third-party clients,
# unchanged: zitadel/oidc v3 (Go, interop_test.go) and openid-client 6 (Node
# 20, node/). Builds the server, installs the Node client from its
# package-lock.json, and runs the Go test, which starts the server binary once
# per store (a SQLite file, and PostgreSQL and MariaDB as internal/testdb
# finds them: AUTHDB_TEST_POSTGRES_URL, AUTHDB_TEST_MYSQL_URL,
# AUTHDB_TEST_REQUIRE_DBS) and runs both clients against it.
# Bounded: go test -timeout 10m; each Node run has 2 minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokenserver-interop.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "interop: building the token server"
(cd "$root" && go build -o "$tmp/tokenserver" ./examples/tokenserver)
echo "interop: installing openid-client (npm ci)"
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
echo "interop: zitadel/oidc and openid-client against the server"
cd "$here"
TOKENSERVER_BIN="$tmp/tokenserver" go test -count=1 -timeout 10m -v .
