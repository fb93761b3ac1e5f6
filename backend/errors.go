package backend

import "errors"

// Sentinel errors. Backends wrap them with context (fmt.Errorf("...: %w",
// ErrX)); callers compare with errors.Is. Each outcome has its own sentinel.
var (
	// ErrNotFound: no row matches (or, where a method says so, the row is not live).
	ErrNotFound = errors.New("authdb: not found")
	// ErrExpired: the flow exists but is older than its maximum validity.
	ErrExpired = errors.New("authdb: expired")
	// ErrNotPending: the flow is unknown, expired or no longer PENDING, so no ID token may be stored.
	ErrNotPending = errors.New("authdb: flow is not pending")
	// ErrAuthorizationPending: the user has not finished logging in yet (RFC 8628 authorization_pending).
	ErrAuthorizationPending = errors.New("authdb: authorization pending")
	// ErrAlreadyUsed: the code was already redeemed (status DONE).
	ErrAlreadyUsed = errors.New("authdb: code already used")
	// ErrFlowFailed: the flow ended in a status from which no token can be issued.
	ErrFlowFailed = errors.New("authdb: flow failed")
	// ErrAlreadyExists: a record with this key exists.
	ErrAlreadyExists = errors.New("authdb: already exists")
	// ErrCodeCollision: no free user code was found in MaxUserCodeAttempts attempts.
	ErrCodeCollision = errors.New("authdb: user code collision")
	// ErrTokenReused: a revoked refresh token was presented again; the subject's tokens were revoked.
	ErrTokenReused = errors.New("authdb: refresh token reused")
	// ErrInvalidInput: an argument is malformed; the wrapping error names the field.
	ErrInvalidInput = errors.New("authdb: invalid input")
	// ErrUnsupported: the backend or engine cannot do this (e.g. partitions outside MySQL).
	ErrUnsupported = errors.New("authdb: unsupported")
	// ErrOutcomeUnknown: the call may or may not have taken effect (the
	// connection was lost, the reply never came, or the context ended after a
	// statement may have reached the server) and a read-back could not tell.
	// When a context ended the call, the error wraps the context's error too.
	ErrOutcomeUnknown = errors.New("authdb: outcome unknown")
)

// sentinels lists every sentinel above, for IsSentinel.
var sentinels = []error{
	ErrNotFound, ErrExpired, ErrNotPending, ErrAuthorizationPending, ErrAlreadyUsed, ErrFlowFailed,
	ErrAlreadyExists, ErrCodeCollision, ErrTokenReused, ErrInvalidInput, ErrUnsupported, ErrOutcomeUnknown,
}

// IsSentinel reports whether err wraps one of this package's sentinel
// errors: an outcome of the contract, as opposed to a driver or I/O error.
// Backends use it to wrap only the latter at their boundary.
func IsSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
