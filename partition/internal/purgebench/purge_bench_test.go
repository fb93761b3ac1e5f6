package purgebench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/internal/testdb"
	"github.com/authdb/authdb/partition"
)

// EnvTokens sets how many tokens BenchmarkPurgeMonth puts in the purged
// month (default 1,000,000).
const EnvTokens = "AUTHDB_PURGE_TOKENS"

const (
	defaultTokens = 1_000_000
	keptTokens    = 10_000 // in the month after, which both purges keep
	insertRows    = 5_000  // rows per INSERT of the bulk load
	loaders       = 2      // concurrent INSERT streams
)

var (
	// setupAt is the clock at the first migration: partitions January 2026
	// to December 2027, then p_future.
	setupAt = time.Date(2026, time.January, 15, 12, 0, 0, 0, time.UTC)
	// purgeAt is the clock at the purge: with 1 month (or 28 days) of
	// retention, January 2026 is due and February 2026 is kept.
	purgeAt     = time.Date(2026, time.March, 1, 0, 0, 0, 0, time.UTC)
	purgedMonth = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)
	keptMonth   = time.Date(2026, time.February, 1, 0, 0, 0, 0, time.UTC)
)

func tokenCount(tb testing.TB) int {
	tb.Helper()
	s := os.Getenv(EnvTokens)
	if s == "" {
		return defaultTokens
	}
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", EnvTokens, s)
	}
	return n
}

// clock is a settable clock for backend.WithClock.
type clock struct{ ns atomic.Int64 }

func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }

// prepare opens the SQL backend on a fresh MariaDB/MySQL database with the
// clock at setupAt (its migration partitions RefreshTokens), fills the
// purged month with n tokens and the kept month with keptTokens, and moves
// the clock to purgeAt.
func prepare(b *testing.B, n int) (*sqlbackend.Backend, *sql.DB) {
	b.Helper()
	ctx := context.Background()
	url := testdb.NewDatabase(b, testdb.MySQL)
	clk := newClock(setupAt)
	be, err := sqlbackend.Open(ctx, url, backend.WithClock(clk.now))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	// The migration partitions the empty table; Setup again is a no-op
	// that makes sure of it.
	if _, err := partition.Setup(ctx, be.DB(), setupAt, nil); err != nil {
		b.Fatal(err)
	}
	plan, err := be.PlanRefreshTokenPartitions(ctx, 1000, 0)
	if err != nil || len(plan.Existing) != partition.SetupMonths || !plan.Existing[0].Equal(purgedMonth) {
		b.Fatalf("partitions after migration: %+v, %v; want %d months from %s", plan, err, partition.SetupMonths, partition.Name(purgedMonth))
	}
	admin, err := testdb.AdminDB(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { admin.Close() })
	start := time.Now()
	fill(b, admin, purgedMonth, n)
	fill(b, admin, keptMonth, keptTokens)
	fmt.Fprintf(os.Stdout, "purgebench: loaded %d tokens into %s and %d into %s in %v\n", n, partition.Name(purgedMonth), keptTokens, partition.Name(keptMonth), time.Since(start).Round(time.Millisecond))
	// Fresh statistics, as a server that has been running would have.
	if _, err := admin.ExecContext(ctx, "ANALYZE TABLE `RefreshTokens`"); err != nil {
		b.Fatal(err)
	}
	clk.set(purgeAt)
	return be, admin
}

// fill inserts n tokens spread evenly over month, in JTI order, with
// multi-row INSERTs of insertRows rows on loaders connections. Half are
// revoked; subjects cycle through 10,000 names.
func fill(b *testing.B, db *sql.DB, month time.Time, n int) {
	b.Helper()
	step := month.AddDate(0, 1, 0).Sub(month) / time.Duration(n)
	batches := make(chan int)
	errs := make(chan error, loaders)
	var wg sync.WaitGroup
	for range loaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sb strings.Builder
			for first := range batches {
				sb.Reset()
				sb.WriteString("INSERT INTO `RefreshTokens` (`JTI`, `Status`, `Scope`, `Sub`) VALUES ")
				for i := first; i < min(first+insertRows, n); i++ {
					if i > first {
						sb.WriteByte(',')
					}
					id := backend.LowestUUIDv7(month.Add(time.Duration(i) * step))
					var r [9]byte
					_, _ = rand.Read(r[:])
					id[7] = r[0]
					copy(id[9:], r[2:])
					id[8] = 0x80 | r[1]&0x3f
					status := backend.TokenCreated
					if i%2 == 0 {
						status = backend.TokenRevoked
					}
					fmt.Fprintf(&sb, "('%s','%s','openid profile','user-%05d')", backend.HexJTI(id), status, i%10000)
				}
				if _, err := db.Exec(sb.String()); err != nil {
					errs <- err
					for range batches {
					}
					return
				}
			}
		}()
	}
	for first := 0; first < n; first += insertRows {
		batches <- first
	}
	close(batches)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("bulk load: %v", err)
	}
}

// count returns the number of tokens in the table.
func count(b *testing.B, db *sql.DB) int {
	b.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM `RefreshTokens`").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkPurgeMonth fills one month with AUTHDB_PURGE_TOKENS tokens
// (default 1,000,000) on MariaDB/MySQL, twice, and purges it once with
// DROP PARTITION (the backend's MaintainRefreshTokenPartitions, 1 month of
// retention) and once with CleanExpiredRefreshTokens (batched DELETEs by JTI
// range, default batch size), on the same partitioned layout. It reports
// both times (drop-s, clean-s) and clean-s/drop-s (ratio), and checks that
// each purge removed exactly that month. The loads are not timed.
//
//	make bench-partition
func BenchmarkPurgeMonth(b *testing.B) {
	n := tokenCount(b)
	ctx := context.Background()
	var dropTime, cleanTime time.Duration
	b.StopTimer()
	for range b.N {
		be, admin := prepare(b, n)
		b.StartTimer()
		start := time.Now()
		rep, err := be.MaintainRefreshTokenPartitions(ctx, 1, partition.DefaultMonthsAhead)
		d := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if !slices.EqualFunc(rep.Dropped, []time.Time{purgedMonth}, time.Time.Equal) || len(rep.Added) != 0 {
			b.Fatalf("maintenance %+v: want only %s dropped", rep, partition.Name(purgedMonth))
		}
		if left := count(b, admin); left != keptTokens {
			b.Fatalf("%d tokens after DROP PARTITION, want %d", left, keptTokens)
		}
		dropTime += d
		be.Close()

		be, admin = prepare(b, n)
		b.StartTimer()
		start = time.Now()
		deleted, err := be.CleanExpiredRefreshTokens(ctx, purgeAt.Sub(keptMonth))
		c := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if deleted != int64(n) {
			b.Fatalf("CleanExpiredRefreshTokens deleted %d, want %d", deleted, n)
		}
		if left := count(b, admin); left != keptTokens {
			b.Fatalf("%d tokens after CleanExpiredRefreshTokens, want %d", left, keptTokens)
		}
		cleanTime += c
		be.Close()
	}
	drop := dropTime.Seconds() / float64(b.N)
	clean := cleanTime.Seconds() / float64(b.N)
	b.ReportMetric(drop, "drop-s")
	b.ReportMetric(clean, "clean-s")
	b.ReportMetric(clean/drop, "ratio")
	fmt.Fprintf(os.Stdout, "purgebench: purge one month of %d tokens: DROP PARTITION %.3f s, CleanExpiredRefreshTokens (batches of %d) %.3f s, ratio %.0fx\n",
		n, drop, backend.DefaultCleanupBatchSize, clean, clean/drop)
}
