package bench

import (
	"testing"

	"github.com/authdb/authdb/internal/bench/baseline"
)

// TestRotationAllocations pins what a rotation allocates on the servers,
// one call at a time, against the baseline on the same tables: on
// PostgreSQL no more than the baseline (a rotation builds its error name and
// its argument slices only when it needs them); on MariaDB at most the four
// more it takes today, for the fault rules' work there (the outcome probe
// and the transaction's wrapper among them). It fails on the code before
// the trim: 43 against 38 on PostgreSQL, 73 against 63 on MariaDB.
func TestRotationAllocations(t *testing.T) {
	extra := map[string]float64{Postgres: 0, MySQL: 4}
	for _, engine := range []string{Postgres, MySQL} {
		t.Run(engine, func(t *testing.T) {
			ctx := t.Context()
			env := NewEnv(t, engine, baseline.Prepared)
			allocs := make([]float64, 2)
			for k, im := range env.Impls() {
				sub := newSubject()
				head := newJTI()
				if err := im.B.InsertRefreshToken(ctx, head, sub, scope); err != nil {
					t.Fatal(err)
				}
				var err error
				allocs[k] = testing.AllocsPerRun(200, func() {
					next := newJTI()
					if _, e := im.B.RotateRefreshToken(ctx, head, next); e != nil && err == nil {
						err = e
					}
					head = next
				})
				if err != nil {
					t.Fatalf("%s: rotate: %v", im.Name, err)
				}
			}
			t.Logf("allocations per rotation: authdb %.0f, baseline %.0f", allocs[0], allocs[1])
			if allocs[0] > allocs[1]+extra[engine] {
				t.Errorf("authdb allocates %.0f times per rotation, the baseline %.0f (at most %.0f more expected)",
					allocs[0], allocs[1], extra[engine])
			}
		})
	}
}
