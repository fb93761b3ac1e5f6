package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/otelauthdb"
)

// otlpUsage is the part of cleanup's and partitions' help about --otlp.
const otlpUsage = `
Telemetry: with --otlp ENDPOINT (an OTLP/HTTP collector, e.g.
http://localhost:4318), or when OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
set, the command's calls are traced and measured (package otelauthdb: the
rows deleted per table in authdb.cleanup.deleted, the partitions added and
dropped in authdb.partitions.changed, every call's span and duration) and
pushed there before it exits; the other OTEL_EXPORTER_OTLP_* variables
(headers, timeout, certificates) and OTEL_SERVICE_NAME apply as usual
(service.name defaults to authdb). A failed push is a warning on stderr;
it does not change the exit status.
`

// telemetryEnv lists the variables that turn the push on without --otlp.
var telemetryEnv = []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}

// otlpFlag registers --otlp on fs.
func otlpFlag(fs *flag.FlagSet) *string {
	return fs.String("otlp", "", "push metrics and traces to this OTLP/HTTP collector `URL` (default: the OTEL_EXPORTER_OTLP_* variables; none: no telemetry)")
}

// telemetry is the OpenTelemetry set-up of one command run: nil when
// telemetry is off.
type telemetry struct {
	tp *sdktrace.TracerProvider
	mp *sdkmetric.MeterProvider
}

// startTelemetry sets up OTLP/HTTP exporters for endpoint (a URL; a bare
// host:port means http://host:port), or from the standard variables when
// endpoint is "" and one of telemetryEnv is set; nil, nil when neither.
func startTelemetry(ctx context.Context, endpoint string) (*telemetry, error) {
	if endpoint == "" {
		on := false
		for _, v := range telemetryEnv {
			on = on || os.Getenv(v) != ""
		}
		if !on {
			return nil, nil
		}
	}
	var mopts []otlpmetrichttp.Option
	var topts []otlptracehttp.Option
	if endpoint != "" {
		if !strings.Contains(endpoint, "://") {
			endpoint = "http://" + endpoint
		}
		mopts = append(mopts, otlpmetrichttp.WithEndpointURL(strings.TrimSuffix(endpoint, "/")+"/v1/metrics"))
		topts = append(topts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(endpoint, "/")+"/v1/traces"))
	}
	mexp, err := otlpmetrichttp.New(ctx, mopts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	texp, err := otlptracehttp.New(ctx, topts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	res, err := resource.Merge(
		resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("authdb")),
		resource.Default()) // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	if err != nil {
		res = resource.Default()
	}
	return &telemetry{
		tp: sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp), sdktrace.WithResource(res)),
		// The command pushes once, at its end (shutdown): no periodic export.
		mp: sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(time.Hour)))),
	}, nil
}

// wrap instruments b (nil t: b as it is).
func (t *telemetry) wrap(b backend.Backend) backend.Backend {
	if t == nil {
		return b
	}
	return otelauthdb.Wrap(b, otelauthdb.WithTracerProvider(t.tp), otelauthdb.WithMeterProvider(t.mp))
}

// shutdown pushes what was recorded and stops the exporters, within 10 s;
// a failure is a warning on a's stderr.
func (t *telemetry) shutdown(a *app) {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := errors.Join(t.tp.Shutdown(ctx), t.mp.Shutdown(ctx)); err != nil {
		fmt.Fprintf(a.stderr, "authdb %s: warning: pushing telemetry: %v\n", a.cmd, err)
	}
}
