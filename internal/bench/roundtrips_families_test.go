package bench

import (
	"testing"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/bench/baseline"
)

// TestRoundTripsFamilies counts the round trips of a rotation with the
// family options off and on (RevokeFamily, a grace window, a family
// lifetime), authdb beside the baseline on each SQL engine, and of a
// refresh that converges within the grace window. authdb never needs more
// than the baseline, and a PostgreSQL rotation stays one statement. Print
// the figures with: go test ./internal/bench -run TestRoundTripsFamilies -v
func TestRoundTripsFamilies(t *testing.T) {
	const n = 4
	configs := []struct {
		name string
		opts []backend.Option
	}{
		{"options off", nil},
		{"options on", familyOptions},
	}
	for _, engine := range SQLEngines {
		t.Run(engine, func(t *testing.T) {
			ctx := t.Context()
			for _, c := range configs {
				env := NewEnvConfig(t, engine, baseline.Prepared, EnvConfig{Options: c.opts})
				var rotate, converge [2]float64
				for k, im := range env.Impls() {
					for range 2 { // the first round prepares statements
						olds, err := tokens(ctx, im.B, n, "")
						if err != nil {
							t.Fatal(err)
						}
						news := make([]uuid.UUID, n)
						before := im.Count.Load()
						for i := range olds {
							news[i] = newJTI()
							if _, err := im.B.RotateRefreshToken(ctx, olds[i], news[i]); err != nil {
								t.Fatalf("%s %s: rotate: %v", c.name, im.Name, err)
							}
						}
						rotate[k] = float64(im.Count.Load()-before) / n
						if c.opts == nil {
							continue
						}
						before = im.Count.Load()
						for i := range olds {
							got, err := im.B.RotateRefreshToken(ctx, olds[i], newJTI())
							if err != nil || got.ReplacedBy != news[i] {
								t.Fatalf("%s %s: refresh within the grace window: %+v, %v", c.name, im.Name, got, err)
							}
						}
						converge[k] = float64(im.Count.Load()-before) / n
					}
				}
				t.Logf("%-8s %-11s rotation: authdb %.2f, baseline %.2f round trips; grace convergence: authdb %.2f, baseline %.2f",
					engine, c.name, rotate[0], rotate[1], converge[0], converge[1])
				if rotate[0] > rotate[1] || converge[0] > converge[1] {
					t.Errorf("%s: authdb needs more round trips than the baseline", c.name)
				}
				if env.Dialect == baseline.Postgres && rotate[0] != 1 {
					t.Errorf("%s: a PostgreSQL rotation takes %.2f round trips, want 1", c.name, rotate[0])
				}
			}
		})
	}
}
