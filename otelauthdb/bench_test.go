package otelauthdb_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
	"github.com/authdb/authdb/otelauthdb"
)

// BenchmarkOverhead measures what the wrapper adds to a call, in
// absolute time: GetRefreshToken on the memory backend (a map look-up,
// ~0.1 µs), unwrapped, wrapped with the no-op providers, with the global
// providers and no SDK installed, and with the SDK recording (every span
// sampled, batched to an exporter that drops it; metrics aggregated). The
// difference with "unwrapped" is the cost per call of any backend; see
// docs/observability.md.
func BenchmarkOverhead(b *testing.B) {
	ctx := context.Background()
	m := memory.New()
	jti := uuid.Must(uuid.NewV7())
	if err := m.InsertRefreshToken(ctx, jti, "alice", "openid"); err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer tp.Shutdown(ctx)
	defer mp.Shutdown(ctx)
	for _, c := range []struct {
		name string
		b    backend.Backend
	}{
		{"unwrapped", m},
		{"noop", otelauthdb.Wrap(m, otelauthdb.WithTracerProvider(tracenoop.NewTracerProvider()),
			otelauthdb.WithMeterProvider(metricnoop.NewMeterProvider()))},
		{"global-no-sdk", otelauthdb.Wrap(m, otelauthdb.WithTracerProvider(otel.GetTracerProvider()),
			otelauthdb.WithMeterProvider(otel.GetMeterProvider()))},
		{"sdk", otelauthdb.Wrap(m, otelauthdb.WithTracerProvider(tp), otelauthdb.WithMeterProvider(mp))},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.b.GetRefreshToken(ctx, jti); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
