package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/otelauthdb"
)

// telemetry is the token server's OpenTelemetry: metrics served on
// /metrics in the Prometheus text format (the OpenTelemetry Prometheus
// exporter, on a registry of its own), and a span for each HTTP request
// (otelhttp) whose children are the store's spans (otelauthdb), exported
// over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (otherwise no trace is kept).
type telemetry struct {
	tp       trace.TracerProvider
	mp       metric.MeterProvider
	metrics  http.Handler
	shutdown func(context.Context) error
}

// newTelemetry sets the token server's telemetry up; getenv is os.Getenv.
// tp, when not nil, replaces the trace set-up (the tests record spans).
func newTelemetry(ctx context.Context, getenv func(string) string, tp trace.TracerProvider) (*telemetry, error) {
	res, err := resource.Merge(resource.Default(),
		resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("tokenserver")))
	if err != nil {
		res = resource.Default()
	}
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	t := &telemetry{mp: mp, tp: tp, metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), shutdown: mp.Shutdown}
	if tp != nil {
		return t, nil
	}
	t.tp = tracenoop.NewTracerProvider()
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		texp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
		sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp), sdktrace.WithResource(res))
		t.tp = sdk
		t.shutdown = func(ctx context.Context) error { return errors.Join(sdk.Shutdown(ctx), mp.Shutdown(ctx)) }
	}
	return t, nil
}

// store instruments the token server's store (otelauthdb.Wrap).
func (t *telemetry) store(b backend.Backend) backend.Backend {
	return otelauthdb.Wrap(b, otelauthdb.WithTracerProvider(t.tp), otelauthdb.WithMeterProvider(t.mp))
}

// handler serves GET /metrics and traces and measures every request to h
// (the request's context carries its span into the store's calls). Spans
// are named after srv's route ("POST /token"; the method alone for a path
// no route serves, so that names stay few).
func (t *telemetry) handler(srv *Server, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", t.metrics)
	mux.Handle("/", otelhttp.NewHandler(h, "tokenserver",
		otelhttp.WithTracerProvider(t.tp), otelhttp.WithMeterProvider(t.mp),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if _, route := srv.mux.Handler(r); route != "" {
				return route
			}
			return r.Method
		})))
	return mux
}
