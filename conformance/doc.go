// Package conformance is the test suite every authdb backend must pass: the
// built-in memory and SQL backends run it, and so should a third party's.
// It checks, through the backend.Backend interface only, every line of the
// contract written in package backend and in docs/design.md: results, each
// sentinel error, atomicity, exactly-once redemption under concurrency,
// validation of bad input, verbatim storage of hostile strings, context
// cancellation, and a load test.
//
// # Running it
//
// A backend's test calls Run with a function that makes a new, empty backend:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T, opts ...backend.Option) backend.Backend {
//			b, err := mybackend.Open(t.Context(), freshDatabaseURL(t), opts...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		})
//	}
//
// What newBackend must do:
//
//   - Return a new, EMPTY backend (no flows, no tokens) each time it is
//     called: every subtest calls it once for its own backend, and subtests
//     assume they are alone (clean-up counts, the administrator's token list).
//     A SQL backend gets a fresh database or schema, or truncated tables.
//   - Apply every option it is given, in order. The suite always passes
//     backend.WithClock first and sometimes backend.WithUserCodeGenerator;
//     a backend that ignores them fails. newBackend may put options of its
//     own before them (pool size, logger).
//   - Use the t it is given: t.Fatal or t.Skip when no backend can be made,
//     t.Cleanup for its own resources (dropping a database). Those cleanups
//     run after the suite's, so the backend is closed first.
//   - Not close the backend: the suite closes every backend it made
//     (t.Cleanup), exactly once.
//
// # Time
//
// No test sleeps. Each subtest makes a Clock (exported here; goroutine-safe,
// with Now, Advance and Set) starting at a fixed instant,
// 2025-06-15 10:20:30.75 UTC: far from the wall clock, so a backend that
// reads the wrong clock fails, and with a fractional second, so one that
// does not truncate fails too. The suite injects it with
// backend.WithClock(clock.Now). Expiry is tested by moving that clock, so a
// backend must take "now" from its clock for every liveness, expiry,
// creation-time and clean-up decision, never from the database's NOW() or
// from time.Now. Creation times are compared in UTC whole seconds:
// CreationTime must equal the clock truncated to the second, with
// Location() == time.UTC, whatever the clock's zone. The only wall-clock
// measurement is that a call with an expired deadline returns within 0.5 s.
// UUIDv7At makes refresh-token JTIs stamped at any time.
//
// # Decisions the suite pins
//
// Where the contract leaves room, the suite checks these choices (the memory
// and SQL backends follow them):
//
//   - A flow is live while CreationTime > now-maxValidity (strict): at
//     exactly maxValidity old it is expired.
//   - Flow clean-up deletes CreationTime < now-maxRetention (strict): a flow
//     exactly maxRetention old is kept. Refresh-token clean-up deletes
//     JTI < backend.LowestUUIDv7(now-maxRetention), so the lowest UUIDv7 of
//     the cut-off millisecond is kept and one a millisecond older is deleted.
//   - Validation errors come before state errors: a bad argument gives
//     ErrInvalidInput even when the row is unknown, already used or revoked
//     (a rotation of a revoked token to a non-UUIDv7 JTI is not a replay and
//     revokes nothing).
//   - Strings with a NUL character or invalid UTF-8 are ErrInvalidInput.
//     Lengths count code points. An empty scope, code challenge, code
//     challenge method and redirect URI are allowed; an empty client ID or
//     subject is not.
//   - The ErrInvalidInput error text names the field: client_id, scope,
//     redirect_uri, code_challenge, code_challenge_method, sub, jti,
//     id_token, status, max_retention.
//   - An ID token that is nil, or holds a value JSON cannot encode (a
//     channel, a function, NaN, ±Inf), is ErrInvalidInput.
//   - ID tokens have one set of limits on every backend:
//     backend.MaxIDTokenDepth (32) levels and backend.MaxIDTokenBytes
//     (1 MiB) of JSON. A token at the limits is stored and consumed; one
//     level deeper or one byte larger is ErrInvalidInput naming id_token,
//     nothing written.
//   - A negative maxRetention is ErrInvalidInput naming max_retention on
//     the three clean-ups, nothing deleted.
//   - Subjects match exactly: no case folding, no trailing-space padding,
//     no Unicode equivalence, no LIKE wildcards ("alice", "Alice",
//     "alice ", "al%" are four subjects). A SQL backend on a
//     case-insensitive or PAD SPACE collation must compare in binary.
//   - User codes are normalised (backend.NormalizeUserCode) wherever a user
//     code is looked up: DeviceFlowValidateUserCode and
//     DeviceFlowInsertIDToken.
//   - An error from the user-code generator is returned wrapped.
//   - A malformed authorization-flow id gives ErrNotPending or
//     ErrInvalidInput.
//   - A failed rotation writes nothing, except the replay case, whose
//     revocation of the subject's tokens is kept although the call returns
//     ErrTokenReused.
//   - Returned values are deep copies: mutating a returned ID token (nested
//     maps and slices too), a returned token slice, or the map passed in,
//     changes nothing stored.
//   - Every method given a cancelled context returns an error wrapping
//     context.Canceled (an expired deadline: context.DeadlineExceeded) and
//     writes nothing.
//   - Retries of one's own call are idempotent (honest outcomes: a caller
//     whose reply was lost, or who got backend.ErrOutcomeUnknown, calls
//     again with the same arguments): InsertRefreshToken of a row identical
//     to a stored CREATED one (same JTI, subject and scope) succeeds and
//     changes nothing, while any difference (or a revoked row) is still
//     ErrAlreadyExists; RotateRefreshToken(old, new) after it succeeded
//     succeeds again, returns old REVOKED and revokes nothing, while a
//     revoked old token presented with a stored JTI that is not its
//     successor (another subject's or another scope's) is still a replay,
//     ErrTokenReused. Lost replies themselves (ErrOutcomeUnknown, read-backs,
//     no blind re-run of a write) need a real fault between the backend and
//     its server and are tested by internal/faults for the SQL backend, not
//     here: the contract is in package backend's general rules.
//   - After Close, calls return a non-nil error (which one is not checked),
//     except Close itself: a second Close returns nil.
//
// # Layout
//
// Subtests are grouped by area (DeviceFlow, ConsumeDeviceFlow,
// AuthorizationFlow, ConsumeAuthorizationFlow, FlowCleanup, RefreshToken,
// RotateRefreshToken, CleanExpiredRefreshTokens, BadInput, Strings, Copies,
// Context, Lifecycle, Load), one subtest per behaviour, so
// go test -run 'TestX/RotateRefreshToken/Replay' runs one of them. The suite
// calls no t.Parallel; concurrency tests start their own goroutines (24
// racing on one code or token; the load test runs 32 rotation chains of 20
// rotations beside 8 readers and device-flow starters). ErrUnsupported
// belongs to backend.PartitionMaintainer (MySQL partitions) and is not
// checked here.
package conformance
