// Package reliability holds authdb's reliability and security tests (issue
// 7): connections killed and servers restarted under a live backend, sessions
// killed in the middle of refresh-token rotations, provoked deadlocks that
// the bounded retry must hide, deadlines while the database is blocked,
// hostile input checked byte for byte in the raw tables, secrets that must
// never be stored or printed, and the fuzz targets' seed corpora; and the
// honest-outcome tests of issue 10: replies lost, delayed or cut by the
// fault proxy (internal/faultproxy) at each write (TestLostReplies,
// TestRetryAfterUnknown), and kill -9 of private servers under load
// (TestKill9UnderLoad, internal/testserver; run when
// AUTHDB_TEST_PRIVATE_SERVERS=1). Those record Jepsen-style histories (ok,
// fail, info = backend.ErrOutcomeUnknown) and check them against the
// database afterwards (history_test.go): no ok write missing, no failed
// write present, no wrong verdict. Their figures are in the -v log:
//
//	go test -count=1 -v -run 'TestLostReplies|TestRetryAfterUnknown|TestKill9UnderLoad' \
//		./internal/reliability/ | grep -E 'operations|faults|kill -9|retries'
//
// Every test runs on every backend where it applies: memory, SQLite, and the
// PostgreSQL and MariaDB servers that internal/testdb finds
// (AUTHDB_TEST_POSTGRES_URL, AUTHDB_TEST_MYSQL_URL). Tests that restart the
// real servers disturb every other test running against them, so they are
// built only with the tag "restart" and run alone, after `make test`, by
// `make test-restart`.
//
// The package has no exported API: it is tests only, plus this file.
package reliability
