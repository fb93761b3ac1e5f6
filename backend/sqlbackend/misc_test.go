package sqlbackend_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/partition"
)

// TestMemoryDatabase: sqlite://:memory: is one database shared by the pool
// and by concurrent callers; each Open is a new one.
func TestMemoryDatabase(t *testing.T) {
	ctx := context.Background()
	b := open(t, "sqlite://:memory:")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jti, err := backend.NewUUIDv7()
			if err == nil {
				err = b.InsertRefreshToken(ctx, jti, fmt.Sprintf("user%d", i%4), "s")
			}
			if err == nil {
				_, err = b.GetUserRefreshTokens(ctx, "")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if all, err := b.GetUserRefreshTokens(ctx, ""); err != nil || len(all) != 16 {
		t.Errorf("tokens = %d, %v; want 16", len(all), err)
	}
	if all, err := open(t, "sqlite://:memory:").GetUserRefreshTokens(ctx, ""); err != nil || len(all) != 0 {
		t.Errorf("a second :memory: backend has %d tokens, %v; want 0", len(all), err)
	}
}

// TestCleanupBatches: clean-up deletes in batches of CleanupBatchSize,
// reports progress after each, and keeps what is within retention.
func TestCleanupBatches(t *testing.T) {
	now := time.Date(2025, time.June, 15, 12, 0, 0, 0, time.UTC)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			clock := now.Add(-2 * time.Hour)
			var mu sync.Mutex
			progress := map[string][]int64{}
			b := open(t, newURL(t, e),
				backend.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }),
				backend.WithCleanupBatchSize(10),
				backend.WithCleanupProgress(func(table string, n int64) { progress[table] = append(progress[table], n) }))
			for i := range 25 {
				if _, _, err := b.InsertDeviceFlow(ctx, "c", "s"); err != nil {
					t.Fatal(err)
				}
				if _, err := b.InsertAuthorizationFlow(ctx, "c", "s", "x", "S256", "https://x"); err != nil {
					t.Fatal(err)
				}
				if err := b.InsertRefreshToken(ctx, conformance.UUIDv7At(clock.Add(time.Duration(i)*time.Millisecond)), "u", "s"); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			clock = now // the 25 rows are two hours old
			mu.Unlock()
			if _, _, err := b.InsertDeviceFlow(ctx, "c", "s"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.InsertAuthorizationFlow(ctx, "c", "s", "x", "S256", "https://x"); err != nil {
				t.Fatal(err)
			}
			if err := b.InsertRefreshToken(ctx, conformance.UUIDv7At(now), "u", "s"); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				table string
				clean func(context.Context, time.Duration) (int64, error)
			}{
				{"DeviceFlows", b.CleanExpiredDeviceFlows},
				{"AuthorizationFlows", b.CleanExpiredAuthorizationFlows},
				{"RefreshTokens", b.CleanExpiredRefreshTokens},
			} {
				n, err := c.clean(ctx, time.Hour)
				if err != nil || n != 25 {
					t.Errorf("clean %s = %d, %v; want 25", c.table, n, err)
				}
				if got, want := progress[c.table], []int64{10, 20, 25}; !reflect.DeepEqual(got, want) {
					t.Errorf("progress of %s = %v, want %v", c.table, got, want)
				}
				if n, err := c.clean(ctx, time.Hour); err != nil || n != 0 {
					t.Errorf("clean %s again = %d, %v; want 0", c.table, n, err)
				}
			}
			if all, err := b.GetUserRefreshTokens(ctx, ""); err != nil || len(all) != 1 {
				t.Errorf("tokens left = %d, %v; want 1", len(all), err)
			}
		})
	}
}

// TestPoolSettings: the URL's pool parameters win over the options.
func TestPoolSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pool.db")
	b := open(t, "sqlite://"+path+"?max_open_conns=3", backend.WithMaxOpenConns(7))
	if got := b.DB().Stats().MaxOpenConnections; got != 3 {
		t.Errorf("MaxOpenConnections = %d, want 3 (URL)", got)
	}
	b = open(t, "sqlite://"+path, backend.WithMaxOpenConns(7))
	if got := b.DB().Stats().MaxOpenConnections; got != 7 {
		t.Errorf("MaxOpenConnections = %d, want 7 (option)", got)
	}
	// Unset: bounded by default; 0 in the URL or a negative option: unbounded.
	b = open(t, "sqlite://"+path)
	if got, want := b.DB().Stats().MaxOpenConnections, sqlbackend.DefaultMaxOpenConns(); got != want || want < sqlbackend.DefaultMaxIdleConns || want > 64 {
		t.Errorf("MaxOpenConnections = %d, want the default %d (16 to 64)", got, want)
	}
	b = open(t, "sqlite://"+path+"?max_open_conns=0", backend.WithMaxOpenConns(7))
	if got := b.DB().Stats().MaxOpenConnections; got != 0 {
		t.Errorf("MaxOpenConnections = %d, want 0 (unbounded, URL)", got)
	}
	b = open(t, "sqlite://"+path, backend.WithMaxOpenConns(-1))
	if got := b.DB().Stats().MaxOpenConnections; got != 0 {
		t.Errorf("MaxOpenConnections = %d, want 0 (unbounded, option)", got)
	}
}

// TestAccessors: Dialect, DB, and Migrate on a backend opened without
// migration.
func TestAccessors(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			b := open(t, newURL(t, e), backend.WithoutMigration())
			if b.Dialect() != e.dialect {
				t.Errorf("Dialect = %q, want %q", b.Dialect(), e.dialect)
			}
			if err := b.DB().PingContext(ctx); err != nil {
				t.Errorf("DB().Ping: %v", err)
			}
			if err := b.InsertRefreshToken(ctx, uuid.Must(uuid.NewV7()), "u", "s"); err == nil {
				t.Error("InsertRefreshToken before Migrate succeeded on an empty database")
			}
			if err := b.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := b.Migrate(ctx); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			if err := b.InsertRefreshToken(ctx, uuid.Must(uuid.NewV7()), "u", "s"); err != nil {
				t.Errorf("InsertRefreshToken after Migrate: %v", err)
			}
		})
	}
}

// TestPartitionMaintainer: MySQL plans and maintains RefreshTokens'
// partitions with the backend's clock; the other engines are unsupported.
func TestPartitionMaintainer(t *testing.T) {
	now := time.Date(2025, time.June, 15, 12, 0, 0, 0, time.UTC)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			var pm backend.PartitionMaintainer = open(t, newURL(t, e), backend.WithClock(func() time.Time { return now }), backend.WithPartitionPause(0))
			plan, err := pm.PlanRefreshTokenPartitions(ctx, 6, partition.DefaultMonthsAhead)
			if e.name != "mysql" {
				if !errors.Is(err, backend.ErrUnsupported) {
					t.Errorf("Plan on %s: %v, want ErrUnsupported", e.name, err)
				}
				if _, err := pm.MaintainRefreshTokenPartitions(ctx, 6, partition.DefaultMonthsAhead); !errors.Is(err, backend.ErrUnsupported) {
					t.Errorf("Maintain on %s: %v, want ErrUnsupported", e.name, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			first := time.Date(2025, time.June, 1, 0, 0, 0, 0, time.UTC)
			if len(plan.Existing) != partition.SetupMonths || !plan.Existing[0].Equal(first) || len(plan.Added) != 0 || len(plan.Dropped) != 0 {
				t.Errorf("plan = %+v, want %d months from %v, nothing to do", plan, partition.SetupMonths, first)
			}
			now = now.AddDate(2, 0, 0) // 2027-06-15: add up to 2028-06, drop before 2026-12
			rep, err := pm.MaintainRefreshTokenPartitions(ctx, 6, partition.DefaultMonthsAhead)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Added) != 13 || len(rep.Dropped) != 18 {
				t.Errorf("maintain added %d and dropped %d months, want 13 and 18: %+v", len(rep.Added), len(rep.Dropped), rep)
			}
		})
	}
}

// TestOpenViaRegistry: the package registers its schemes with the backend
// registry.
func TestOpenViaRegistry(t *testing.T) {
	b, err := backend.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := b.(*sqlbackend.Backend); !ok {
		t.Errorf("backend.Open gave a %T", b)
	}
	for _, s := range sqlbackend.Schemes {
		found := false
		for _, r := range backend.Schemes() {
			found = found || r == s
		}
		if !found {
			t.Errorf("scheme %s not registered", s)
		}
	}
}

// TestCancelledWriteNotApplied: a write waiting for a row lock returns the
// context's error promptly when its deadline passes, and is not applied
// once the lock is released (on MySQL the backend kills the statement on
// the server, from a connection outside the pool: here the pool has one).
// A revocation has a read-back, so the outcome rules' fence would end its
// session too; a clean-up batch and a replay's revocation have none
// (outcome.go), and on MySQL only the kill armed for the running statement
// (idConn.watch) stops them, on PostgreSQL lib/pq's cancel request: those
// two cases fail on MySQL when the kill is not armed.
func TestCancelledWriteNotApplied(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		jti  uuid.UUID
		// prepare, when set, runs after jti's insert and returns the token
		// whose row is locked (else jti's).
		prepare func(ctx context.Context, b *sqlbackend.Backend, jti uuid.UUID) (uuid.UUID, error)
		write   func(ctx context.Context, b *sqlbackend.Backend, jti uuid.UUID) error
	}{
		{"revoke", conformance.UUIDv7At(now), nil, func(ctx context.Context, b *sqlbackend.Backend, jti uuid.UUID) error {
			return b.RevokeRefreshToken(ctx, jti)
		}},
		{"cleanup", conformance.UUIDv7At(now.Add(-48 * time.Hour)), nil, func(ctx context.Context, b *sqlbackend.Backend, _ uuid.UUID) error {
			_, err := b.CleanExpiredRefreshTokens(ctx, time.Hour)
			return err
		}},
		// A replay's revocation of the successor, waiting for the
		// successor's row lock (it has no read-back either).
		{"replay", conformance.UUIDv7At(now), func(ctx context.Context, b *sqlbackend.Backend, jti uuid.UUID) (uuid.UUID, error) {
			next := conformance.UUIDv7At(now)
			_, err := b.RotateRefreshToken(ctx, jti, next)
			return next, err
		}, func(ctx context.Context, b *sqlbackend.Backend, jti uuid.UUID) error {
			_, err := b.RotateRefreshToken(ctx, jti, conformance.UUIDv7At(now))
			return err
		}},
	} {
		for _, e := range engines[1:] {
			t.Run(tc.name+"/"+e.name, func(t *testing.T) {
				u := newURL(t, e)
				sep := "?"
				if strings.Contains(u, "?") {
					sep = "&"
				}
				b := open(t, u+sep+"max_open_conns=1", backend.WithClock(func() time.Time { return now }))
				ctx := context.Background()
				if err := b.InsertRefreshToken(ctx, tc.jti, "u", "s"); err != nil {
					t.Fatal(err)
				}
				locked := tc.jti
				if tc.prepare != nil {
					var err error
					if locked, err = tc.prepare(ctx, b, tc.jti); err != nil {
						t.Fatal(err)
					}
				}
				db := rawDB(t, e, u)
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				if _, err := tx.Exec(sqlText(e, `UPDATE "RefreshTokens" SET "Scope"='locked' WHERE "JTI"=?`), storedID(e, locked)); err != nil {
					t.Fatal(err)
				}
				dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				start := time.Now()
				err = tc.write(dctx, b, tc.jti)
				if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
					t.Errorf("%s = %v after %v, want DeadlineExceeded within 2s", tc.name, err, time.Since(start))
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				// An orphaned statement would now run: read once no other session
				// of this database runs a statement any more.
				waitNoOtherStatement(t, e, db)
				tok, err := b.GetRefreshToken(ctx, locked)
				if err != nil || tok.Status != backend.TokenCreated || tok.Scope != "locked" {
					t.Fatalf("token = %+v, %v; want CREATED with the locker's scope", tok, err)
				}
			})
		}
	}
}

// waitNoOtherStatement polls the server (a condition, not a timed wait)
// until no session of db's database but db's own runs a statement.
func waitNoOtherStatement(t *testing.T, e engine, db *sql.DB) {
	t.Helper()
	query := `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`
	if e.name == "mysql" {
		query = `SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND COMMAND = 'Query' AND ID <> CONNECTION_ID()`
	}
	waitZero(t, db, query, "statements still run on the server 10s after the lock was released")
}

// waitZero polls db (a condition, not a timed wait) until query counts
// no row, for at most 10 s; after that the test fails with the count and
// what.
func waitZero(t *testing.T, db *sql.DB, query, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := db.QueryRow(query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s", n, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOpenConcurrently: backends opened (and so migrated) at once from
// several goroutines share no unguarded state (run with -race).
func TestOpenConcurrently(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := sqlbackend.Open(context.Background(), fmt.Sprintf("sqlite://%s/db%d.db", dir, i%3))
			if err == nil {
				err = b.InsertRefreshToken(context.Background(), uuid.Must(uuid.NewV7()), "u", "s")
				b.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
