package bench

import (
	"context"
	"database/sql/driver"
	"testing"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/otelauthdb"
)

// The instrumentation modes of NewOtelEnv.
const (
	OtelNoop = "noop" // otelauthdb with the API's no-op providers
	OtelSDK  = "sdk"  // otelauthdb with the SDK recording every span and measurement
)

// otelProviders returns the providers of a mode. With the SDK, every span
// is sampled and goes through a batch processor to an exporter that drops
// it, and the metrics are aggregated for a manual reader (nothing reads
// them): the cost of recording, not of shipping.
func otelProviders(tb testing.TB, mode string) (trace.TracerProvider, metric.MeterProvider) {
	tb.Helper()
	switch mode {
	case OtelNoop:
		return tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()
	case OtelSDK:
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		tb.Cleanup(func() {
			tp.Shutdown(context.Background())
			mp.Shutdown(context.Background())
		})
		return tp, mp
	}
	tb.Fatalf("bench: -otel %q: want %s or %s", mode, OtelNoop, OtelSDK)
	return nil, nil
}

// NewOtelEnv makes an engine's environment to measure otelauthdb: the
// first implementation ("wrapped") is an authdb backend wrapped with
// otelauthdb in mode, the second ("unwrapped") the same backend opened
// the same way, on its own pool, unwrapped. The table's ratio is then
// wrapped / unwrapped.
func NewOtelEnv(tb testing.TB, engine, mode string) *Env {
	tb.Helper()
	ctx := context.Background()
	tp, mp := otelProviders(tb, mode)
	wrap := func(b backend.Backend) backend.Backend {
		return otelauthdb.Wrap(b, otelauthdb.WithTracerProvider(tp), otelauthdb.WithMeterProvider(mp))
	}
	if engine == Memory {
		w, u := &Impl{Name: "wrapped", Clock: &Clock{}}, &Impl{Name: "unwrapped", Clock: &Clock{}}
		w.B, u.B = wrap(memory.New(implOptions(w.Clock)...)), memory.New(implOptions(u.Clock)...)
		tb.Cleanup(func() { w.B.Close(); u.B.Close() })
		return &Env{Engine: Memory, Authdb: w, Baseline: u}
	}
	rawURL := NewURL(tb, engine)
	if err := Migrate(ctx, rawURL); err != nil {
		tb.Fatalf("bench: migrate %s: %v", engine, err)
	}
	connector, dialect, err := Connector(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	env := &Env{Engine: engine, Dialect: dialect, URL: rawURL, Admin: Pool(connector, nil)}
	tb.Cleanup(func() { env.Admin.Close() })
	open := func(name string) *Impl {
		im := &Impl{Name: name, Clock: &Clock{}, Count: &Counter{}, Dialect: dialect}
		b, err := sqlbackend.OpenWrapped(ctx, rawURL, func(c driver.Connector) driver.Connector { return Count(c, im.Count) },
			implOptions(im.Clock, backend.WithoutMigration())...)
		if err != nil {
			tb.Fatalf("bench: open authdb on %s: %v", engine, err)
		}
		im.B = b
		tb.Cleanup(func() { b.Close() })
		return im
	}
	env.Authdb, env.Baseline = open("wrapped"), open("unwrapped")
	env.Authdb.B = wrap(env.Authdb.B)
	return env
}
