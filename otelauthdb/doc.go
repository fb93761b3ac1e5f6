// Package otelauthdb instruments any authdb backend with OpenTelemetry
// traces and metrics, in the manner of the contrib instrumentations
// (otelhttp, otelsql):
//
//	b, err := authdb.Open(ctx, url)
//	...
//	b = otelauthdb.Wrap(b) // global providers; or WithTracerProvider, WithMeterProvider
//
// Every call of the wrapped backend is a client span named after the
// operation ("RotateRefreshToken") with OpenTelemetry's database semantic
// conventions: db.system.name, db.operation.name, db.collection.name (the
// table), db.namespace, server.address and server.port (from the backend's
// backend.Describer; a backend that does not describe itself is
// "other_sql"), and error.type when the call failed. Each call is also
// recorded in the db.client.operation.duration histogram (seconds, the
// conventions' buckets) with the same attributes.
//
// # Outcomes and errors
//
// An outcome of the contract is an answer, not a failure: ErrNotFound,
// ErrExpired, ErrNotPending, ErrAuthorizationPending, ErrAlreadyUsed,
// ErrFlowFailed, ErrAlreadyExists, ErrUnsupported and ErrTokenReused leave
// the span's status unset and set authdb.outcome ("not_found",
// "authorization_pending", ...; "ok" on success) on the span and the
// histogram. A replayed refresh token (ErrTokenReused) is a security event,
// counted and logged (below), but the store did its job: it is not a span
// error. Span errors (status Error, error.type set) are what went wrong:
// ErrOutcomeUnknown ("outcome_unknown"), a cancelled or expired context
// ("context.Canceled", "context.DeadlineExceeded"), ErrInvalidInput
// ("invalid_input": a caller's bug), ErrCodeCollision ("code_collision"),
// and every driver or I/O error (error.type is the Go type of the innermost
// error, such as "*pq.Error"); the status description is that type too:
// error messages are not recorded, since one may name a user code.
//
// # Counters
//
//   - authdb.refresh_token.reuse: replays detected, by authdb.reuse_scope
//     ("subject", "family"; "unknown" when the backend does not report it):
//     exactly one per RotateRefreshToken that returned ErrTokenReused.
//   - authdb.refresh_token.rotations: RotateRefreshToken calls by
//     authdb.outcome ("ok", "grace" when the backend converged on an
//     existing successor, "token_reused", "not_found", "expired", "error"...).
//   - authdb.flow.redemptions: ConsumeDeviceFlow and ConsumeAuthorizationFlow
//     calls by authdb.flow.kind ("device", "authorization") and authdb.outcome.
//   - authdb.retries: runs of an operation again inside the backend, by
//     authdb.retry.cause ("conflict", "busy", "connection_lost") and
//     db.operation.name.
//   - authdb.cleanup.deleted: rows deleted by the CleanExpired* calls, by
//     authdb.table (a successful call that deleted nothing adds 0, so the
//     series shows that clean-up ran).
//   - authdb.partitions.changed: monthly partitions added or dropped by
//     MaintainRefreshTokenPartitions, by authdb.partition.change
//     ("added", "dropped"; 0 likewise).
//
// Every counter also carries db.system.name. Retries and the reuse scope are
// known only inside the backend: the wrapper puts a backend.Observer in
// each call's context, which the SQL and memory backends call
// (backend.ReportRetry, backend.ReportReuse). There is no global state
// besides the default providers. A retry and a replay are also span events
// ("authdb.retry", "authdb.refresh_token.reuse", with the scope, the
// replayed JTI and how many tokens were revoked).
//
// # Security events
//
// The backends themselves, wrapped or not, log every detected replay at Warn
// on their logger (backend.WithLogger) with the subject, the replayed JTI,
// its family and how many tokens were revoked; never a code or a password
// (backend.ReportReuse). Alert on that record or on the reuse counter.
//
// # Optional interfaces
//
// The wrapper has backend.PartitionMaintainer and
// backend.RefreshTokenIterator when, and only when, the wrapped backend has
// them (a wrapped SQL backend still maintains MySQL partitions; a wrapped
// memory backend does not gain the methods); a streamed listing is one
// span, "RefreshTokens", from the first page to the last token read. It
// always implements backend.Describer and Unwrap, which returns the
// wrapped backend for other optional interfaces (the SQL backend's DB,
// Dialect, Migrate).
package otelauthdb
