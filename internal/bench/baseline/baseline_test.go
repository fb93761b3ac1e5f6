package baseline_test

import (
	"testing"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/internal/bench"
	"github.com/authdb/authdb/internal/bench/baseline"
)

// TestConformance proves the baseline correct, since a benchmark against a
// baseline that cuts corners would flatter it: the conformance suite on
// every engine with prepared statements (the mode of the benchmark table),
// and with plain statements on SQLite (the other mode's code paths;
// -mode plain benchmarks it on every engine).
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		mode   baseline.Mode
		engine string
	}{
		{baseline.Prepared, bench.SQLite},
		{baseline.Prepared, bench.Postgres},
		{baseline.Prepared, bench.MySQL},
		{baseline.Plain, bench.SQLite},
	} {
		t.Run(c.mode.String()+"/"+c.engine, func(t *testing.T) {
			t.Parallel() // the engines wait on different servers
			conformance.Run(t, func(t *testing.T, opts ...backend.Option) backend.Backend {
				t.Helper()
				rawURL := bench.NewURL(t, c.engine)
				if err := bench.Migrate(t.Context(), rawURL); err != nil {
					t.Fatal(err)
				}
				connector, dialect, err := bench.Connector(rawURL)
				if err != nil {
					t.Fatal(err)
				}
				st, err := baseline.New(t.Context(), bench.Pool(connector, nil), dialect, c.mode, opts...)
				if err != nil {
					t.Fatal(err)
				}
				return st
			})
		})
	}
}
