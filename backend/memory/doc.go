// Package memory is the in-memory authdb backend: a fake for tests and a
// store for single-process deployments that can lose their state.
//
// Open it with New, or by URL through authdb.Open / backend.Open with
// "memory://" (the scheme is registered in this package's init function; a
// URL with anything after "memory://" is an error wrapping
// backend.ErrInvalidInput). Each New or Open is a new, empty store with its
// own options; nothing is shared between two of them and nothing survives
// Close.
//
// The backend implements the backend.Backend contract exactly as the SQL
// backend does and passes the same conformance suite:
//
//   - Concurrency: every method is safe for concurrent use. One mutex guards
//     the whole store, so every method is atomic and linearizable: of N
//     concurrent ConsumeDeviceFlow, ConsumeAuthorizationFlow or
//     RotateRefreshToken calls on one code or token exactly one succeeds.
//     User-supplied callbacks (the clock, the user-code generator, the
//     clean-up progress callback) are never called with the lock held.
//   - Copies: records returned are copies. ID tokens are stored as the JSON
//     bytes of backend.EncodeIDToken and every read decodes a fresh map with
//     backend.DecodeIDToken, so callers get the same types as from a SQL
//     database (numbers are float64, nested objects map[string]any) and
//     mutating a returned map, or the map passed in, changes nothing stored.
//   - Time: "now" is backend.Options.Now (the WithClock clock, in UTC,
//     truncated to whole seconds). A flow is live while
//     CreationTime > now-maxValidity.
//   - Complexity (n: all records of a kind, k: one subject's tokens, S: the
//     number of subjects): flow operations are O(1) map look-ups by user
//     code, device-code hash, flow UUID or authorization-code hash;
//     GetRefreshToken and RevokeRefreshToken are O(log k); InsertRefreshToken
//     and RotateRefreshToken are O(log k) when the new JTI is the subject's
//     newest (UUIDv7s made now always are), O(k) otherwise, and rotation on
//     reuse is O(k); GetUserRefreshTokens(sub) and RevokeUserRefreshTokens(sub)
//     are O(k), independent of n, because each subject's tokens are kept in
//     one slice sorted by JTI; the administrator's listing
//     GetUserRefreshTokens("") is O(n log n); CleanExpiredDeviceFlows and
//     CleanExpiredAuthorizationFlows scan their flows, O(n);
//     CleanExpiredRefreshTokens is O(S log k) plus the tokens it deletes.
//     Refresh tokens are held without pointers (scopes are interned), so
//     millions of them cost the garbage collector little.
//   - After Close every method returns an error wrapping ErrClosed, but
//     Close itself, which may be called again and returns nil.
//
// Options that make no sense in memory (migration, pool settings, clean-up
// batch size, logger) are ignored. WithCleanupProgress is called once per
// clean-up call, after its single batch.
package memory
