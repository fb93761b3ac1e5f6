// Package purgebench holds BenchmarkPurgeMonth, which compares the two ways
// of purging one month of refresh tokens on MySQL/MariaDB: dropping the
// month's partition (partition.Maintain) and deleting its rows in bounded
// batches (the SQL backend's CleanExpiredRefreshTokens). It lives apart from
// package partition because it needs the SQL backend, which imports
// partition. Run it with `make bench-partition`; the package has no code.
package purgebench
