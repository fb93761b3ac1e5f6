package sqlbackend

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
)

// Concurrent start-up. Several processes may migrate one database at once
// (replicas of a deployment starting together, `authdb migrate` beside a
// running service). ent plans a migration from an inspection of the schema
// and applies it afterwards, so two unguarded runs both plan "create table"
// and the second fails. Migrate therefore:
//
//   - on PostgreSQL, holds the session advisory lock migrateLockKey
//     (pg_advisory_lock, per database) on a dedicated connection from
//     before the inspection until the plan is applied;
//   - on MySQL/MariaDB, holds the named lock "authdb.migrate.<database>"
//     (GET_LOCK is per server, hence the database's name in it);
//   - on SQLite, applies the plan under SQLite's write lock (the migration's
//     transaction is BEGIN IMMEDIATE), and on every engine, a plan another
//     process made stale meanwhile (it fails with "already exists": a
//     server without named locks, such as a Galera cluster) is rolled back
//     where the engine allows it and made again from a fresh inspection,
//     at most migrateAttempts times in all.
//
// Waiting for the lock honours ctx; a lock that cannot be released (the
// connection broke) is released by closing its session.

// migrateLockKey is authdb's PostgreSQL advisory-lock key for migrations:
// the first 8 bytes of sha256("authdb.migrate") as a signed integer.
var migrateLockKey = func() int64 {
	sum := sha256.Sum256([]byte("authdb.migrate"))
	var k int64
	for _, b := range sum[:8] {
		k = k<<8 | int64(b)
	}
	return k
}()

// migrateAttempts bounds the re-planned migrations after "already exists".
const migrateAttempts = 5

// lockWaitSlice is how long one GET_LOCK call waits on MySQL before the
// context is looked at again.
const lockWaitSlice = 1

// lockMigration takes the engine's cross-process migration lock and
// returns the function that releases it. SQLite has none beyond its write
// lock (see above): a no-op.
func (b *Backend) lockMigration(ctx context.Context) (unlock func(), err error) {
	if b.dialect == dialect.SQLite {
		return func() {}, nil
	}
	// The lock's session is one more connection than the migration needs:
	// a pool bounded to n connections may open n+1 while it runs.
	restore := func() {}
	if n := b.db.Stats().MaxOpenConnections; n > 0 {
		b.db.SetMaxOpenConns(n + 1)
		restore = func() { b.db.SetMaxOpenConns(n) }
	}
	conn, err := b.db.Conn(ctx)
	if err != nil {
		restore()
		return nil, err
	}
	var release func(context.Context) error
	switch b.dialect {
	case dialect.Postgres:
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
			// A cancelled wait leaves the session holding nothing, but it
			// is discarded all the same (lib/pq's cancel races the grant).
			discard(conn)
			restore()
			return nil, fmt.Errorf("advisory lock: %w", err)
		}
		release = func(ctx context.Context) error {
			_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", migrateLockKey)
			return err
		}
	case dialect.MySQL:
		name, err := mysqlLockName(ctx, conn)
		if err != nil {
			discard(conn)
			restore()
			return nil, err
		}
		for {
			var got sql.NullInt64
			if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, lockWaitSlice).Scan(&got); err != nil {
				discard(conn)
				restore()
				return nil, fmt.Errorf("named lock %s: %w", name, err)
			}
			if got.Valid && got.Int64 == 1 {
				break
			}
			if ctx.Err() != nil {
				conn.Close()
				restore()
				return nil, ctx.Err()
			}
		}
		release = func(ctx context.Context) error {
			var released sql.NullInt64
			return conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", name).Scan(&released)
		}
	}
	return func() {
		defer restore()
		// A fresh, bounded context: the lock is released even when ctx is done.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := release(rctx); err != nil {
			// The session may still hold the lock: close it (the server
			// frees a closed session's locks) rather than pool it.
			discard(conn)
			return
		}
		conn.Close()
	}, nil
}

// discard closes conn and keeps the pool from reusing its session.
func discard(conn *sql.Conn) {
	conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// mysqlLockName is the named lock of the connection's current database:
// "authdb.migrate.<database>", or a digest of the database's name when
// that would exceed MySQL's 64 characters.
func mysqlLockName(ctx context.Context, conn *sql.Conn) (string, error) {
	var schema sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&schema); err != nil {
		return "", fmt.Errorf("current database: %w", err)
	}
	if !schema.Valid || schema.String == "" {
		return "", errors.New("no database selected")
	}
	name := "authdb.migrate." + schema.String
	if len([]rune(name)) > 64 {
		sum := sha256.Sum256([]byte(schema.String))
		name = "authdb.migrate." + hex.EncodeToString(sum[:16])
	}
	return name, nil
}

// alreadyExists reports whether a migration failed because a table or an
// index it was to create exists: another process created it after the plan
// was made.
func alreadyExists(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code {
		case "42P07", "42710": // duplicate_table, duplicate_object
			return true
		case "23505": // a concurrent CREATE racing in the catalog
			return strings.HasPrefix(pqErr.Constraint, "pg_")
		}
		return false
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == 1050 || myErr.Number == 1061 // table exists, duplicate key name
	}
	return strings.Contains(err.Error(), "already exists")
}
