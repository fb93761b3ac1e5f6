package baseline_test

import (
	"testing"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/internal/bench"
	"github.com/authdb/authdb/internal/bench/baseline"
)

// TestConformance proves the baseline correct: the conformance suite on
// every engine, in both statement modes (a benchmark against a baseline that
// cuts corners would flatter it).
func TestConformance(t *testing.T) {
	for _, mode := range []baseline.Mode{baseline.Plain, baseline.Prepared} {
		for _, engine := range bench.SQLEngines {
			t.Run(mode.String()+"/"+engine, func(t *testing.T) {
				conformance.Run(t, func(t *testing.T, opts ...backend.Option) backend.Backend {
					t.Helper()
					rawURL := bench.NewURL(t, engine)
					if err := bench.Migrate(t.Context(), rawURL); err != nil {
						t.Fatal(err)
					}
					connector, dialect, err := bench.Connector(rawURL)
					if err != nil {
						t.Fatal(err)
					}
					st, err := baseline.New(t.Context(), bench.Pool(connector, nil), dialect, mode, opts...)
					if err != nil {
						t.Fatal(err)
					}
					return st
				})
			})
		}
	}
}
