// Package testserver starts private PostgreSQL 15 and MariaDB 10.11 servers
// for tests that must kill, restart or misconfigure their server: each has
// its own port (a free one, picked at start), its own data directory and
// socket under a temporary directory, and trust authentication (PostgreSQL
// user postgres; MariaDB root without a password). The shared servers on
// 5432 and 3306 are never touched.
//
// The servers are started by the scripts in scripts/ (embedded in the test
// binary), which also work by hand:
//
//	internal/testserver/scripts/pg.sh start /tmp/pg1 15432 max_connections=10
//	psql "postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable"
//	internal/testserver/scripts/pg.sh stop /tmp/pg1
//
//	internal/testserver/scripts/mariadb.sh start /tmp/my1 13306 --character-set-server=latin1 --sql-mode=
//	mariadb -h 127.0.0.1 -P 13306 -u root test
//	internal/testserver/scripts/mariadb.sh stop /tmp/my1
//
// Running as root, pg.sh runs PostgreSQL as the postgres user (setpriv) and
// mariadb.sh runs mariadbd with --user=root. PostgreSQL's binaries come from
// /usr/lib/postgresql/15/bin (PGBIN overrides it); MariaDB's from PATH.
//
// In Go:
//
//	s := testserver.Start(t, testserver.MariaDB, testserver.Config{Args: []string{"--sql-mode="}})
//	url := s.NewDatabase(t)    // mysql://root@127.0.0.1:PORT/authdb_test_<hex>
//	s.Kill9(t); s.Restart(t)   // SIGKILL every server process, start again on the same data
//
// Start gives a server of the test's own, stopped when the test ends.
// Shared gives one server per test binary and Config (start-up costs about a
// second per server; tests that only need hostile settings should share),
// which must not be stopped or killed, and is stopped when the binary exits
// (its process gets SIGKILL when the test binary dies; StopShared stops them
// cleanly, e.g. from TestMain).
//
// Gate: tests that need private servers run only when
// AUTHDB_TEST_PRIVATE_SERVERS=1 (.ci/run sets it) and are skipped, with that
// reason, otherwise. With AUTHDB_TEST_PRIVATE_SERVERS=1 and
// AUTHDB_TEST_REQUIRE_DBS=1, missing binaries or a server that does not
// start fail the test instead of skipping it.
//
// Clusters (galera.go, standby.go; scripts/galera.sh, scripts/pg-standby.sh):
// StartGalera starts a 3-node MariaDB Galera cluster (node 1 bootstraps,
// the others join from a copy of its data; Freeze and Thaw send
// SIGSTOP/SIGCONT to a node), StartStandby a PostgreSQL primary with a
// synchronous streaming standby (KillPrimary, Promote). They run only when
// AUTHDB_TEST_CLUSTERS=1 (.ci/run sets it); with AUTHDB_TEST_REQUIRE_DBS=1
// a cluster that does not start fails the test. By hand:
//
//	internal/testserver/scripts/galera.sh start /tmp/g    # prints PORTS p1 p2 p3
//	internal/testserver/scripts/galera.sh freeze /tmp/g 2
//	internal/testserver/scripts/galera.sh stop /tmp/g
//	internal/testserver/scripts/pg-standby.sh start /tmp/s  # prints PORTS primary standby
//	internal/testserver/scripts/pg-standby.sh kill-primary /tmp/s
//	internal/testserver/scripts/pg-standby.sh promote /tmp/s
//
// AUTHDB_TEST_GALERA_DIR=/tmp/g makes StartGalera use that running cluster
// (and not stop it), for iterating on a test.
package testserver
