package bench

import (
	"strings"
	"testing"

	"github.com/authdb/authdb/internal/bench/baseline"
)

// TestRoundTrips runs every benchmarked operation a few times on each SQL
// engine, authdb and the baseline on the same tables, checks that no call
// fails, and that authdb never needs more round trips per call (counted by
// the driver wrapper) than the hand-written baseline (concurrent calls
// excepted: their count varies from run to run).
func TestRoundTrips(t *testing.T) {
	for _, engine := range SQLEngines {
		t.Run(engine, func(t *testing.T) {
			ctx := t.Context()
			env := NewEnv(t, engine, baseline.Prepared)
			for _, op := range Ops() {
				if op.Big {
					continue
				}
				rt := make([]float64, 2)
				for k, im := range env.Impls() {
					if err := env.ensureOnce(ctx, op); err != nil {
						t.Fatal(err)
					}
					// The first batch warms up: it prepares statements.
					for range 2 {
						p, err := op.Setup(ctx, env, im, 4)
						if err != nil {
							t.Fatalf("%s: %s setup: %v", op.Name, im.Name, err)
						}
						before := im.Count.Load()
						if failed, err := p.Run(ctx); failed > 0 {
							t.Fatalf("%s: %s: %d calls failed: %v", op.Name, im.Name, failed, err)
						}
						rt[k] = float64(im.Count.Load()-before) / float64(p.N)
					}
				}
				t.Logf("%-40s round trips authdb %.2f, baseline %.2f", op.Name, rt[0], rt[1])
				if strings.Contains(op.Name, "goroutines") {
					// Concurrent calls: statements prepared on each new
					// connection and SQLite's busy retries vary from run to run.
					continue
				}
				if rt[0] > rt[1] {
					t.Errorf("%s: authdb needs %.2f round trips per call, the baseline %.2f", op.Name, rt[0], rt[1])
				}
			}
		})
	}
}
