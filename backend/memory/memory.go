package memory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// ErrClosed is returned (wrapped) by every method of a Backend after Close.
var ErrClosed = errors.New("authdb: memory backend is closed")

// Scheme is the URL scheme of the memory backend: "memory://".
const Scheme = "memory"

func init() {
	backend.Register(Scheme, open)
}

// open is the backend.Opener of "memory://". The URL must be exactly
// "memory://" (scheme in any case): a host, path, query or fragment is an
// error wrapping backend.ErrInvalidInput.
func open(ctx context.Context, rawURL string, opts ...backend.Option) (backend.Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("authdb: open memory backend: %w", err)
	}
	if backend.Scheme(rawURL) != Scheme {
		return nil, fmt.Errorf("authdb: open memory backend: %w: url: %q is not a memory:// URL",
			backend.ErrInvalidInput, backend.Redact(rawURL))
	}
	if rest := rawURL[len(Scheme)+len("://"):]; rest != "" {
		return nil, fmt.Errorf("authdb: open memory backend: %w: url: %q: nothing may follow memory:// (got %q)",
			backend.ErrInvalidInput, backend.Redact(rawURL), backend.Redact(rest))
	}
	return New(opts...), nil
}

// Backend is the in-memory backend.Backend. Create it with New; the zero
// value is not usable. See the package documentation for its guarantees.
type Backend struct {
	opts backend.Options

	mu     sync.Mutex
	closed bool

	// Device flows, by user code (primary) and by device-code hash.
	deviceByUserCode map[string]*deviceFlow
	deviceByHash     map[codeKey]*deviceFlow

	// Authorization flows, by UUID (primary) and by code hash (once issued).
	authByUUID map[uuid.UUID]*authFlow
	authByHash map[codeKey]*authFlow

	// Refresh tokens, by JTI and by subject (see tokenStore).
	tokens *tokenStore
}

var (
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Describer = (*Backend)(nil)
)

type deviceFlow struct {
	userCode, clientID, scope, deviceCodeHash string
	deviceCodeKey                             codeKey
	status                                    backend.FlowStatus
	created                                   time.Time
	idToken                                   []byte // JSON object, nil until set
}

type authFlow struct {
	id                                                       uuid.UUID
	clientID, scope, challenge, challengeMethod, redirectURI string
	codeHash                                                 string // "" until issued
	codeKey                                                  codeKey
	status                                                   backend.FlowStatus
	created                                                  time.Time
	idToken                                                  []byte
}

// New returns a new, empty in-memory backend configured by opts, safe for
// concurrent use; nothing is shared with any other backend New or Open
// returns. Options that make no sense in memory are ignored. Close drops
// the store; every later call but Close returns an error wrapping ErrClosed.
func New(opts ...backend.Option) *Backend {
	return &Backend{
		opts:             backend.NewOptions(opts...),
		deviceByUserCode: map[string]*deviceFlow{},
		deviceByHash:     map[codeKey]*deviceFlow{},
		authByUUID:       map[uuid.UUID]*authFlow{},
		authByHash:       map[codeKey]*authFlow{},
		tokens:           newTokenStore(),
	}
}

// codeKey is the sha256 of a plain device or authorization code: the key of
// the code indexes (its hex form, backend.HashCode, is what records show).
type codeKey [sha256.Size]byte

// keyOf hashes a plain code without allocating for codes of usual length.
func keyOf(code string) codeKey {
	var buf [64]byte
	if len(code) <= len(buf) {
		n := copy(buf[:], code)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(code))
}

// String returns the lowercase hex form, equal to backend.HashCode of the code.
func (k codeKey) String() string { return hex.EncodeToString(k[:]) }

// begin checks the context and takes the lock; the caller must call b.mu.Unlock
// when begin returns nil.
func (b *Backend) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("authdb: %s: %w", op, ErrClosed)
	}
	return nil
}

// live reports whether a flow created at created is live at now.
func live(created, now time.Time, maxValidity time.Duration) bool {
	return created.After(now.Add(-maxValidity))
}

// InsertDeviceFlow implements backend.Backend.
func (b *Backend) InsertDeviceFlow(ctx context.Context, clientID, scope string) (string, string, error) {
	const op = "insert device flow"
	if err := ctx.Err(); err != nil {
		return "", "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	if err := backend.CheckDeviceFlow(clientID, scope); err != nil {
		return "", "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	deviceCode, err := backend.GenerateCode()
	if err != nil {
		return "", "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	key := keyOf(deviceCode)
	for range backend.MaxUserCodeAttempts {
		userCode, err := b.opts.UserCodeGenerator()
		if err != nil {
			return "", "", fmt.Errorf("authdb: %s: %w", op, err)
		}
		now := b.opts.Now()
		if err := b.begin(ctx, op); err != nil {
			return "", "", err
		}
		if _, taken := b.deviceByUserCode[userCode]; taken {
			b.mu.Unlock()
			continue
		}
		if _, taken := b.deviceByHash[key]; taken {
			// 256 random bits collided: never in practice.
			b.mu.Unlock()
			return "", "", fmt.Errorf("authdb: %s: device code: %w", op, backend.ErrCodeCollision)
		}
		f := &deviceFlow{
			userCode:       userCode,
			clientID:       clientID,
			scope:          scope,
			deviceCodeHash: key.String(),
			deviceCodeKey:  key,
			status:         backend.StatusPending,
			created:        now,
		}
		b.deviceByUserCode[userCode] = f
		b.deviceByHash[key] = f
		b.mu.Unlock()
		return userCode, deviceCode, nil
	}
	return "", "", fmt.Errorf("authdb: %s: no free user code in %d attempts: %w",
		op, backend.MaxUserCodeAttempts, backend.ErrCodeCollision)
}

// DeviceFlowValidateUserCode implements backend.Backend.
func (b *Backend) DeviceFlowValidateUserCode(ctx context.Context, userCode string, maxValidity time.Duration) (string, error) {
	const op = "validate user code"
	code := backend.NormalizeUserCode(userCode)
	now := b.opts.Now()
	if err := b.begin(ctx, op); err != nil {
		return "", err
	}
	defer b.mu.Unlock()
	f := b.deviceByUserCode[code]
	if f == nil || f.status != backend.StatusPending || !live(f.created, now, maxValidity) {
		return "", fmt.Errorf("authdb: %s %q: %w", op, code, backend.ErrNotFound)
	}
	return f.scope, nil
}

// DeviceFlowInsertIDToken implements backend.Backend.
func (b *Backend) DeviceFlowInsertIDToken(ctx context.Context, userCode string, idToken map[string]any, maxValidity time.Duration) error {
	const op = "insert device flow id token"
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	raw, err := backend.EncodeIDToken(idToken)
	if err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	code := backend.NormalizeUserCode(userCode)
	now := b.opts.Now()
	if err := b.begin(ctx, op); err != nil {
		return err
	}
	defer b.mu.Unlock()
	f := b.deviceByUserCode[code]
	if f == nil || f.status != backend.StatusPending || !live(f.created, now, maxValidity) {
		return fmt.Errorf("authdb: %s %q: %w", op, code, backend.ErrNotPending)
	}
	f.idToken = raw
	f.status = backend.StatusReady
	return nil
}

// GetDeviceFlow implements backend.Backend.
func (b *Backend) GetDeviceFlow(ctx context.Context, deviceCode string) (backend.DeviceFlow, error) {
	const op = "get device flow"
	key := keyOf(deviceCode)
	if err := b.begin(ctx, op); err != nil {
		return backend.DeviceFlow{}, err
	}
	f := b.deviceByHash[key]
	if f == nil {
		b.mu.Unlock()
		return backend.DeviceFlow{}, fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
	}
	snap := *f
	b.mu.Unlock()
	return snap.record(op)
}

// UpdateDeviceFlowStatus implements backend.Backend.
func (b *Backend) UpdateDeviceFlowStatus(ctx context.Context, deviceCode string, status backend.FlowStatus) error {
	const op = "update device flow status"
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	if err := backend.CheckFlowStatus(status); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	key := keyOf(deviceCode)
	if err := b.begin(ctx, op); err != nil {
		return err
	}
	defer b.mu.Unlock()
	f := b.deviceByHash[key]
	if f == nil {
		return fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
	}
	f.status = status
	return nil
}

// ConsumeDeviceFlow implements backend.Backend.
func (b *Backend) ConsumeDeviceFlow(ctx context.Context, deviceCode string, maxValidity time.Duration) (backend.DeviceFlow, error) {
	const op = "consume device flow"
	key := keyOf(deviceCode)
	now := b.opts.Now()
	if err := b.begin(ctx, op); err != nil {
		return backend.DeviceFlow{}, err
	}
	f := b.deviceByHash[key]
	var cause error
	switch {
	case f == nil:
		cause = backend.ErrNotFound
	case f.status == backend.StatusDone:
		cause = backend.ErrAlreadyUsed
	case !live(f.created, now, maxValidity):
		cause = backend.ErrExpired
	case f.status == backend.StatusPending:
		cause = backend.ErrAuthorizationPending
	case f.status != backend.StatusReady:
		cause = backend.ErrFlowFailed
	}
	if cause != nil {
		b.mu.Unlock()
		return backend.DeviceFlow{}, fmt.Errorf("authdb: %s: %w", op, cause)
	}
	f.status = backend.StatusDone
	snap := *f
	b.mu.Unlock()
	return snap.record(op)
}

// record returns the public form of a snapshot of a stored device flow.
func (f *deviceFlow) record(op string) (backend.DeviceFlow, error) {
	tok, err := backend.DecodeIDToken(f.idToken)
	if err != nil {
		return backend.DeviceFlow{}, fmt.Errorf("authdb: %s: %w", op, err)
	}
	return backend.DeviceFlow{
		UserCode:     f.userCode,
		ClientID:     f.clientID,
		Scope:        f.scope,
		DeviceCode:   f.deviceCodeHash,
		Status:       f.status,
		CreationTime: f.created,
		IDToken:      tok,
	}, nil
}

// InsertAuthorizationFlow implements backend.Backend.
func (b *Backend) InsertAuthorizationFlow(ctx context.Context, clientID, scope, codeChallenge, codeChallengeMethod, redirectURI string) (string, error) {
	const op = "insert authorization flow"
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	if err := backend.CheckAuthorizationFlow(clientID, scope, codeChallenge, codeChallengeMethod, redirectURI); err != nil {
		return "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	id, err := backend.NewUUIDv7()
	if err != nil {
		return "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	now := b.opts.Now()
	if err := b.begin(ctx, op); err != nil {
		return "", err
	}
	defer b.mu.Unlock()
	if _, taken := b.authByUUID[id]; taken {
		// 74 random bits in the same millisecond collided: never in practice.
		return "", fmt.Errorf("authdb: %s %s: %w", op, id, backend.ErrAlreadyExists)
	}
	b.authByUUID[id] = &authFlow{
		id:              id,
		clientID:        clientID,
		scope:           scope,
		challenge:       codeChallenge,
		challengeMethod: codeChallengeMethod,
		redirectURI:     redirectURI,
		status:          backend.StatusPending,
		created:         now,
	}
	return id.String(), nil
}

// AuthorizationFlowInsertIDToken implements backend.Backend. The flow id is
// accepted in dashed form or as 32 hex digits, any case; a string that is
// neither names no flow: ErrNotPending.
func (b *Backend) AuthorizationFlowInsertIDToken(ctx context.Context, flowID string, idToken map[string]any, maxValidity time.Duration) (string, string, error) {
	const op = "insert authorization flow id token"
	if err := ctx.Err(); err != nil {
		return "", "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	id, raw, code, err := backend.PrepareAuthorizationIDToken(flowID, idToken)
	if err != nil {
		return "", "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	key := keyOf(code)
	now := b.opts.Now()
	if err := b.begin(ctx, op); err != nil {
		return "", "", err
	}
	defer b.mu.Unlock()
	f := b.authByUUID[id]
	if f == nil || f.status != backend.StatusPending || !live(f.created, now, maxValidity) {
		return "", "", fmt.Errorf("authdb: %s %s: %w", op, id, backend.ErrNotPending)
	}
	if _, taken := b.authByHash[key]; taken {
		// 256 random bits collided: never in practice.
		return "", "", fmt.Errorf("authdb: %s %s: code: %w", op, id, backend.ErrCodeCollision)
	}
	if f.codeHash != "" {
		// A flow set back to PENDING gets a new code; the old one dies.
		delete(b.authByHash, f.codeKey)
	}
	f.codeHash, f.codeKey = key.String(), key
	f.idToken = raw
	f.status = backend.StatusReady
	b.authByHash[key] = f
	return code, f.redirectURI, nil
}

// GetAuthorizationFlow implements backend.Backend.
func (b *Backend) GetAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (backend.AuthorizationFlow, error) {
	const op = "get authorization flow"
	key := keyOf(code)
	now := b.opts.Now()
	if err := b.begin(ctx, op); err != nil {
		return backend.AuthorizationFlow{}, err
	}
	f := b.authByHash[key]
	if f == nil || !live(f.created, now, maxValidity) {
		b.mu.Unlock()
		return backend.AuthorizationFlow{}, fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
	}
	snap := *f
	b.mu.Unlock()
	return snap.record(op)
}

// UpdateAuthorizationFlowStatus implements backend.Backend.
func (b *Backend) UpdateAuthorizationFlowStatus(ctx context.Context, code string, status backend.FlowStatus) error {
	const op = "update authorization flow status"
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	if err := backend.CheckFlowStatus(status); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	key := keyOf(code)
	if err := b.begin(ctx, op); err != nil {
		return err
	}
	defer b.mu.Unlock()
	f := b.authByHash[key]
	if f == nil {
		return fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
	}
	f.status = status
	return nil
}

// ConsumeAuthorizationFlow implements backend.Backend.
func (b *Backend) ConsumeAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (backend.AuthorizationFlow, error) {
	const op = "consume authorization flow"
	key := keyOf(code)
	now := b.opts.Now()
	if err := b.begin(ctx, op); err != nil {
		return backend.AuthorizationFlow{}, err
	}
	f := b.authByHash[key]
	var cause error
	switch {
	case f == nil || !live(f.created, now, maxValidity):
		cause = backend.ErrNotFound
	case f.status == backend.StatusDone:
		cause = backend.ErrAlreadyUsed
	case f.status != backend.StatusReady:
		cause = backend.ErrFlowFailed
	}
	if cause != nil {
		b.mu.Unlock()
		return backend.AuthorizationFlow{}, fmt.Errorf("authdb: %s: %w", op, cause)
	}
	f.status = backend.StatusDone
	snap := *f
	b.mu.Unlock()
	return snap.record(op)
}

// record returns the public form of a snapshot of a stored authorization flow.
func (f *authFlow) record(op string) (backend.AuthorizationFlow, error) {
	tok, err := backend.DecodeIDToken(f.idToken)
	if err != nil {
		return backend.AuthorizationFlow{}, fmt.Errorf("authdb: %s: %w", op, err)
	}
	return backend.AuthorizationFlow{
		UUID:                f.id.String(),
		ClientID:            f.clientID,
		Scope:               f.scope,
		CodeChallenge:       f.challenge,
		CodeChallengeMethod: f.challengeMethod,
		RedirectURI:         f.redirectURI,
		Code:                f.codeHash,
		Status:              f.status,
		CreationTime:        f.created,
		IDToken:             tok,
	}, nil
}

// InsertRefreshToken implements backend.Backend. An identical stored row
// (CREATED, same subject and scope) is a success: the caller's own retry.
func (b *Backend) InsertRefreshToken(ctx context.Context, jti uuid.UUID, sub, scope string) error {
	const op = "insert refresh token"
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("authdb: %s %s: %w", op, jti, err)
	}
	if err := backend.CheckRefreshToken(jti, sub, scope); err != nil {
		return fmt.Errorf("authdb: %s %s: %w", op, jti, err)
	}
	if err := b.begin(ctx, op); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if si, i, ok := b.tokens.lookup(jti); ok {
		if r := b.tokens.record(si, i); r.Status == backend.TokenCreated && r.Sub == sub && r.Scope == scope {
			return nil // an identical row: the caller's own retry
		}
		return fmt.Errorf("authdb: %s %s: %w", op, jti, backend.ErrAlreadyExists)
	}
	b.tokens.insert(jti, sub, scope)
	return nil
}

// GetRefreshToken implements backend.Backend.
func (b *Backend) GetRefreshToken(ctx context.Context, jti uuid.UUID) (backend.RefreshToken, error) {
	const op = "get refresh token"
	if err := b.begin(ctx, op); err != nil {
		return backend.RefreshToken{}, err
	}
	defer b.mu.Unlock()
	si, i, ok := b.tokens.lookup(jti)
	if !ok {
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s %s: %w", op, jti, backend.ErrNotFound)
	}
	return b.tokens.record(si, i), nil
}

// GetUserRefreshTokens implements backend.Backend. With a subject it costs
// O(that subject's tokens) whatever the store's size; with "" it lists every
// token, O(n log n).
func (b *Backend) GetUserRefreshTokens(ctx context.Context, sub string) ([]backend.RefreshToken, error) {
	const op = "get user refresh tokens"
	if err := b.begin(ctx, op); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if sub == "" {
		return b.tokens.listAll(), nil
	}
	return b.tokens.listSubject(sub), nil
}

// RevokeRefreshToken implements backend.Backend.
func (b *Backend) RevokeRefreshToken(ctx context.Context, jti uuid.UUID) error {
	const op = "revoke refresh token"
	if err := b.begin(ctx, op); err != nil {
		return err
	}
	defer b.mu.Unlock()
	si, i, ok := b.tokens.lookup(jti)
	if !ok {
		return fmt.Errorf("authdb: %s %s: %w", op, jti, backend.ErrNotFound)
	}
	b.tokens.revoke(si, i)
	return nil
}

// RevokeUserRefreshTokens implements backend.Backend.
func (b *Backend) RevokeUserRefreshTokens(ctx context.Context, sub string) (int64, error) {
	const op = "revoke user refresh tokens"
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("authdb: %s: %w", op, err)
	}
	if err := backend.CheckString("sub", sub, backend.MaxSubLen, true); err != nil {
		return 0, fmt.Errorf("authdb: %s: %w", op, err)
	}
	if err := b.begin(ctx, op); err != nil {
		return 0, err
	}
	defer b.mu.Unlock()
	si, ok := b.tokens.subjectIndex(sub, false)
	if !ok {
		return 0, nil
	}
	return b.tokens.revokeAll(si), nil
}

// RotateRefreshToken implements backend.Backend, with the family options
// (see backend.Options.RotationBounds): in this order, an unknown old token
// is ErrNotFound; a retry of a rotation that happened (old already replaced
// by newJTI) succeeds; a family older than WithFamilyLifetime is ErrExpired;
// a CREATED old token rotates; a REVOKED one whose successor is CREATED and
// was made within WithRotationGrace succeeds without writing, returning the
// successor in ReplacedBy; any other REVOKED one is a replay: its family, or
// its subject (WithReuseScope, and the fallback of
// backend.FamilyFollowable), is revoked and ErrTokenReused returned.
func (b *Backend) RotateRefreshToken(ctx context.Context, oldJTI, newJTI uuid.UUID) (backend.RefreshToken, error) {
	const op = "rotate refresh token"
	if err := ctx.Err(); err != nil {
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s %s: %w", op, oldJTI, err)
	}
	if err := backend.CheckJTI("new_jti", newJTI); err != nil {
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s %s: %w", op, oldJTI, err)
	}
	bounds := b.opts.RotationBounds() // the clock, called without the lock
	if err := b.begin(ctx, op); err != nil {
		return backend.RefreshToken{}, err
	}
	defer b.mu.Unlock()
	si, i, ok := b.tokens.lookup(oldJTI)
	if !ok {
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s %s: %w", op, oldJTI, backend.ErrNotFound)
	}
	t := b.tokens.subs[si].tokens[i]
	if t.revoked && t.replacedBy == newJTI {
		return b.tokens.record(si, i), nil // the caller's own rotation, retried
	}
	if bounds.Expired(t.familyID()) {
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s %s: family %s older than the family lifetime: %w",
			op, oldJTI, t.familyID(), backend.ErrExpired)
	}
	if t.revoked {
		if bounds.InGrace(t.replacedBy) {
			if sj, k, ok := b.tokens.lookup(t.replacedBy); ok && !b.tokens.subs[sj].tokens[k].revoked {
				return b.tokens.record(si, i), nil // converge on the successor
			}
		}
		scope, n := backend.RevokeSubject, int64(0)
		if b.opts.ReuseScope == backend.RevokeFamily && backend.FamilyFollowable(b.tokens.record(si, i)) {
			scope, n = backend.RevokeFamily, b.tokens.revokeFamily(si, t.familyID())
		} else {
			n = b.tokens.revokeAll(si)
		}
		b.reused(ctx, backend.ReuseEvent{Sub: b.tokens.subs[si].sub, JTI: oldJTI, FamilyID: t.familyID(), Scope: scope, Revoked: n})
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s %s: replayed; %d tokens of the %s revoked: %w",
			op, oldJTI, n, scope, backend.ErrTokenReused)
	}
	if b.tokens.exists(newJTI) {
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s %s: new_jti %s: %w",
			op, oldJTI, newJTI, backend.ErrAlreadyExists)
	}
	return b.tokens.rotate(si, i, newJTI), nil
}

// reused records a detected replay (backend.ReportReuse: a Warn record on
// the backend's logger and the context's Observer), once per replay,
// after the revocation. It runs under b.mu: the Observer must not call
// the backend.
func (b *Backend) reused(ctx context.Context, e backend.ReuseEvent) {
	backend.ReportReuse(ctx, b.opts.Logger, e)
}

// Describe implements backend.Describer: System "memory", nothing else.
func (b *Backend) Describe() backend.Description { return backend.Description{System: "memory"} }

// RevokeRefreshTokenFamily implements backend.Backend: O(the subject's
// tokens), since a family never leaves its subject.
func (b *Backend) RevokeRefreshTokenFamily(ctx context.Context, jti uuid.UUID) (int64, error) {
	const op = "revoke refresh token family"
	if err := b.begin(ctx, op); err != nil {
		return 0, err
	}
	defer b.mu.Unlock()
	si, i, ok := b.tokens.lookup(jti)
	if !ok {
		return 0, fmt.Errorf("authdb: %s %s: %w", op, jti, backend.ErrNotFound)
	}
	return b.tokens.revokeFamily(si, b.tokens.subs[si].tokens[i].familyID()), nil
}

// CleanExpiredDeviceFlows implements backend.Backend: one scan of the store.
func (b *Backend) CleanExpiredDeviceFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	const op = "clean expired device flows"
	if err := backend.CheckRetention(maxRetention); err != nil {
		return 0, fmt.Errorf("authdb: %s: %w", op, err)
	}
	cutoff := b.opts.Now().Add(-maxRetention)
	if err := b.begin(ctx, op); err != nil {
		return 0, err
	}
	var n int64
	for code, f := range b.deviceByUserCode {
		if f.created.Before(cutoff) {
			delete(b.deviceByUserCode, code)
			delete(b.deviceByHash, f.deviceCodeKey)
			n++
		}
	}
	b.mu.Unlock()
	b.progress("DeviceFlows", n)
	return n, nil
}

// CleanExpiredAuthorizationFlows implements backend.Backend: one scan of the store.
func (b *Backend) CleanExpiredAuthorizationFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	const op = "clean expired authorization flows"
	if err := backend.CheckRetention(maxRetention); err != nil {
		return 0, fmt.Errorf("authdb: %s: %w", op, err)
	}
	cutoff := b.opts.Now().Add(-maxRetention)
	if err := b.begin(ctx, op); err != nil {
		return 0, err
	}
	var n int64
	for id, f := range b.authByUUID {
		if f.created.Before(cutoff) {
			delete(b.authByUUID, id)
			if f.codeHash != "" {
				delete(b.authByHash, f.codeKey)
			}
			n++
		}
	}
	b.mu.Unlock()
	b.progress("AuthorizationFlows", n)
	return n, nil
}

// CleanExpiredRefreshTokens implements backend.Backend: deletes the tokens
// whose JTI is bytewise below backend.LowestUUIDv7(now-maxRetention), in one
// scan of the store.
func (b *Backend) CleanExpiredRefreshTokens(ctx context.Context, maxRetention time.Duration) (int64, error) {
	const op = "clean expired refresh tokens"
	if err := backend.CheckRetention(maxRetention); err != nil {
		return 0, fmt.Errorf("authdb: %s: %w", op, err)
	}
	bound := backend.LowestUUIDv7(b.opts.Now().Add(-maxRetention))
	if err := b.begin(ctx, op); err != nil {
		return 0, err
	}
	n := b.tokens.deleteBefore(bound)
	b.mu.Unlock()
	b.progress("RefreshTokens", n)
	return n, nil
}

// progress reports a finished clean-up to the WithCleanupProgress callback,
// without the lock held.
func (b *Backend) progress(table string, n int64) {
	if b.opts.CleanupProgress != nil {
		b.opts.CleanupProgress(table, n)
	}
}

// Ping implements backend.Backend: nil unless ctx is done or the backend
// is closed.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.begin(ctx, "ping"); err != nil {
		return err
	}
	b.mu.Unlock()
	return nil
}

// Close implements backend.Backend: it drops the store's contents. Every
// later call returns an error wrapping ErrClosed, but Close itself, which
// may be called again and returns nil.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.deviceByUserCode, b.deviceByHash = nil, nil
	b.authByUUID, b.authByHash = nil, nil
	b.tokens = nil
	return nil
}
