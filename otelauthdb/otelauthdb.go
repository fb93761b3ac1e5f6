package otelauthdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/authdb/authdb/backend"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/authdb/authdb/otelauthdb"

// Option configures Wrap.
type Option func(*config)

type config struct {
	tp trace.TracerProvider
	mp metric.MeterProvider
}

// WithTracerProvider sets the tracer provider (default: otel.GetTracerProvider()
// at Wrap). A nil provider is ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp != nil {
			c.tp = tp
		}
	}
}

// WithMeterProvider sets the meter provider (default: otel.GetMeterProvider()
// at Wrap). A nil provider is ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp != nil {
			c.mp = mp
		}
	}
}

// Custom attribute keys (authdb's own; the rest are semantic conventions).
const (
	OutcomeKey         = attribute.Key("authdb.outcome")
	FlowKindKey        = attribute.Key("authdb.flow.kind")
	ReuseScopeKey      = attribute.Key("authdb.reuse_scope")
	RetryCauseKey      = attribute.Key("authdb.retry.cause")
	TableKey           = attribute.Key("authdb.table")
	PartitionChangeKey = attribute.Key("authdb.partition.change")
)

// durationBuckets are the explicit bucket boundaries the database semantic
// conventions advise for db.client.operation.duration, in seconds.
var durationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// outcomes maps each protocol outcome to its authdb.outcome value: these
// are answers of the contract, not span errors.
var outcomes = []struct {
	err  error
	name string
}{
	{backend.ErrNotFound, "not_found"},
	{backend.ErrExpired, "expired"},
	{backend.ErrNotPending, "not_pending"},
	{backend.ErrAuthorizationPending, "authorization_pending"},
	{backend.ErrAlreadyUsed, "already_used"},
	{backend.ErrFlowFailed, "flow_failed"},
	{backend.ErrAlreadyExists, "already_exists"},
	{backend.ErrTokenReused, "token_reused"},
	{backend.ErrUnsupported, "unsupported"},
}

// Outcome names besides those of outcomes.
const (
	outcomeOK    = "ok"
	outcomeGrace = "grace"
	outcomeError = "error"
)

// classify returns the authdb.outcome of err ("ok" for nil, "error" for a
// failure) and, for a failure, its error.type.
func classify(err error) (outcome, errType string) {
	if err == nil {
		return outcomeOK, ""
	}
	switch {
	case errors.Is(err, backend.ErrOutcomeUnknown):
		return outcomeError, "outcome_unknown"
	case errors.Is(err, context.Canceled):
		return outcomeError, "context.Canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return outcomeError, "context.DeadlineExceeded"
	case errors.Is(err, backend.ErrInvalidInput):
		return outcomeError, "invalid_input"
	case errors.Is(err, backend.ErrCodeCollision):
		return outcomeError, "code_collision"
	}
	for _, o := range outcomes {
		if errors.Is(err, o.err) {
			return o.name, ""
		}
	}
	// A driver or I/O error: the type of the innermost error of a chain of
	// single wraps (fmt.Errorf's %w), a small set of values.
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			break
		}
		err = inner
	}
	return outcomeError, fmt.Sprintf("%T", err)
}

// opInfo is what Wrap precomputes for one operation, so that a call
// allocates nothing for its attributes unless it fails.
type opInfo struct {
	name      string
	startOpts []trace.SpanStartOption
	attrs     []attribute.KeyValue                // the span's and histogram's base attributes
	ok        metric.RecordOption                 // histogram options of a success
	record    map[string]metric.RecordOption      // histogram options by outcome (not "error")
	counted   map[string]metric.MeasurementOption // rotations or redemptions options by outcome
	retries   [3]metric.MeasurementOption         // by retry cause, in retryCauses order
	observer  *backend.Observer
}

var retryCauses = [3]string{backend.RetryConflict, backend.RetryBusy, backend.RetryConnectionLost}

// wrapped is the instrumented backend.
type wrapped struct {
	b      backend.Backend
	desc   backend.Description
	tracer trace.Tracer
	system attribute.KeyValue
	// traceOff, metricsOff: the provider is the API's no-op one (given
	// with WithTracerProvider, WithMeterProvider): the calls skip what
	// would feed it (the span; the clock reads and measurements).
	traceOff, metricsOff bool

	duration    metric.Float64Histogram
	reuse       metric.Int64Counter
	rotations   metric.Int64Counter
	redemptions metric.Int64Counter
	retries     metric.Int64Counter
	deleted     metric.Int64Counter
	partitions  metric.Int64Counter

	reuseBy map[string]metric.MeasurementOption // by reuse scope name
	tables  map[op]metric.MeasurementOption     // cleanup deleted, by clean operation
	added   metric.MeasurementOption
	dropped metric.MeasurementOption

	ops [numOps]opInfo
}

// Wrap returns b instrumented with OpenTelemetry (see the package
// documentation). The wrapper forwards every call to b; it has
// backend.PartitionMaintainer and backend.RefreshTokenIterator exactly
// when b has them. b must not be nil. Instruments
// that the meter cannot create are replaced by no-ops and the error is
// passed to otel.Handle.
func Wrap(b backend.Backend, opts ...Option) backend.Backend {
	c := config{tp: otel.GetTracerProvider(), mp: otel.GetMeterProvider()}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	w := &wrapped{b: b, desc: backend.Description{System: semconv.DBSystemNameOtherSQL.Value.AsString()}}
	if d, ok := b.(backend.Describer); ok {
		w.desc = d.Describe()
	}
	w.traceOff, w.metricsOff = isNoop(c.tp), isNoop(c.mp)
	w.tracer = c.tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL))
	meter := c.mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	w.makeInstruments(meter)
	w.makeOps()
	return keepOptional(w, b)
}

// isNoop reports whether p is the API's no-op tracer or meter provider.
// (The global providers are not: an SDK may be installed after Wrap.)
func isNoop(p any) bool {
	switch p.(type) {
	case tracenoop.TracerProvider, *tracenoop.TracerProvider, metricnoop.MeterProvider, *metricnoop.MeterProvider:
		return true
	}
	return false
}

func (w *wrapped) makeInstruments(m metric.Meter) {
	var errs []error
	var err error
	w.duration, err = m.Float64Histogram("db.client.operation.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of database client operations."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	errs = append(errs, err)
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	w.reuse = counter("authdb.refresh_token.reuse", "{replay}", "Replays of revoked refresh tokens detected (each revoked the subject's or the family's tokens).")
	w.rotations = counter("authdb.refresh_token.rotations", "{rotation}", "Refresh-token rotations, by outcome.")
	w.redemptions = counter("authdb.flow.redemptions", "{redemption}", "Device and authorization-code redemptions, by flow kind and outcome.")
	w.retries = counter("authdb.retries", "{retry}", "Operations run again inside the backend after a transient failure, by cause.")
	w.deleted = counter("authdb.cleanup.deleted", "{row}", "Rows deleted by clean-up, by table.")
	w.partitions = counter("authdb.partitions.changed", "{partition}", "Monthly RefreshTokens partitions added or dropped.")
	if err := errors.Join(errs...); err != nil {
		otel.Handle(fmt.Errorf("otelauthdb: %w", err))
	}
	// A failed instrument is nil: the meter API returns no-op ones with
	// the error, so nothing else is needed.
}

func (w *wrapped) makeOps() {
	d := w.desc
	w.system = semconv.DBSystemNameKey.String(d.System)
	base := []attribute.KeyValue{w.system}
	if d.Namespace != "" {
		base = append(base, semconv.DBNamespace(d.Namespace))
	}
	if d.Host != "" {
		base = append(base, semconv.ServerAddress(d.Host))
		if d.Port != 0 {
			base = append(base, semconv.ServerPort(d.Port))
		}
	}
	set := func(kvs ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(kvs...))
	}
	allOutcomes := []string{outcomeOK, outcomeGrace}
	for _, o := range outcomes {
		allOutcomes = append(allOutcomes, o.name)
	}
	for id := range numOps {
		spec := opSpecs[id]
		info := &w.ops[id]
		info.name = spec.name
		info.attrs = append(append([]attribute.KeyValue{}, base...),
			semconv.DBOperationName(spec.name))
		if spec.table != "" {
			info.attrs = append(info.attrs, semconv.DBCollectionName(spec.table))
		}
		info.startOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(info.attrs...)}
		info.record = map[string]metric.RecordOption{}
		for _, o := range allOutcomes {
			info.record[o] = set(append(append([]attribute.KeyValue{}, info.attrs...), OutcomeKey.String(o))...)
		}
		info.ok = info.record[outcomeOK]
		if spec.flowKind != "" || id == opRotateRefreshToken {
			info.counted = map[string]metric.MeasurementOption{}
			for _, o := range append(allOutcomes, outcomeError) {
				kvs := []attribute.KeyValue{w.system, OutcomeKey.String(o)}
				if spec.flowKind != "" {
					kvs = append(kvs, FlowKindKey.String(spec.flowKind))
				}
				info.counted[o] = set(kvs...)
			}
		}
		for i, cause := range retryCauses {
			info.retries[i] = set(w.system, semconv.DBOperationName(spec.name), RetryCauseKey.String(cause))
		}
		info.observer = w.observer(info, nil)
	}
	w.reuseBy = map[string]metric.MeasurementOption{}
	for _, s := range []string{backend.RevokeSubject.String(), backend.RevokeFamily.String(), "unknown"} {
		w.reuseBy[s] = set(w.system, ReuseScopeKey.String(s))
	}
	w.tables = map[op]metric.MeasurementOption{}
	for _, id := range []op{opCleanExpiredDeviceFlows, opCleanExpiredAuthorizationFlows, opCleanExpiredRefreshTokens} {
		w.tables[id] = set(w.system, TableKey.String(opSpecs[id].table))
	}
	w.added = set(w.system, PartitionChangeKey.String("added"))
	w.dropped = set(w.system, PartitionChangeKey.String("dropped"))
}

// observer is the backend.Observer of one operation: it counts retries
// and adds span events. With reused not nil (a rotation), a replay's event
// is also kept there for the call to count.
func (w *wrapped) observer(info *opInfo, reused *backend.ReuseEvent) *backend.Observer {
	o := &backend.Observer{
		Retry: func(ctx context.Context, cause string) {
			opt := metric.MeasurementOption(nil)
			for i, c := range retryCauses {
				if c == cause {
					opt = info.retries[i]
				}
			}
			if opt == nil {
				opt = metric.WithAttributes(w.system, semconv.DBOperationName(info.name), RetryCauseKey.String(cause))
			}
			w.retries.Add(ctx, 1, opt)
			if span := trace.SpanFromContext(ctx); !w.traceOff && span.IsRecording() {
				span.AddEvent("authdb.retry", trace.WithAttributes(RetryCauseKey.String(cause)))
			}
		},
	}
	if reused != nil {
		o.Reuse = func(ctx context.Context, e backend.ReuseEvent) { *reused = e }
	}
	return o
}

// start begins a call of operation id: its span (nil when tracing is
// off), its observer in ctx, and its start time (zero when metrics are
// off). With both off it does nothing.
func (w *wrapped) start(ctx context.Context, id op, obs *backend.Observer) (context.Context, trace.Span, time.Time) {
	if w.traceOff && w.metricsOff {
		return ctx, nil, time.Time{}
	}
	info := &w.ops[id]
	if obs == nil {
		obs = info.observer
	}
	var span trace.Span
	if !w.traceOff {
		ctx, span = w.tracer.Start(ctx, info.name, info.startOpts...)
	}
	ctx = backend.ContextWithObserver(ctx, obs)
	if w.metricsOff {
		return ctx, span, time.Time{}
	}
	return ctx, span, time.Now()
}

// recording reports whether span takes attributes and events.
func recording(span trace.Span) bool { return span != nil && span.IsRecording() }

// end finishes a call of operation id that returned err; outcome, when
// not "", overrides the outcome of a successful call ("grace"). It returns
// the outcome recorded.
func (w *wrapped) end(ctx context.Context, id op, span trace.Span, t0 time.Time, err error, outcome string) string {
	if w.traceOff && w.metricsOff {
		return ""
	}
	info := &w.ops[id]
	o, errType := classify(err)
	if err == nil && outcome != "" {
		o = outcome
	}
	if errType == "" {
		if !w.metricsOff {
			opt := info.ok
			if o != outcomeOK {
				opt = info.record[o]
			}
			w.duration.Record(ctx, time.Since(t0).Seconds(), opt)
		}
		if recording(span) {
			span.SetAttributes(OutcomeKey.String(o))
		}
	} else {
		kv := semconv.ErrorTypeKey.String(errType)
		if !w.metricsOff {
			w.duration.Record(ctx, time.Since(t0).Seconds(), metric.WithAttributeSet(attribute.NewSet(
				append(append([]attribute.KeyValue{}, info.attrs...), OutcomeKey.String(o), kv)...)))
		}
		if recording(span) {
			span.SetAttributes(OutcomeKey.String(o), kv)
			// The type, not the message: a message may name a user code.
			span.SetStatus(codes.Error, errType)
		}
	}
	if span != nil {
		span.End()
	}
	return o
}
