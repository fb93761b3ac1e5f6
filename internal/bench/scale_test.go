package bench

import (
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/internal/bench/baseline"
	"github.com/authdb/authdb/internal/testdb"
	"github.com/authdb/authdb/internal/testserver"
	"github.com/authdb/authdb/partition"
)

var (
	flagScale        = flag.Bool("scale", false, "TestScaleTable: measure and print the scale tables (make bench-scale)")
	flagScaleParts   = flag.String("scale.parts", "curve,maint,growth,parts", "scale tables to measure: curve, maint, growth, parts")
	flagScaleEngines = flag.String("scale.engines", "memory,sqlite,postgres,mariadb", "engines of the concurrency curve (maint and growth: the SQL servers among them)")
	flagScaleG       = flag.String("scale.goroutines", "1,4,16,64,256", "concurrency levels of the curve")
	flagScaleKinds   = flag.String("scale.ops", "", "regexp: only the curve's operations whose name matches")
	flagScalePool    = flag.Int("scale.pool", 16, "max open connections of both pools (0: each's default, unbounded)")
	flagScaleRound   = flag.Duration("scale.round", DefaultCurveConfig.PerRound, "curve: timed time per implementation and round")
	flagScaleRounds  = flag.Int("scale.rounds", DefaultCurveConfig.Rounds, "curve: interleaved rounds per point")
	flagScaleExpired = flag.Int64("scale.expired", 1_000_000, "maint: expired tokens, and expired flows (half device, half authorization), to clean up")
	flagScaleCleanup = flag.String("scale.cleanup", "default", "maint: clean-up settings batch:pause, comma-separated; default: the backend's defaults")
	flagScaleQuiet   = flag.Duration("scale.quiet", 3*time.Second, "maint: quiet load before and after the job")
	flagScaleJobs    = flag.String("scale.jobs", "tokens,flows,partitions", "maint: the jobs to run (partitions: MariaDB only)")
	flagScalePPause  = flag.String("scale.partpause", "default", "maint: partition maintenance pauses between statements, comma-separated Go durations; default: the backend's")
	flagScaleSlice   = flag.Duration("scale.slice", 2*time.Second, "maint: clean-ups run in windows of this length, each followed by half as long without (0: in one go)")
	flagScaleSizes   = flag.String("scale.sizes", "10000,1000000", "growth: token counts")
	flagScaleBudget  = flag.Duration("scale.budget", 500*time.Millisecond, "growth: timed time per operation, size and implementation")
	flagScaleSettle  = flag.Duration("scale.settle", 2*time.Minute, "growth: how long to wait, at most, for MariaDB's dirty pages to fall under 1 % after a load (0: do not wait)")
	flagScaleCache   = flag.String("scale.cache", "", "growth: run on private PostgreSQL and MariaDB servers (durable settings) whose buffer pools have this size, e.g. 4GB (empty: the shared servers as configured)")
	flagScaleOut     = flag.String("scale.out", "", "directory for curve.csv and timeline.csv (the plots' input: go run ./internal/bench/plot)")
)

func intList(tb testing.TB, s string) []int64 {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			tb.Fatalf("bad number %q: %v", f, err)
		}
		out = append(out, n)
	}
	return out
}

func hasJob(j string) bool {
	for _, x := range strings.Split(*flagScaleJobs, ",") {
		if strings.TrimSpace(x) == j {
			return true
		}
	}
	return false
}

func hasPart(p string) bool {
	for _, f := range strings.Split(*flagScaleParts, ",") {
		if f == p {
			return true
		}
	}
	return false
}

// sqlServers returns the SQL engines of -scale.engines (withSQLite: SQLite
// included).
func sqlServers(withSQLite bool) []string {
	var out []string
	for _, e := range strings.Split(*flagScaleEngines, ",") {
		if e == Postgres || e == MySQL || (withSQLite && e == SQLite) {
			out = append(out, e)
		}
	}
	return out
}

func outFile(t *testing.T, name string) *csv.Writer {
	if *flagScaleOut == "" {
		return nil
	}
	if err := os.MkdirAll(*flagScaleOut, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(*flagScaleOut, name))
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	t.Cleanup(func() {
		w.Flush()
		f.Close()
	})
	return w
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

// TestScaleTable measures the scale tables (issue 16) and prints them on
// stdout: throughput by concurrency, latency under maintenance, growth
// and partition probes. It runs only with -scale (make bench-scale).
func TestScaleTable(t *testing.T) {
	if !*flagScale {
		t.Skip("run with -scale (make bench-scale)")
	}
	ctx := context.Background()
	head, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("machine: %d CPUs, GOMAXPROCS %d, load average at start %s", numCPU(), gomaxprocs(), head)
	if hasPart("curve") {
		scaleCurve(t, ctx)
	}
	if hasPart("maint") {
		scaleMaint(t, ctx)
	}
	if hasPart("growth") {
		scaleGrowth(t, ctx)
	}
	if hasPart("parts") {
		scaleParts(t, ctx)
	}
}

// ---- 1. throughput by concurrency ----

func scaleCurve(t *testing.T, ctx context.Context) {
	cfg := CurveConfig{Rounds: *flagScaleRounds, PerRound: *flagScaleRound}
	var kinds []LoadKind
	only, err := regexp.Compile(*flagScaleKinds)
	if err != nil {
		t.Fatalf("-scale.ops: %v", err)
	}
	for _, k := range LoadKinds {
		if only.MatchString(string(k)) {
			kinds = append(kinds, k)
		}
	}
	w := outFile(t, "curve.csv")
	if w != nil {
		w.Write([]string{"engine", "op", "impl", "goroutines", "ops_per_s", "p50_us", "p99_us", "p999_us", "failed"})
	}
	var pts []CurvePoint
	for _, engine := range strings.Split(*flagScaleEngines, ",") {
		env := NewEnvConfig(t, engine, baseline.Prepared, EnvConfig{MaxOpenConns: *flagScalePool})
		for _, kind := range kinds {
			for _, g := range intList(t, *flagScaleG) {
				if engine == Memory {
					// A fresh store per point, as the store-per-goroutine
					// form has: the shared store would otherwise hold every
					// earlier point's tokens (millions).
					env = NewEnvConfig(t, engine, baseline.Prepared, EnvConfig{MaxOpenConns: *flagScalePool})
				}
				pt, err := MeasurePoint(ctx, env, kind, int(g), cfg)
				if err != nil {
					t.Fatal(err)
				}
				pts = append(pts, pt)
				progress("curve %-8s %-20s %3d goroutines: %s ratio %.2f (%.1fs)", engine, kind, g, rateString(pt.Stats[0].Rate()), pt.Ratio, pt.Duration.Seconds())
				if w != nil {
					for k, st := range pt.Stats {
						w.Write([]string{engine, string(kind), pt.Impls[k], strconv.Itoa(int(g)), fmt.Sprintf("%.0f", st.Rate()),
							usf(Pct(st.Lat, 0.5)), usf(Pct(st.Lat, 0.99)), usf(Pct(st.Lat, 0.999)), strconv.Itoa(st.Failed)})
					}
					w.Flush()
				}
			}
		}
	}
	if strings.Contains(*flagScaleEngines, Memory) {
		pts = append(pts, memoryShards(t, ctx, kinds, cfg, w)...)
	}
	fmt.Printf("\n## Throughput by concurrency (pool: max %d open, %d idle, both implementations; %d rounds x %v each, interleaved)\n\n",
		*flagScalePool, PoolIdle, cfg.Rounds, cfg.PerRound)
	rows := [][]string{{"engine", "operation", "goroutines", "authdb ops/s", "baseline ops/s", "ratio", "rounds: range, authdb ahead", "authdb p50/p99/p999 µs", "baseline p50/p99/p999 µs", "CPU busy", "client CPU µs/call", "server, per call", "wait states (sampled)"}}
	for _, pt := range pts {
		a := pt.Stats[0]
		base, ratio, spread, bl, cpu := "-", "-", "-", "-", usf1(a.CPUPerCall())
		if len(pt.Stats) > 1 {
			b := pt.Stats[1]
			base, ratio, bl = rateString(b.Rate()), fmt.Sprintf("%.2f", pt.Ratio), pctString(b)
			spread = fmt.Sprintf("%.2f-%.2f, %d of %d", pt.RatioLo, pt.RatioHi, pt.Ahead, pt.Rounds)
			cpu += " / " + usf1(b.CPUPerCall())
		}
		op := string(pt.Kind)
		for k, st := range pt.Stats {
			if st.Failed > 0 {
				op += fmt.Sprintf(" [%s: %d of %d failed: %v]", pt.Impls[k], st.Failed, st.Calls, st.FirstErr)
			}
		}
		rows = append(rows, []string{pt.Engine, op, strconv.Itoa(pt.Goroutines), rateString(a.Rate()), base, ratio, spread, pctString(a), bl,
			fmt.Sprintf("%.0f%%", 100*pt.CPUBusy), cpu, serverPerCall(pt), FormatWaits(pt.Waits, 2)})
	}
	fmt.Print(markdown(rows, 3))
}

// memoryShards measures rotations and inserts on g independent memory
// stores, one per goroutine: what sharding the memory backend's one lock
// could at best give.
func memoryShards(t *testing.T, ctx context.Context, kinds []LoadKind, cfg CurveConfig, w *csv.Writer) []CurvePoint {
	const engine = "memory, a store per goroutine"
	var pts []CurvePoint
	for _, kind := range kinds {
		if kind == LoadConsume {
			continue
		}
		for _, g := range intList(t, *flagScaleG) {
			shards := make([]backend.Backend, g)
			for i := range shards {
				m := memory.New()
				t.Cleanup(func() { m.Close() })
				shards[i] = m
			}
			env := &Env{Engine: engine, Authdb: &Impl{Name: "authdb", B: shards[0], Shards: shards, Clock: &Clock{}}}
			pt, err := MeasurePoint(ctx, env, kind, int(g), cfg)
			if err != nil {
				t.Fatal(err)
			}
			pts = append(pts, pt)
			progress("curve %-8s %-20s %3d goroutines: %s", engine, kind, g, rateString(pt.Stats[0].Rate()))
			if w != nil {
				st := pt.Stats[0]
				w.Write([]string{"memory-sharded", string(kind), "authdb", strconv.Itoa(int(g)), fmt.Sprintf("%.0f", st.Rate()),
					usf(Pct(st.Lat, 0.5)), usf(Pct(st.Lat, 0.99)), usf(Pct(st.Lat, 0.999)), strconv.Itoa(st.Failed)})
				w.Flush()
			}
		}
	}
	return pts
}

func rateString(r float64) string { return fmt.Sprintf("%.0f", r) }

func usf(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func usf1(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }

func pctString(s LoadStats) string {
	return usf(Pct(s.Lat, 0.5)) + "/" + usf(Pct(s.Lat, 0.99)) + "/" + usf(Pct(s.Lat, 0.999))
}

// serverPerCall prints the server counters that explain the curve, per
// call of both implementations.
func serverPerCall(pt CurvePoint) string {
	calls := 0.0
	for _, st := range pt.Stats {
		calls += float64(st.Calls)
	}
	if pt.Server == nil || calls == 0 {
		return fmt.Sprintf("bench process %.2f cores", pt.ProcCPU)
	}
	per := func(k string) float64 { return pt.Server[k] / calls }
	if _, ok := pt.Server["wal_bytes"]; ok {
		return fmt.Sprintf("WAL %.0f B", per("wal_bytes"))
	}
	return fmt.Sprintf("fsyncs %.2f, log writes %.2f, row lock waits %.3f", per("Innodb_data_fsyncs"), per("Innodb_log_writes"), per("Innodb_row_lock_waits"))
}

// markdown renders rows as a Markdown table, the first left columns
// left-aligned.
func markdown(rows [][]string, left int) string {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(r []string) {
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i < left {
				b.WriteString("| " + c + pad + " ")
			} else {
				b.WriteString("| " + pad + c + " ")
			}
		}
		b.WriteString("|\n")
	}
	line(rows[0])
	for i, w := range width {
		if i < left {
			b.WriteString("|" + strings.Repeat("-", w+2))
		} else {
			b.WriteString("|" + strings.Repeat("-", w+1) + ":")
		}
	}
	b.WriteString("|\n")
	for _, r := range rows[1:] {
		line(r)
	}
	return b.String()
}

// ---- 2. latency under maintenance ----

// expiredAge is the age of the rows the clean-ups delete; cleanRetention
// the retention they run with (foreground rows are never that old).
const (
	expiredAge     = 40 * 24 * time.Hour
	cleanRetention = 30 * 24 * time.Hour
)

type cleanSetting struct {
	batch int
	pause time.Duration
	name  string
}

func cleanSettings(tb testing.TB) []cleanSetting {
	var out []cleanSetting
	for _, f := range strings.Split(*flagScaleCleanup, ",") {
		if f == "default" {
			out = append(out, cleanSetting{backend.DefaultCleanupBatchSize, backend.DefaultCleanupPause,
				fmt.Sprintf("default %d/%v", backend.DefaultCleanupBatchSize, backend.DefaultCleanupPause)})
			continue
		}
		b, p, _ := strings.Cut(f, ":")
		n, err := strconv.Atoi(b)
		if err != nil {
			tb.Fatalf("-scale.cleanup %q: %v", f, err)
		}
		d := time.Duration(0)
		if p != "" && p != "0" {
			if d, err = time.ParseDuration(p); err != nil {
				tb.Fatalf("-scale.cleanup %q: %v", f, err)
			}
		}
		out = append(out, cleanSetting{n, d, fmt.Sprintf("%d/%v", n, d)})
	}
	return out
}

// janitor opens a second authdb backend on e's database with the clean-up
// setting, as an operator's clean-up process would.
func janitor(t *testing.T, ctx context.Context, e *Env, s cleanSetting, gate *Gate) *sqlbackend.Backend {
	b, err := sqlbackend.Open(ctx, e.URL, backend.WithoutMigration(), backend.WithCleanupBatchSize(s.batch), backend.WithCleanupPause(s.pause),
		backend.WithCleanupProgress(gate.Batch))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func scaleMaint(t *testing.T, ctx context.Context) {
	var results []MaintResult
	tw := outFile(t, "timeline.csv")
	if tw != nil {
		tw.Write([]string{"engine", "job", "setting", "op", "t_ms", "p99_us", "busy_ms"})
	}
	n := *flagScaleExpired
	record := func(r MaintResult) {
		results = append(results, r)
		progress("maint %-8s %-10s %-18s %d rows in %.1fs: p99 x%.2f rotate, x%.2f consume", r.Engine, r.Job, r.Setting, r.Rows,
			r.JobTime.Seconds(), r.P99Ratio(LoadRotate), r.P99Ratio(LoadConsume))
		if tw != nil {
			var busy []string
			for _, iv := range r.Busy {
				busy = append(busy, fmt.Sprintf("%d-%d", iv.From.Milliseconds(), iv.To.Milliseconds()))
			}
			for _, k := range []LoadKind{LoadRotate, LoadConsume} {
				at, p99 := r.Timeline(k, 250*time.Millisecond)
				for i := range at {
					tw.Write([]string{r.Engine, r.Job, r.Setting, string(k), strconv.FormatInt(at[i].Milliseconds(), 10), usf(p99[i]),
						strings.Join(busy, " ")})
				}
			}
			tw.Flush()
		}
	}
	for _, engine := range sqlServers(true) {
		env := NewEnvConfig(t, engine, baseline.Prepared, EnvConfig{MaxOpenConns: *flagScalePool})
		var next int64
		for _, s := range cleanSettings(t) {
			if !hasJob("tokens") && !hasJob("flows") {
				break
			}
			gate := &Gate{}
			jan := janitor(t, ctx, env, s, gate)
			// (a) refresh tokens.
			if hasJob("tokens") {
				loadStart := time.Now()
				ts := TokenSet{BaseMs: time.Now().Add(-expiredAge).UnixMilli(), StepMs: 1, SubPrefix: "expired-"}
				if err := env.GenTokens(ctx, ts, next, next+n); err != nil {
					t.Fatal(err)
				}
				next += n
				progress("maint %s: loaded %d expired tokens in %.1fs", engine, n, time.Since(loadStart).Seconds())
				r, err := RunMaintenance(ctx, env, MaintJob{Name: "tokens", Setting: s.name, Slice: *flagScaleSlice, Gate: gate, Run: func(ctx context.Context) (int64, error) {
					return jan.CleanExpiredRefreshTokens(ctx, cleanRetention)
				}}, *flagScaleQuiet)
				if err != nil {
					t.Fatal(err)
				}
				record(r)
			}
			// (b) flows.
			if !hasJob("flows") {
				continue
			}
			loadStart := time.Now()
			if err := env.GenExpiredFlows(ctx, time.Now().Add(-expiredAge), next, n/2); err != nil {
				t.Fatal(err)
			}
			next += n / 2
			progress("maint %s: loaded %d expired flows in %.1fs", engine, n, time.Since(loadStart).Seconds())
			r, err := RunMaintenance(ctx, env, MaintJob{Name: "flows", Setting: s.name, Slice: *flagScaleSlice, Gate: gate, Run: func(ctx context.Context) (int64, error) {
				d, err := jan.CleanExpiredDeviceFlows(ctx, cleanRetention)
				if err != nil || d == 0 && ctx.Err() != nil {
					return d, err
				}
				a, err := jan.CleanExpiredAuthorizationFlows(ctx, cleanRetention)
				return d + a, err
			}}, *flagScaleQuiet)
			if err != nil {
				t.Fatal(err)
			}
			record(r)
		}
		if engine == MySQL && hasJob("partitions") {
			for _, p := range strings.Split(*flagScalePPause, ",") {
				pause := backend.DefaultPartitionPause
				if p != "default" {
					d, err := time.ParseDuration(p)
					if err != nil {
						t.Fatalf("-scale.partpause %q: %v", p, err)
					}
					pause = d
				}
				record(partitionMaint(t, ctx, n, pause))
			}
		}
	}
	fmt.Printf("\n## Latency under maintenance (%d+%d foreground goroutines rotating+consuming on authdb; quiet: %v before and after the job)\n\n",
		ForegroundRotators, ForegroundConsumers, *flagScaleQuiet)
	rows := [][]string{{"engine", "job", "batch/pause", "rows", "job s (windows)", "rotate p99 quiet µs", "rotate p99 during", "x", "consume p99 quiet µs", "consume p99 during", "x", "failed", "server during job"}}
	for _, r := range results {
		fail := "0"
		if r.Failed > 0 {
			fail = fmt.Sprintf("%d: %v", r.Failed, r.FirstErr)
		}
		rows = append(rows, []string{r.Engine, r.Job, r.Setting, strconv.FormatInt(r.Rows, 10), fmt.Sprintf("%.1f (%d)", r.JobTime.Seconds(), len(r.Busy)),
			usf(Pct(r.Quiet[LoadRotate], 0.99)), usf(Pct(r.During[LoadRotate], 0.99)), fmt.Sprintf("%.2f", r.P99Ratio(LoadRotate)),
			usf(Pct(r.Quiet[LoadConsume], 0.99)), usf(Pct(r.During[LoadConsume], 0.99)), fmt.Sprintf("%.2f", r.P99Ratio(LoadConsume)),
			fail, FormatWaits(r.Waits, 2)})
	}
	fmt.Print(markdown(rows, 3))
}

// partitionMaint runs MariaDB partition maintenance that drops five old
// months holding n tokens in all and adds three: RefreshTokens is
// partitioned from six months ago (partition.Setup with that "now").
func partitionMaint(t *testing.T, ctx context.Context, n int64, pause time.Duration) MaintResult {
	env := NewEnvConfig(t, MySQL, baseline.Prepared, EnvConfig{MaxOpenConns: *flagScalePool, Unpartitioned: true})
	now := time.Now().UTC()
	from := partition.AddMonths(partition.MonthStart(now), -6)
	if _, err := partition.Setup(ctx, env.Admin, from, nil); err != nil {
		t.Fatal(err)
	}
	months := 5
	span := partition.AddMonths(from, months).Sub(from)
	ts := TokenSet{BaseMs: from.UnixMilli(), StepMs: max(1, span.Milliseconds()/n), SubPrefix: "old-"}
	loadStart := time.Now()
	if err := env.GenTokens(ctx, ts, 0, n); err != nil {
		t.Fatal(err)
	}
	progress("maint %s: loaded %d tokens in %d old months in %.1fs", MySQL, n, months, time.Since(loadStart).Seconds())
	jan, err := sqlbackend.Open(ctx, env.URL, backend.WithoutMigration(), backend.WithPartitionPause(pause))
	if err != nil {
		t.Fatal(err)
	}
	defer jan.Close()
	// The tokens of the months the job drops (retention 1 month).
	var dropped int64
	bound := partition.Boundary(partition.AddMonths(partition.MonthStart(now), -1))
	if err := env.Admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM `RefreshTokens` WHERE `JTI`<?", bound).Scan(&dropped); err != nil {
		t.Fatal(err)
	}
	var report backend.PartitionReport
	r, err := RunMaintenance(ctx, env, MaintJob{Name: "partitions", Setting: "retention 1, ahead 20", Run: func(ctx context.Context) (int64, error) {
		var err error
		report, err = jan.MaintainRefreshTokenPartitions(ctx, 1, 20)
		return 0, err
	}}, *flagScaleQuiet)
	if err != nil {
		t.Fatal(err)
	}
	r.Rows = dropped
	r.Setting = fmt.Sprintf("-%d/+%d months, pause %s", len(report.Dropped), len(report.Added), pause)
	return r
}

// ---- 3. growth ----

type growthEnv struct {
	name string
	env  *Env
	ts   TokenSet
	have int64
	// ref holds the smallest size on the same server, measured right
	// after each operation at a larger size: the growth ratio compares
	// two measurements a few seconds apart, not minutes (the server's
	// and machine's drift in between would be part of it).
	ref *growthEnv
}

func growthOps(g *growthEnv) []Op {
	byName := map[string]Op{}
	for _, op := range Ops() {
		byName[op.Name] = op
	}
	random := func(name string, call func(ctx context.Context, im *Impl, jti uuid.UUID) error) Op {
		return Op{Name: name, Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			jtis := make([]uuid.UUID, n)
			for i := range jtis {
				jtis[i] = g.ts.JTI(rand.Int64N(g.have))
			}
			return sequential(n, func(ctx context.Context, i int) error { return call(ctx, im, jtis[i]) }), nil
		}}
	}
	list := listOp("GetUserRefreshTokens(sub)", 0, false)
	list.Once = nil
	return []Op{
		byName["InsertRefreshToken"],
		byName["GetRefreshToken"],
		random("GetRefreshToken (random)", func(ctx context.Context, im *Impl, jti uuid.UUID) error {
			_, err := im.B.GetRefreshToken(ctx, jti)
			return err
		}),
		byName["RotateRefreshToken"],
		random("RevokeRefreshToken (random)", func(ctx context.Context, im *Impl, jti uuid.UUID) error {
			return im.B.RevokeRefreshToken(ctx, jti)
		}),
		list,
	}
}

// listFixture stores the listed subject's tokens (as loadTokens does).
func listFixture(ctx context.Context, e *Env) error {
	base := time.Now().Add(-time.Hour)
	var rows [][]any
	for i := range 2 * ListLive {
		rows = append(rows, []any{e.idArg(JTIAt(base.Add(time.Duration(i) * time.Millisecond))), map[bool]string{true: "CREATED", false: "REVOKED"}[i%2 == 0], scope, ListSubject})
	}
	return e.BulkInsert(ctx, "RefreshTokens", []string{"JTI", "Status", "Scope", "Sub"}, rows)
}

func scaleGrowth(t *testing.T, ctx context.Context) {
	if *flagScaleCache != "" {
		sizedServers(t, *flagScaleCache)
	}
	var envs []*growthEnv
	newGrowth := func(name, engine string, ts TokenSet, c EnvConfig) *growthEnv {
		return &growthEnv{name: name, ts: ts, env: NewEnvConfig(t, engine, baseline.Prepared, c),
			ref: &growthEnv{name: name + " (reference)", ts: ts, env: NewEnvConfig(t, engine, baseline.Prepared, c)}}
	}
	for _, engine := range sqlServers(false) {
		ts := TokenSet{BaseMs: time.Now().Add(-7 * 24 * time.Hour).UnixMilli(), StepMs: 50, SubPrefix: "bulk-subject-"}
		if engine == MySQL {
			envs = append(envs, newGrowth("mariadb (partitioned)", engine, ts, EnvConfig{}),
				newGrowth("mariadb (unpartitioned)", engine, ts, EnvConfig{Unpartitioned: true}))
			continue
		}
		envs = append(envs, newGrowth(engine, engine, ts, EnvConfig{}))
	}
	sizes := intList(t, *flagScaleSizes)
	cfg := DefaultConfig
	cfg.Budget = *flagScaleBudget
	load := func(g *growthEnv, size int64) {
		start := time.Now()
		if err := g.env.GenTokens(ctx, g.ts, g.have, size); err != nil {
			t.Fatal(err)
		}
		g.have = size
		if err := g.env.analyze(ctx); err != nil {
			t.Fatal(err)
		}
		loaded := time.Since(start)
		settled, err := g.env.settle(ctx, *flagScaleCache != "", *flagScaleSettle)
		if err != nil {
			t.Fatal(err)
		}
		progress("growth %s: %d tokens loaded (%.1fs), settled (%s)", g.name, size, loaded.Seconds(), settled)
	}
	type key struct {
		env, op string
		size    int64
	}
	res := map[key]Result{}
	var opNames []string
	for _, g := range envs {
		for _, e := range []*growthEnv{g, g.ref} {
			if err := listFixture(ctx, e.env); err != nil {
				t.Fatal(err)
			}
		}
		load(g.ref, sizes[0])
		for _, size := range sizes {
			if size > g.have {
				load(g, size)
			}
			refOps := growthOps(g.ref)
			for i, op := range growthOps(g) {
				r, err := Run(ctx, g.env, op, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if len(opNames) < len(refOps) {
					opNames = append(opNames, op.Name)
				}
				res[key{g.name, op.Name, size}] = r
				msg := fmt.Sprintf("growth %s %d %s: %s µs (ratio %.2f)", g.name, size, op.Name, us(r.Impls[0].PerOp), r.Ratio())
				if size > sizes[0] {
					rr, err := Run(ctx, g.ref.env, refOps[i], cfg)
					if err != nil {
						t.Fatal(err)
					}
					res[key{g.name, op.Name, -size}] = rr
					msg += fmt.Sprintf("; %d tokens just after: %s µs", sizes[0], us(rr.Impls[0].PerOp))
				}
				progress("%s", msg)
			}
		}
	}
	fmt.Printf("\n## Growth: per-operation latency by table size (sequential calls, authdb µs/op, authdb/baseline in brackets; adjacent: over a %s-token table of the same server measured right after)\n\n", humanCount(sizes[0]))
	head := []string{"engine", "operation"}
	for _, s := range sizes {
		head = append(head, humanCount(s))
	}
	last := sizes[len(sizes)-1]
	head = append(head, fmt.Sprintf("%s/%s", humanCount(last), humanCount(sizes[0])),
		fmt.Sprintf("%s/%s adjacent", humanCount(last), humanCount(sizes[0])))
	rows := [][]string{head}
	for _, g := range envs {
		for _, op := range opNames {
			row := []string{g.name, op}
			for _, s := range sizes {
				r := res[key{g.name, op, s}]
				cell := us(r.Impls[0].PerOp) + fmt.Sprintf(" (%.2f)", r.Ratio())
				for _, ir := range r.Impls {
					if ir.Failed > 0 {
						cell += fmt.Sprintf(" [%s %d failed: %v]", ir.Name, ir.Failed, ir.FirstErr)
					}
				}
				row = append(row, cell)
			}
			first, big := res[key{g.name, op, sizes[0]}], res[key{g.name, op, last}]
			row = append(row, fmt.Sprintf("%.2f", float64(big.Impls[0].PerOp)/float64(first.Impls[0].PerOp)))
			adj := "-"
			if ref, ok := res[key{g.name, op, -last}]; ok {
				adj = fmt.Sprintf("%.2f (%s µs)", float64(big.Impls[0].PerOp)/float64(ref.Impls[0].PerOp), us(ref.Impls[0].PerOp))
			}
			row = append(row, adj)
			rows = append(rows, row)
		}
	}
	fmt.Print(markdown(rows, 2))
}

func humanCount(n int64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.FormatInt(n, 10)
}

// sizedServers starts a private PostgreSQL and a private MariaDB with
// durable settings (as the shared servers': fsync and full-page writes on,
// a redo-log flush per commit, doublewrite) and buffer pools of cache, and
// points the growth environments at them (AUTHDB_TEST_*_URL). A token
// service's database is sized so; the shared servers keep their 128 MB.
func sizedServers(t *testing.T, cache string) {
	if os.Getenv(testserver.EnvPrivateServers) != "1" {
		t.Setenv(testserver.EnvPrivateServers, "1")
	}
	testserver.Skip(t, testserver.Postgres)
	testserver.Skip(t, testserver.MariaDB)
	pg := testserver.Start(t, testserver.Postgres, testserver.Config{Args: []string{
		"fsync=on", "full_page_writes=on", "synchronous_commit=on", "shared_buffers=" + cache,
		"max_wal_size=1GB", "logging_collector=off"}})
	my := testserver.Start(t, testserver.MariaDB, testserver.Config{Args: []string{
		"--innodb-buffer-pool-size=" + strings.TrimSuffix(cache, "B"), "--innodb-flush-log-at-trx-commit=1",
		"--innodb-doublewrite=1", "--innodb-log-file-size=96M"}})
	t.Setenv(testdb.EnvPostgres, pg.URL())
	t.Setenv(testdb.EnvMySQL, my.URL())
	fmt.Printf("growth on private servers: PostgreSQL shared_buffers=%s, MariaDB innodb_buffer_pool_size=%s, durable settings\n", cache, cache)
}

// ---- 3b. listing a subject's tokens by partition count ----

// scaleParts lists one subject's tokens on three MariaDB databases holding
// the same tokens in 25, 49 and 97 partitions, call by call in turn
// (authdb and the baseline on each), so that the ratios come from one
// interleaved run.
func scaleParts(t *testing.T, ctx context.Context) {
	if !strings.Contains(*flagScaleEngines, MySQL) {
		return
	}
	ts := TokenSet{BaseMs: time.Now().Add(-24 * time.Hour).UnixMilli(), StepMs: 5, SubPrefix: "bulk-subject-"}
	type target struct {
		parts int
		env   *Env
		times [2][]time.Duration
		read  string
	}
	var targets []*target
	for _, ahead := range []int{23, 47, 95} {
		env := NewEnvConfig(t, MySQL, baseline.Prepared, EnvConfig{})
		if err := listFixture(ctx, env); err != nil {
			t.Fatal(err)
		}
		if err := env.GenTokens(ctx, ts, 0, SmallTable); err != nil {
			t.Fatal(err)
		}
		if _, err := partition.MaintainPaced(ctx, env.Admin, time.Now(), 1000, ahead, partition.Pacing{LockWait: time.Second}); err != nil {
			t.Fatal(err)
		}
		tg := &target{env: env}
		if err := env.Admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA=DATABASE() AND TABLE_NAME='RefreshTokens'").Scan(&tg.parts); err != nil {
			t.Fatal(err)
		}
		if err := env.analyze(ctx); err != nil {
			t.Fatal(err)
		}
		tg.read = explainPartitions(t, ctx, env)
		targets = append(targets, tg)
	}
	const calls = 1500
	// Each round visits the targets (a database each) from a rotating
	// start, both implementations on one target back to back, in an order
	// that alternates between rounds: each implementation follows the other
	// on the same database as often as it follows a call on another one.
	// (A fixed order, authdb then the baseline, gave the baseline a server
	// warmed by authdb's call on the same table and authdb one left by
	// another table's: 1.2x in the baseline's favour, whatever the code.)
	for i := range calls + 50 {
		for j := range targets {
			tg := targets[(i+j)%len(targets)]
			for n := range 2 {
				k := n
				if i%2 == 1 {
					k = 1 - n
				}
				impl := tgImpl(tg.env, k)
				t0 := time.Now()
				ts, err := impl.B.GetUserRefreshTokens(ctx, ListSubject)
				d := time.Since(t0)
				if err != nil || len(ts) != ListLive {
					t.Fatalf("list on %d partitions: %d tokens, %v", tg.parts, len(ts), err)
				}
				if i >= 50 { // the first calls warm up
					tg.times[k] = append(tg.times[k], d)
				}
			}
		}
	}
	rows := [][]string{{"partitions", "authdb µs", "baseline µs", "authdb/baseline", "authdb vs 25 partitions", "partitions read (EXPLAIN)"}}
	first := trimmedMean(targets[0].times[0])
	for _, tg := range targets {
		a, b := trimmedMean(tg.times[0]), trimmedMean(tg.times[1])
		rows = append(rows, []string{strconv.Itoa(tg.parts), us(a), us(b), fmt.Sprintf("%.2f", float64(a)/float64(b)),
			fmt.Sprintf("%.2f", float64(a)/float64(first)), tg.read})
		progress("parts %d: %s µs", tg.parts, us(a))
	}
	fmt.Printf("\n## Listing a subject's tokens on partitioned RefreshTokens (MariaDB, %d tokens, %d calls each, interleaved)\n\n", SmallTable+2*ListLive, calls)
	fmt.Print(markdown(rows, 0))
}

func tgImpl(e *Env, k int) *Impl {
	if k == 0 {
		return e.Authdb
	}
	return e.Baseline
}

// explainPartitions returns how many partitions the listing reads, by
// EXPLAIN PARTITIONS.
func explainPartitions(t *testing.T, ctx context.Context, env *Env) string {
	rows, err := env.Admin.QueryContext(ctx, "EXPLAIN PARTITIONS SELECT `JTI`,`Status`,`Scope`,`Sub` FROM `RefreshTokens` WHERE `Status`='CREATED' AND `Sub`=? AND CAST(`Sub` AS BINARY)=CAST(? AS BINARY) ORDER BY `JTI`", ListSubject, ListSubject)
	if err != nil {
		return "? " + err.Error()
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			if c == "partitions" {
				s := fmt.Sprintf("%s", vals[i])
				out = append(out, strconv.Itoa(len(strings.Split(s, ","))))
			}
			if c == "key" {
				out = append(out, fmt.Sprintf("key %s", vals[i]))
			}
		}
	}
	return strings.Join(out, ", ")
}

func numCPU() int     { return runtime.NumCPU() }
func gomaxprocs() int { return runtime.GOMAXPROCS(0) }
