package backend

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// FlowStatus is the state of a device or authorization-code flow. It is
// stored by name. The normal life of a flow is PENDING -> READY -> DONE;
// ERROR is set when the identity provider refused the user.
type FlowStatus string

// The four flow statuses.
const (
	StatusPending FlowStatus = "PENDING" // inserted, waiting for the user's login
	StatusReady   FlowStatus = "READY"   // the ID token is stored; the code may be redeemed
	StatusDone    FlowStatus = "DONE"    // redeemed: tokens were issued
	StatusError   FlowStatus = "ERROR"   // the login failed
)

// Valid reports whether s is one of the four flow statuses.
func (s FlowStatus) Valid() bool {
	switch s {
	case StatusPending, StatusReady, StatusDone, StatusError:
		return true
	}
	return false
}

// TokenStatus is the state of a refresh token, stored by name. A token is
// CREATED, then REVOKED when rotated or revoked. There is no EXPIRED status:
// expiry follows from the creation time encoded in the UUIDv7 JTI.
type TokenStatus string

// The two refresh-token statuses.
const (
	TokenCreated TokenStatus = "CREATED"
	TokenRevoked TokenStatus = "REVOKED"
)

// Valid reports whether s is one of the two token statuses.
func (s TokenStatus) Valid() bool { return s == TokenCreated || s == TokenRevoked }

// DeviceFlow is a row of DeviceFlows (RFC 8628 device authorization).
type DeviceFlow struct {
	UserCode   string // 8 characters of UserCodeAlphabet, the primary key
	ClientID   string
	Scope      string
	DeviceCode string // sha256 hex of the plain device code, as stored
	Status     FlowStatus
	// CreationTime is UTC, truncated to whole seconds.
	CreationTime time.Time
	IDToken      map[string]any // nil until set
}

// AuthorizationFlow is a row of AuthorizationFlows (authorization code with PKCE).
type AuthorizationFlow struct {
	UUID                string // UUIDv7, canonical dashed form
	ClientID            string
	Scope               string
	CodeChallenge       string
	CodeChallengeMethod string
	RedirectURI         string
	Code                string // sha256 hex of the plain code, as stored; "" until issued
	Status              FlowStatus
	// CreationTime is UTC, truncated to whole seconds.
	CreationTime time.Time
	IDToken      map[string]any // nil until set
}

// RefreshToken is a row of RefreshTokens.
type RefreshToken struct {
	JTI    uuid.UUID // a UUIDv7: its timestamp is the creation time
	Status TokenStatus
	Scope  string
	Sub    string
	// FamilyID is the JTI of the first token of the token's family (its login
	// session); uuid.Nil when the row has none (written by DiracX, or before
	// families): such a token is its own family's first token.
	FamilyID uuid.UUID
	// ReplacedBy is the JTI of the token's successor, set by the rotation
	// that revoked it; uuid.Nil when none.
	ReplacedBy uuid.UUID
}

// Backend is the storage contract of authdb, the method set of the DiracX
// Auth DB. Every implementation must pass the conformance suite
// (package conformance).
//
// General rules, for every method:
//   - All methods are safe for concurrent use by many goroutines.
//   - "now" is the backend's clock (WithClock), never the database's: liveness,
//     expiry and clean-up compare stored creation times with it. A flow is live
//     while CreationTime > now-maxValidity.
//   - Errors are the sentinels of this package, compared with errors.Is and
//     wrapped with context. Driver errors are wrapped, never swallowed.
//   - Bad input returns an error wrapping ErrInvalidInput that names the field,
//     and nothing is written.
//   - A cancelled or expired context returns the context's error (errors.Is
//     context.Canceled / context.DeadlineExceeded) and leaves no partial write.
//   - Honest outcomes: a write either reports what happened or says it cannot
//     know. When the connection is lost, the reply does not arrive, or the
//     context ends after a statement may have reached the server, the backend
//     finds the truth where it can (a read-back on a fresh context bounded by a
//     few seconds, after ending the lost session on the server) and returns
//     success or the real outcome; otherwise an error wrapping
//     ErrOutcomeUnknown (and the context's error when that was the cause). It
//     never returns ErrTokenReused, ErrAlreadyUsed or ErrAlreadyExists for the
//     caller's own write, and no layer runs a write again blindly.
//   - Retries of one's own call are idempotent: InsertRefreshToken of a row
//     identical to a stored CREATED one (same subject and scope) succeeds;
//     RotateRefreshToken(old, new) when old is REVOKED and new is stored with
//     old's subject and scope succeeds (the rotation happened); revocations and
//     status updates may be run again. A Consume* whose outcome is unknown is
//     ErrOutcomeUnknown, never a second success: its retry may get
//     ErrAlreadyUsed for the caller's own redemption.
//   - Every method that writes is atomic: it writes all of its effect or none.
//   - Returned values are copies: mutating them changes nothing stored.
//   - Codes passed in are plain codes (as handed to the client); the store only
//     ever holds their sha256 hex.
type Backend interface {
	// InsertDeviceFlow starts a device flow with status PENDING and returns
	// the user code (8 characters of UserCodeAlphabet) and the plain device
	// code (32 random bytes, base64url without padding); the row stores the
	// device code's sha256 hex. A user code already in use is retried with a
	// fresh one, at most MaxUserCodeAttempts attempts in all, then
	// ErrCodeCollision. Empty clientID, clientID over 255 or scope over 1024
	// characters: ErrInvalidInput.
	InsertDeviceFlow(ctx context.Context, clientID, scope string) (userCode, deviceCode string, err error)

	// DeviceFlowValidateUserCode returns the scope of the flow with this user
	// code (normalised by NormalizeUserCode) if it is PENDING and live, else
	// ErrNotFound.
	DeviceFlowValidateUserCode(ctx context.Context, userCode string, maxValidity time.Duration) (scope string, err error)

	// DeviceFlowInsertIDToken stores idToken on a PENDING, live flow and sets
	// it READY. Any other flow (unknown, expired, not PENDING): ErrNotPending,
	// nothing written. An ID token that does not encode as a JSON object:
	// ErrInvalidInput.
	DeviceFlowInsertIDToken(ctx context.Context, userCode string, idToken map[string]any, maxValidity time.Duration) error

	// GetDeviceFlow returns the flow of a plain device code, whatever its
	// status and age; ErrNotFound if none.
	GetDeviceFlow(ctx context.Context, deviceCode string) (DeviceFlow, error)

	// UpdateDeviceFlowStatus sets the status of the flow of a plain device
	// code. ErrNotFound if none; a status outside the four: ErrInvalidInput.
	UpdateDeviceFlowStatus(ctx context.Context, deviceCode string, status FlowStatus) error

	// ConsumeDeviceFlow is the token endpoint's step, atomic: a live READY
	// flow becomes DONE and is returned as stored after the call. Otherwise,
	// checked in this order: ErrNotFound (unknown code), ErrAlreadyUsed (DONE,
	// whatever its age), ErrExpired (not live), ErrAuthorizationPending
	// (PENDING), ErrFlowFailed (ERROR). Of N concurrent calls on one code
	// exactly one succeeds.
	ConsumeDeviceFlow(ctx context.Context, deviceCode string, maxValidity time.Duration) (DeviceFlow, error)

	// InsertAuthorizationFlow starts an authorization-code flow with status
	// PENDING and returns its id, a new UUIDv7 in dashed form. Empty clientID,
	// clientID, codeChallenge or redirectURI over 255, scope over 1024,
	// codeChallengeMethod over 8 characters: ErrInvalidInput.
	InsertAuthorizationFlow(ctx context.Context, clientID, scope, codeChallenge, codeChallengeMethod, redirectURI string) (uuid string, err error)

	// AuthorizationFlowInsertIDToken makes a fresh code for a PENDING, live
	// flow, stores its sha256 hex and the ID token, sets READY, and returns the
	// plain code and the stored redirect URI. Otherwise ErrNotPending, nothing
	// written.
	AuthorizationFlowInsertIDToken(ctx context.Context, uuid string, idToken map[string]any, maxValidity time.Duration) (code, redirectURI string, err error)

	// GetAuthorizationFlow returns the live flow of a plain code, whatever its
	// status; ErrNotFound if unknown or not live.
	GetAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (AuthorizationFlow, error)

	// UpdateAuthorizationFlowStatus sets the status of the flow of a plain
	// code. ErrNotFound if none; a status outside the four: ErrInvalidInput.
	UpdateAuthorizationFlowStatus(ctx context.Context, code string, status FlowStatus) error

	// ConsumeAuthorizationFlow atomically turns the live READY flow of a plain
	// code into DONE and returns it as stored after the call. Otherwise:
	// ErrNotFound (unknown, or not live), ErrAlreadyUsed (DONE),
	// ErrFlowFailed (any other status). Of N concurrent calls on one code
	// exactly one succeeds.
	ConsumeAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (AuthorizationFlow, error)

	// InsertRefreshToken stores a CREATED token, the first of its own
	// family (FamilyID = jti, ReplacedBy none). A JTI that exists:
	// ErrAlreadyExists, unless the stored row is CREATED with the same sub
	// and scope (the caller's own retry): nil. The nil UUID or a JTI that is not a UUIDv7, an empty
	// sub, sub over 256 or scope over 1024 characters: ErrInvalidInput.
	InsertRefreshToken(ctx context.Context, jti uuid.UUID, sub, scope string) error

	// GetRefreshToken returns a token whatever its status; ErrNotFound.
	GetRefreshToken(ctx context.Context, jti uuid.UUID) (RefreshToken, error)

	// GetUserRefreshTokens returns, for a non-empty sub, that subject's tokens
	// that are not revoked; for sub == "", every token of every subject,
	// revoked ones included (the administrator's view). Ordered by JTI
	// (creation time). Never nil-vs-empty sensitive: no tokens is a nil or
	// empty slice and no error.
	GetUserRefreshTokens(ctx context.Context, sub string) ([]RefreshToken, error)

	// RevokeRefreshToken sets REVOKED; revoking a revoked token is not an
	// error. Unknown JTI: ErrNotFound.
	RevokeRefreshToken(ctx context.Context, jti uuid.UUID) error

	// RevokeUserRefreshTokens revokes every token of sub and returns how many
	// changed (tokens already revoked are not counted). An empty sub is
	// ErrInvalidInput, never "everyone".
	RevokeUserRefreshTokens(ctx context.Context, sub string) (int64, error)

	// RotateRefreshToken atomically rotates oldJTI into newJTI. Unknown old:
	// ErrNotFound. Old already REVOKED: a stolen token was replayed, so every
	// token of that subject is revoked and ErrTokenReused is returned, unless
	// newJTI is stored with old's subject and scope: the rotation happened
	// (this is the caller's own retry) and the call succeeds.
	// Otherwise old becomes REVOKED, newJTI is inserted CREATED with the same
	// subject and scope, and the old record as stored after the call (REVOKED)
	// is returned. newJTI must be a UUIDv7 (ErrInvalidInput) that does not
	// exist (ErrAlreadyExists; nothing written). Of N concurrent rotations of
	// one token exactly one succeeds, the others get ErrTokenReused, and
	// afterwards the subject has no live token.
	//
	// Families (families.go, docs/families.md): the rotation sets the old
	// token's ReplacedBy to newJTI and gives newJTI the old token's family
	// (FamilyID, or its JTI when it has none, which is written into it too).
	// In this order: unknown old, ErrNotFound; old REVOKED with ReplacedBy ==
	// newJTI (the caller's own retry), success, nothing written; a family
	// started more than WithFamilyLifetime ago, ErrExpired, nothing written;
	// old CREATED, the rotation; old REVOKED whose successor is CREATED and
	// was made less than WithRotationGrace ago, success, nothing written,
	// the returned record's ReplacedBy is that successor (hand it out);
	// otherwise a replay: WithReuseScope(RevokeFamily) revokes the old
	// token's family only (the subject when FamilyFollowable is false),
	// the default every token of the subject, and ErrTokenReused.
	RotateRefreshToken(ctx context.Context, oldJTI, newJTI uuid.UUID) (RefreshToken, error)

	// RevokeRefreshTokenFamily revokes every token of the family of jti (signs
	// out one login session) and returns how many changed (tokens already
	// revoked are not counted). Unknown jti: ErrNotFound.
	RevokeRefreshTokenFamily(ctx context.Context, jti uuid.UUID) (int64, error)

	// CleanExpiredDeviceFlows deletes device flows created before
	// now-maxRetention (CreationTime < now-maxRetention), whatever their
	// status, and returns the count. SQL backends delete in bounded batches
	// (WithCleanupBatchSize) so no statement holds locks for long.
	CleanExpiredDeviceFlows(ctx context.Context, maxRetention time.Duration) (int64, error)

	// CleanExpiredAuthorizationFlows deletes authorization flows created
	// before now-maxRetention, whatever their status, and returns the count.
	CleanExpiredAuthorizationFlows(ctx context.Context, maxRetention time.Duration) (int64, error)

	// CleanExpiredRefreshTokens deletes tokens whose JTI timestamp is before
	// now-maxRetention (a range on the primary key), whatever their status,
	// and returns the count: JTI < LowestUUIDv7(now-maxRetention).
	CleanExpiredRefreshTokens(ctx context.Context, maxRetention time.Duration) (int64, error)

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error

	// Close releases the backend's resources. Calls after Close fail, but
	// Close itself: a second Close returns nil.
	Close() error
}

// PartitionReport describes the monthly partitions of RefreshTokens: each
// time is the first instant (UTC) of a month.
type PartitionReport struct {
	Existing []time.Time // monthly partitions before the call (p_future not included)
	Added    []time.Time // months added (or, for a plan, to add)
	Dropped  []time.Time // months dropped (or, for a plan, to drop)
}

// PartitionMaintainer is implemented by backends that partition
// RefreshTokens by month (the SQL backend on MySQL/MariaDB). On other engines
// the methods return ErrUnsupported.
//
// Dropping a partition deletes its tokens, revoked or not, so
// retentionMonths must outlive the longest refresh-token lifetime.
type PartitionMaintainer interface {
	// PlanRefreshTokenPartitions returns the existing partitions and what
	// MaintainRefreshTokenPartitions would add and drop, without changing
	// anything.
	PlanRefreshTokenPartitions(ctx context.Context, retentionMonths, monthsAhead int) (PartitionReport, error)
	// MaintainRefreshTokenPartitions adds partitions up to now+monthsAhead
	// (splitting p_future), then drops those whose upper bound is at or before
	// now-retentionMonths, and reports what it did.
	MaintainRefreshTokenPartitions(ctx context.Context, retentionMonths, monthsAhead int) (PartitionReport, error)
}
