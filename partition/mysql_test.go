package partition

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/mattn/go-sqlite3" // SQLite driver, for the "not MySQL" case

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
	"github.com/authdb/authdb/internal/testdb"
)

// diracxRefreshTokens is RefreshTokens exactly as DiracX creates it on
// MySQL/MariaDB (../shared/diracx-ddl/mysql.sql), one statement per entry.
var diracxRefreshTokens = []string{
	"CREATE TABLE `RefreshTokens` (\n" +
		"\t`JTI` CHAR(32) NOT NULL,\n" +
		"\t`Status` VARCHAR(16) NOT NULL DEFAULT 'CREATED',\n" +
		"\t`Scope` VARCHAR(1024) NOT NULL,\n" +
		"\t`Sub` VARCHAR(256) NOT NULL,\n" +
		"\tPRIMARY KEY (`JTI`)\n" +
		")",
	"CREATE INDEX `ix_RefreshTokens_Sub` ON `RefreshTokens` (`Sub`)",
	"CREATE INDEX `index_status_sub` ON `RefreshTokens` (`Status`, `Sub`)",
}

// testNow is "now" of the set-up in these tests: partitions p_2026_11 to p_2028_10.
var testNow = time.Date(2026, time.November, 29, 18, 0, 0, 0, time.UTC)

// newMySQL returns a handle on a fresh MariaDB/MySQL database holding an
// empty, unpartitioned DiracX RefreshTokens table.
func newMySQL(t testing.TB) *sql.DB {
	t.Helper()
	db, err := testdb.AdminDB(testdb.NewDatabase(t, testdb.MySQL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range diracxRefreshTokens {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return db
}

// jtiAt returns a random UUIDv7 whose timestamp is at (crypto/rand.Read
// never fails; it is safe in any goroutine).
func jtiAt(at time.Time) uuid.UUID {
	id := backend.LowestUUIDv7(at)
	var r [9]byte
	_, _ = rand.Read(r[:])
	id[7] = r[0]
	copy(id[8:], r[1:])
	id[6] = 0x70 | id[6]&0x0f
	id[8] = 0x80 | id[8]&0x3f
	return id
}

// insertTokens inserts tokens with raw SQL, as another service would.
func insertTokens(t testing.TB, db *sql.DB, jtis ...uuid.UUID) {
	t.Helper()
	if err := insertTokensErr(context.Background(), db, jtis...); err != nil {
		t.Fatal(err)
	}
}

func insertTokensErr(ctx context.Context, db *sql.DB, jtis ...uuid.UUID) error {
	if len(jtis) == 0 {
		return nil
	}
	var b strings.Builder
	args := make([]any, 0, len(jtis))
	b.WriteString("INSERT INTO `RefreshTokens` (`JTI`, `Status`, `Scope`, `Sub`) VALUES ")
	for i, id := range jtis {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, 'CREATED', 'openid', 'alice')")
		args = append(args, backend.HexJTI(id))
	}
	_, err := db.ExecContext(ctx, b.String(), args...)
	return err
}

type partRow struct{ name, description string }

// partitions reads information_schema.partitions for RefreshTokens; an
// unpartitioned table gives nil.
func partitions(t testing.TB, db *sql.DB) []partRow {
	t.Helper()
	rows, err := db.Query(`SELECT PARTITION_NAME, PARTITION_DESCRIPTION FROM information_schema.PARTITIONS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'RefreshTokens' ORDER BY PARTITION_ORDINAL_POSITION`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []partRow
	for rows.Next() {
		var name, desc sql.NullString
		if err := rows.Scan(&name, &desc); err != nil {
			t.Fatal(err)
		}
		if name.Valid {
			out = append(out, partRow{name.String, desc.String})
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantPartitions checks that the partitions are exactly the months first..last
// with their bounds, then p_future.
func wantPartitions(t testing.TB, db *sql.DB, first, last time.Time) {
	t.Helper()
	got := partitions(t, db)
	months := monthRange(first, last)
	if len(got) != len(months)+1 {
		t.Fatalf("%d partitions %v, want %d (%s..%s and p_future)", len(got), got, len(months)+1, Name(first), Name(last))
	}
	for i, m := range months {
		if got[i].name != Name(m) {
			t.Fatalf("partition %d is %s, want %s", i, got[i].name, Name(m))
		}
		bound, err := uuid.Parse(strings.Trim(got[i].description, "'"))
		if err != nil {
			t.Fatalf("partition %s bound %q: %v", got[i].name, got[i].description, err)
		}
		next := m.AddDate(0, 1, 0)
		if !backend.IsUUIDv7(bound) || !backend.UUIDv7Time(bound).Equal(next) ||
			!bytes.Equal(bound[9:], make([]byte, 7)) || bound[6] != 0x70 || bound[7] != 0 || bound[8] != 0x80 ||
			got[i].description != "'"+strings.ToLower(strings.Trim(got[i].description, "'"))+"'" {
			t.Fatalf("partition %s bound %s, want the lowest UUIDv7 of %v in lowercase hex", got[i].name, got[i].description, next)
		}
	}
	if f := got[len(got)-1]; f.name != "p_future" || f.description != "MAXVALUE" {
		t.Fatalf("last partition %v, want p_future MAXVALUE", f)
	}
}

// inPartition returns the JTIs stored in partition p.
func inPartition(t testing.TB, db *sql.DB, p string) []string {
	t.Helper()
	rows, err := db.Query("SELECT `JTI` FROM `RefreshTokens` PARTITION (" + p + ") ORDER BY `JTI`")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func countTokens(t testing.TB, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM `RefreshTokens`").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func hexes(ids ...uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = backend.HexJTI(id)
	}
	slices.Sort(out)
	return out
}

func bufferLogger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func TestSetupCreatesMonthlyPartitions(t *testing.T) {
	db := newMySQL(t)
	ctx := context.Background()
	logger, logs := bufferLogger()

	created, err := Setup(ctx, db, testNow, logger)
	if err != nil || !created {
		t.Fatalf("Setup = %v, %v; want true, nil", created, err)
	}
	wantPartitions(t, db, month(2026, time.November), month(2028, time.October))
	if got := len(partitions(t, db)); got != 25 {
		t.Fatalf("%d partitions, want 25", got)
	}

	// Idempotent: a second set-up (even a month later) changes nothing.
	created, err = Setup(ctx, db, testNow.AddDate(0, 1, 0), logger)
	if err != nil || created {
		t.Fatalf("second Setup = %v, %v; want false, nil", created, err)
	}
	wantPartitions(t, db, month(2026, time.November), month(2028, time.October))
	if strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("unexpected warning: %s", logs)
	}
}

func TestSetupLeavesNonEmptyTableAlone(t *testing.T) {
	db := newMySQL(t)
	ctx := context.Background()
	insertTokens(t, db, jtiAt(testNow))
	logger, logs := bufferLogger()

	created, err := Setup(ctx, db, testNow, logger)
	if err != nil || created {
		t.Fatalf("Setup = %v, %v; want false, nil", created, err)
	}
	if p := partitions(t, db); p != nil {
		t.Fatalf("table was partitioned: %v", p)
	}
	stmt := SetupStatement(testNow)
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, fmt.Sprintf("statement=%q", stmt)) {
		t.Fatalf("want a warning carrying %q, got %s", stmt, out)
	}

	// Maintenance refuses an unpartitioned table, saying how to partition it.
	_, err = Maintain(ctx, db, testNow, 12, 12)
	if !errors.Is(err, backend.ErrUnsupported) || !strings.Contains(err.Error(), "not partitioned") || !strings.Contains(err.Error(), stmt) {
		t.Fatalf("Maintain on an unpartitioned table: %v; want ErrUnsupported naming the statement", err)
	}

	// The statement the warning prints works, and then Setup is a no-op.
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("the printed statement fails: %v", err)
	}
	wantPartitions(t, db, month(2026, time.November), month(2028, time.October))
	if n := countTokens(t, db); n != 1 {
		t.Fatalf("%d tokens after partitioning, want 1", n)
	}
	if created, err := Setup(ctx, db, testNow, logger); err != nil || created {
		t.Fatalf("Setup after the manual statement = %v, %v; want false, nil", created, err)
	}
}

func TestSetupMissingTable(t *testing.T) {
	db, err := testdb.AdminDB(testdb.NewDatabase(t, testdb.MySQL))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Setup(context.Background(), db, testNow, nil); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Setup without RefreshTokens: %v, want a not-found error", err)
	}
}

// noPause paces maintenance statements back to back (DefaultPacing's lock
// wait), for the tests that are not about pacing.
var noPause = Pacing{LockWait: time.Second}

func TestMaintain(t *testing.T) {
	db := newMySQL(t)
	ctx := context.Background()
	if _, err := Setup(ctx, db, testNow, nil); err != nil {
		t.Fatal(err)
	}

	// Tokens of several months, each in its month's partition; a token older
	// than the first partition lands in it, one beyond the last in p_future.
	older := jtiAt(time.Date(2026, time.June, 3, 0, 0, 0, 0, time.UTC))
	nov26 := jtiAt(time.Date(2026, time.November, 30, 23, 59, 59, 999e6, time.UTC))
	dec26 := jtiAt(month(2026, time.December))
	jan27 := jtiAt(time.Date(2027, time.January, 15, 0, 0, 0, 0, time.UTC))
	oct28 := jtiAt(time.Date(2028, time.October, 31, 0, 0, 0, 0, time.UTC))
	nov28 := jtiAt(time.Date(2028, time.November, 2, 0, 0, 0, 0, time.UTC))
	feb29 := jtiAt(time.Date(2029, time.February, 2, 0, 0, 0, 0, time.UTC))
	insertTokens(t, db, older, nov26, dec26, jan27, oct28, nov28, feb29)
	for p, want := range map[string][]string{
		"p_2026_11": hexes(older, nov26),
		"p_2026_12": hexes(dec26),
		"p_2027_1":  hexes(jan27),
		"p_2027_2":  nil,
		"p_2028_10": hexes(oct28),
		"p_future":  hexes(nov28, feb29),
	} {
		if got := inPartition(t, db, p); !slices.Equal(got, want) {
			t.Fatalf("partition %s holds %v, want %v", p, got, want)
		}
	}

	// 14 months later, 12 months of retention and 12 ahead: the horizon is
	// 2027-01-29 18:00, so November and December 2026 go; partitions must
	// reach January 2029.
	later := AddMonths(testNow, 14)
	if later != time.Date(2028, time.January, 29, 18, 0, 0, 0, time.UTC) {
		t.Fatalf("later = %v", later)
	}
	plan, err := PlanMaintenance(ctx, db, later, 12, 12)
	if err != nil {
		t.Fatal(err)
	}
	wantExisting := monthRange(month(2026, time.November), month(2028, time.October))
	wantAdded := monthRange(month(2028, time.November), month(2029, time.January))
	wantDropped := monthRange(month(2026, time.November), month(2026, time.December))
	checkReport := func(what string, r backend.PartitionReport, existing, added, dropped []time.Time) {
		t.Helper()
		if names(r.Existing) != names(existing) || names(r.Added) != names(added) || names(r.Dropped) != names(dropped) {
			t.Fatalf("%s: existing %q, added %q, dropped %q; want %q, %q, %q", what,
				names(r.Existing), names(r.Added), names(r.Dropped), names(existing), names(added), names(dropped))
		}
	}
	checkReport("PlanMaintenance", plan, wantExisting, wantAdded, wantDropped)
	// The plan changed nothing.
	wantPartitions(t, db, month(2026, time.November), month(2028, time.October))
	if n := countTokens(t, db); n != 7 {
		t.Fatalf("%d tokens after PlanMaintenance, want 7", n)
	}

	rep, err := MaintainPaced(ctx, db, later, 12, 12, noPause)
	if err != nil {
		t.Fatal(err)
	}
	checkReport("Maintain", rep, wantExisting, wantAdded, wantDropped)
	wantPartitions(t, db, month(2027, time.January), month(2029, time.January))
	for p, want := range map[string][]string{
		"p_2027_1":  hexes(jan27),
		"p_2028_10": hexes(oct28),
		"p_2028_11": hexes(nov28),
		"p_2029_1":  nil,
		"p_future":  hexes(feb29),
	} {
		if got := inPartition(t, db, p); !slices.Equal(got, want) {
			t.Fatalf("after maintenance, partition %s holds %v, want %v", p, got, want)
		}
	}
	var left []string
	rows, err := db.Query("SELECT `JTI` FROM `RefreshTokens` ORDER BY `JTI`")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		left = append(left, s)
	}
	rows.Close()
	if want := hexes(jan27, oct28, nov28, feb29); !slices.Equal(left, want) {
		t.Fatalf("tokens left %v, want %v (the dropped months' tokens gone, the others kept)", left, want)
	}

	// A second run is a no-op.
	rep, err = MaintainPaced(ctx, db, later, 12, 12, noPause)
	if err != nil {
		t.Fatal(err)
	}
	checkReport("second Maintain", rep, monthRange(month(2027, time.January), month(2029, time.January)), nil, nil)
	wantPartitions(t, db, month(2027, time.January), month(2029, time.January))
	if n := countTokens(t, db); n != 4 {
		t.Fatalf("%d tokens after the second run, want 4", n)
	}
}

func TestMaintainArguments(t *testing.T) {
	db := newMySQL(t)
	ctx := context.Background()
	for _, c := range [][2]int{{-1, 12}, {12, -1}} {
		if _, err := Maintain(ctx, db, testNow, c[0], c[1]); !errors.Is(err, backend.ErrInvalidInput) {
			t.Errorf("Maintain(%d, %d): %v, want ErrInvalidInput", c[0], c[1], err)
		}
	}
}

func TestMaintainRefusesForeignLayout(t *testing.T) {
	db := newMySQL(t)
	ctx := context.Background()
	const foreign = "ALTER TABLE `RefreshTokens` PARTITION BY RANGE COLUMNS (`JTI`) " +
		"(PARTITION old VALUES LESS THAN ('8'), PARTITION p_future VALUES LESS THAN (MAXVALUE))"
	if _, err := db.Exec(foreign); err != nil {
		t.Fatal(err)
	}
	before := partitions(t, db)
	for _, f := range []func(context.Context, *sql.DB, time.Time, int, int) (backend.PartitionReport, error){PlanMaintenance, Maintain} {
		_, err := f(ctx, db, testNow, 12, 12)
		if err == nil || errors.Is(err, backend.ErrUnsupported) || !strings.Contains(err.Error(), `"old"`) {
			t.Fatalf("maintenance of a foreign layout: %v; want an error naming the partition", err)
		}
	}
	if after := partitions(t, db); !slices.Equal(before, after) {
		t.Fatalf("partitions changed: %v -> %v", before, after)
	}
	// Set-up leaves it alone, with a warning.
	logger, logs := bufferLogger()
	if created, err := Setup(ctx, db, testNow, logger); err != nil || created {
		t.Fatalf("Setup = %v, %v; want false, nil", created, err)
	}
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("no warning about the foreign layout: %s", logs)
	}
}

// TestMaintainWithConcurrentInserts inserts tokens into kept months from
// several goroutines while maintenance reorganizes and drops partitions:
// every insert succeeds and every token is there afterwards.
func TestMaintainWithConcurrentInserts(t *testing.T) {
	db := newMySQL(t)
	ctx := context.Background()
	if _, err := Setup(ctx, db, testNow, nil); err != nil {
		t.Fatal(err)
	}
	later := AddMonths(testNow, 14)
	// Tokens in the dropped months, and some in p_future to be reorganized.
	insertTokens(t, db, jtiAt(month(2026, time.November)), jtiAt(month(2026, time.December)))
	var future []uuid.UUID
	for i := range 5000 {
		future = append(future, jtiAt(month(2028, time.November).Add(time.Duration(i)*time.Minute)))
	}
	for c := range slices.Chunk(future, 1000) {
		insertTokens(t, db, c...)
	}

	const workers, minPerWorker = 4, 50
	var inserted atomic.Int64
	done := make(chan struct{})
	errs := make(chan error, workers)
	var wg, running sync.WaitGroup
	running.Add(workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started := false
			// Current month (2028-01), the month after the old last partition
			// (2028-11, in p_future until the split) and beyond (p_future).
			bases := []time.Time{later, month(2028, time.November), month(2029, time.March)}
			for i := 0; ; i++ {
				select {
				case <-done:
					if i >= minPerWorker {
						errs <- nil
						return
					}
				default:
				}
				at := bases[(i+w)%len(bases)].Add(time.Duration(i) * time.Second)
				err := insertTokensErr(ctx, db, jtiAt(at))
				for attempt := 0; sqldialect.IsTransient(err) && attempt < 5; attempt++ {
					// A transient refusal, 1615 (ER_NEED_REPREPARE: the
					// table's definition changed under the server's
					// re-prepare) among them: run it again, as authdb's
					// backends do.
					err = insertTokensErr(ctx, db, jtiAt(at))
				}
				if err != nil {
					errs <- err
					if !started {
						running.Done()
					}
					return
				}
				inserted.Add(1)
				if !started && i >= 10 {
					started = true
					running.Done()
				}
			}
		}()
	}
	running.Wait() // every worker is inserting
	before := inserted.Load()
	rep, err := MaintainPaced(ctx, db, later, 12, 12, noPause)
	during := inserted.Load() - before
	close(done)
	wg.Wait()
	close(errs)
	for e := range errs {
		if e != nil {
			t.Fatalf("concurrent insert: %v", e)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tokens inserted while Maintain ran, %d in all", during, inserted.Load())
	if len(rep.Added) != 3 || len(rep.Dropped) != 2 {
		t.Fatalf("report %+v: want 3 added, 2 dropped", rep)
	}
	want := int(inserted.Load()) + len(future)
	if n := countTokens(t, db); n != want {
		t.Fatalf("%d tokens after maintenance, want %d (%d inserted concurrently)", n, want, inserted.Load())
	}
	wantPartitions(t, db, month(2027, time.January), month(2029, time.January))
}

// TestNotMySQL checks that SQLite and PostgreSQL get ErrUnsupported.
func TestNotMySQL(t *testing.T) {
	ctx := context.Background()
	sqlite, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "authdb.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqlite.Close()
	if _, err := sqlite.Exec("CREATE TABLE RefreshTokens (JTI CHAR(32) PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	dbs := map[string]*sql.DB{"sqlite": sqlite}
	if testing.Short() {
		t.Log("short: PostgreSQL skipped")
	} else {
		pg, err := testdb.AdminDB(testdb.NewDatabase(t, testdb.Postgres))
		if err != nil {
			t.Fatal(err)
		}
		defer pg.Close()
		dbs["postgres"] = pg
	}
	for name, db := range dbs {
		if _, err := Setup(ctx, db, testNow, nil); !errors.Is(err, backend.ErrUnsupported) {
			t.Errorf("%s: Setup: %v, want ErrUnsupported", name, err)
		}
		if _, err := Maintain(ctx, db, testNow, 12, 12); !errors.Is(err, backend.ErrUnsupported) {
			t.Errorf("%s: Maintain: %v, want ErrUnsupported", name, err)
		}
		if _, err := PlanMaintenance(ctx, db, testNow, 12, 12); !errors.Is(err, backend.ErrUnsupported) {
			t.Errorf("%s: PlanMaintenance: %v, want ErrUnsupported", name, err)
		}
	}
}
