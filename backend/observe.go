package backend

import (
	"context"
	"log/slog"

	"github.com/google/uuid"
)

// Describer is implemented by backends that can say what they store into,
// for instrumentation (package otelauthdb turns it into OpenTelemetry's
// db.system.name, db.namespace, server.address and server.port). The
// description never contains a password.
type Describer interface {
	Describe() Description
}

// Description names a backend's store.
type Description struct {
	// System is OpenTelemetry's db.system.name: "sqlite", "postgresql",
	// "mysql", "mariadb"; the memory backend says "memory".
	System string
	// Namespace is the database name (PostgreSQL, MySQL) or the SQLite
	// file's path; "" when there is none.
	Namespace string
	// Host and Port are the server's (the first host of a multi-host URL);
	// "" and 0 for SQLite and memory.
	Host string
	Port int
}

// The retry causes an Observer's Retry hears.
const (
	RetryConflict       = "conflict"        // serialization failure, deadlock, lock-wait timeout
	RetryBusy           = "busy"            // SQLite's database busy or locked
	RetryConnectionLost = "connection_lost" // the connection died before anything was committed
)

// ReuseEvent describes a detected replay of a revoked refresh token: a
// stolen token, or a client that lost the successor. It holds no code and
// no password.
type ReuseEvent struct {
	Sub string    // the token's subject
	JTI uuid.UUID // the replayed token
	// FamilyID is the replayed token's family (its first token's JTI);
	// uuid.Nil when the backend does not know it.
	FamilyID uuid.UUID
	Scope    ReuseScope // what the replay revoked
	Revoked  int64      // how many tokens the replay revoked
}

// Observer receives the events that only a backend sees from inside a
// call. It travels in the call's context (ContextWithObserver), like
// net/http/httptrace's ClientTrace: there is no global state, the backend
// is not changed, and an event is reported to the call that caused it. A
// nil field is not called. Hooks run on the caller's goroutine, inside
// the call, and must be fast; they may be called concurrently by
// concurrent calls.
type Observer struct {
	// Retry is called before an operation runs again after a transient
	// failure, with the cause (RetryConflict, RetryBusy, RetryConnectionLost).
	Retry func(ctx context.Context, cause string)
	// Reuse is called once per detected replay, after the revocation.
	Reuse func(ctx context.Context, e ReuseEvent)
}

type observerKey struct{}

// ContextWithObserver returns a copy of ctx carrying o. An Observer
// already in ctx is called too (after o), so nested instrumentation
// layers each hear every event.
func ContextWithObserver(ctx context.Context, o *Observer) context.Context {
	if o == nil {
		return ctx
	}
	if outer := ObserverFromContext(ctx); outer != nil {
		inner := o
		o = &Observer{
			Retry: func(ctx context.Context, cause string) {
				if inner.Retry != nil {
					inner.Retry(ctx, cause)
				}
				if outer.Retry != nil {
					outer.Retry(ctx, cause)
				}
			},
			Reuse: func(ctx context.Context, e ReuseEvent) {
				if inner.Reuse != nil {
					inner.Reuse(ctx, e)
				}
				if outer.Reuse != nil {
					outer.Reuse(ctx, e)
				}
			},
		}
	}
	return context.WithValue(ctx, observerKey{}, o)
}

// ObserverFromContext returns the Observer in ctx, or nil.
func ObserverFromContext(ctx context.Context) *Observer {
	o, _ := ctx.Value(observerKey{}).(*Observer)
	return o
}

// ReportRetry tells the Observer in ctx, if any, that the operation runs
// again after a failure of the given cause. Backends call it from their
// retry loop.
func ReportRetry(ctx context.Context, cause string) {
	if o := ObserverFromContext(ctx); o != nil && o.Retry != nil {
		o.Retry(ctx, cause)
	}
}

// ReportReuse records a detected replay, the security event an operator
// alerts on: it logs it at Warn on logger (subject, replayed JTI, family,
// reuse scope and the number of tokens revoked; never a code) and tells
// the Observer in ctx, if any. Backends call it exactly once per detected
// replay, where they detect it, after revoking.
func ReportReuse(ctx context.Context, logger *slog.Logger, e ReuseEvent) {
	family := e.FamilyID
	if family == uuid.Nil {
		family = e.JTI // a token without a family is its own family's first token
	}
	if logger != nil {
		logger.WarnContext(ctx, "authdb: refresh token replayed; tokens revoked",
			"sub", e.Sub, "jti", e.JTI.String(), "family", family.String(),
			"reuse_scope", e.Scope.String(), "revoked", e.Revoked)
	}
	if o := ObserverFromContext(ctx); o != nil && o.Reuse != nil {
		o.Reuse(ctx, e)
	}
}
