package bench

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authdb/authdb/internal/bench/baseline"
)

var (
	flagTable   = flag.Bool("table", false, "TestBenchTable: measure and print the side-by-side table")
	flagEngines = flag.String("engines", "memory,sqlite,postgres,mariadb", "engines of the table and of the Benchmark functions")
	flagOps     = flag.String("ops", "", "regexp: only the operations whose name matches")
	flagBig     = flag.Bool("1m", os.Getenv("AUTHDB_BENCH_1M") == "1", "include listing with 1,000,000 tokens (also AUTHDB_BENCH_1M=1)")
	flagBudget  = flag.Duration("budget", DefaultConfig.Budget, "timed time per implementation and operation")
	flagNoCtx   = flag.Bool("nocancel", false, "calls get a context that never ends (MySQL: no kill-on-cancel path)")
	flagMode    = flag.String("mode", "prepared", "baseline statements: prepared or plain")
	flagOtel    = flag.String("otel", "", "TestBenchTable: otelauthdb's overhead instead: wrapped vs unwrapped authdb, with providers noop or sdk")
	flagFamily  = flag.Bool("families", false, "TestBenchTable: both implementations with the family options on (familyOptions)")
)

func mode(tb testing.TB) baseline.Mode {
	switch *flagMode {
	case "plain":
		return baseline.Plain
	case "prepared":
		return baseline.Prepared
	}
	tb.Fatalf("-mode %q: want plain or prepared", *flagMode)
	return 0
}

func selectedOps(tb testing.TB) []Op {
	var re *regexp.Regexp
	if *flagOps != "" {
		var err error
		if re, err = regexp.Compile(*flagOps); err != nil {
			tb.Fatalf("-ops: %v", err)
		}
	}
	var out []Op
	for _, op := range Ops() {
		if (op.Big && !*flagBig) || (re != nil && !re.MatchString(op.Name)) {
			continue
		}
		out = append(out, op)
	}
	return out
}

func engines() []string { return strings.Split(*flagEngines, ",") }

// TestBenchTable measures every operation on every engine, authdb beside
// the baseline, interleaved, and prints one table on stdout (make bench).
// It runs only with -table.
func TestBenchTable(t *testing.T) {
	if !*flagTable {
		t.Skip("run with -table (make bench)")
	}
	cfg := DefaultConfig
	cfg.Budget = *flagBudget
	cfg.NoCancel = *flagNoCtx
	ctx := context.Background()
	var results []Result
	for _, engine := range engines() {
		newEnv := func() *Env {
			if *flagOtel != "" {
				return NewOtelEnv(t, engine, *flagOtel)
			}
			if *flagFamily {
				return NewEnvConfig(t, engine, mode(t), EnvConfig{Options: familyOptions})
			}
			return NewEnv(t, engine, mode(t))
		}
		env := newEnv()
		for _, op := range selectedOps(t) {
			if engine == Memory {
				// A fresh store per operation: what the others left in it
				// would only weigh on the garbage collector.
				env = newEnv()
			}
			start := time.Now()
			r, err := Run(ctx, env, op, cfg)
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, r)
			ratio := ""
			if !math.IsNaN(r.Ratio()) {
				ratio = fmt.Sprintf(" ratio %.2f", r.Ratio())
			}
			fmt.Fprintf(os.Stderr, "%-8s %-45s %3d rounds x %5d calls%s (%.1fs)\n", engine, op.Name, r.Rounds, r.Batch, ratio, time.Since(start).Seconds())
		}
	}
	if *flagOtel != "" {
		fmt.Printf("\notelauthdb overhead, providers: %s (ratio: wrapped / unwrapped)\n\n", *flagOtel)
	} else {
		fmt.Printf("\nbaseline statements: %s\n\n", mode(t))
	}
	if *flagFamily {
		fmt.Printf("family options on: RevokeFamily, a 1m rotation grace, a 24h family lifetime\n\n")
	}
	if err := WriteTable(os.Stdout, results); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSQL runs every operation with testing.B, per engine and
// operation first on authdb, then on the baseline (sub-benchmarks
// .../authdb and .../baseline side by side), reporting round trips per
// call as rt/op. Select with -bench, e.g.
// -bench 'SQL/postgres/RotateRefreshToken'.
func BenchmarkSQL(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background()) // a context that can end, as a request's
	defer cancel()
	for _, engine := range engines() {
		b.Run(engine, func(b *testing.B) {
			env := NewEnv(b, engine, mode(b))
			for _, op := range selectedOps(b) {
				b.Run(strings.ReplaceAll(op.Name, " ", "_"), func(b *testing.B) {
					if err := env.ensureOnce(ctx, op); err != nil {
						b.Fatal(err)
					}
					for _, im := range env.Impls() {
						b.Run(im.Name, func(b *testing.B) {
							b.StopTimer()
							p, err := op.Setup(ctx, env, im, b.N)
							if err != nil {
								b.Fatal(err)
							}
							var before int64
							if im.Count != nil {
								before = im.Count.Load()
							}
							b.StartTimer()
							failed, err := p.Run(ctx)
							b.StopTimer()
							if failed > 0 {
								b.Fatalf("%d calls failed: %v", failed, err)
							}
							if im.Count != nil {
								b.ReportMetric(float64(im.Count.Load()-before)/float64(p.N), "rt/op")
							}
						})
					}
				})
			}
		})
	}
}
