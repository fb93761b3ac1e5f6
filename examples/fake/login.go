// Package login is the example of a downstream package that uses authdb,
// and of how such a package tests itself with the in-memory backend as a
// fake (see login_test.go; the directory is examples/fake for that reason).
//
// The pattern to copy:
//
//   - Depend on the interface, backend.Backend, never on a concrete backend:
//     production code passes what authdb.Open returned (SQLite, PostgreSQL,
//     MySQL), tests pass memory.New(...).
//   - In tests, build the fake with memory.New and inject the clock with
//     backend.WithClock: expiry is then tested by moving the clock, never by
//     sleeping. The memory backend passes the same conformance suite as the
//     SQL backends, so what the fake does is what production does.
//   - Compare errors with errors.Is against the backend's sentinels, and
//     translate them into your package's own errors at its boundary.
//
// The package itself is the user-facing half of a token service: the page
// where a user approves a device after logging in, and the "your sessions" /
// "sign out everywhere" page.
package login

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/authdb/authdb/backend"
)

// ErrUnknownCode is returned by Approve when the user code matches no
// pending device flow (mistyped, already used, or expired).
var ErrUnknownCode = errors.New("login: unknown or expired code")

// Service approves device logins and manages a user's sessions. It is safe
// for concurrent use if its store is (every authdb backend is).
type Service struct {
	store    backend.Backend
	validity time.Duration // how long a device flow may be approved
}

// New returns a Service on store; device flows can be approved for validity
// after they started.
func New(store backend.Backend, validity time.Duration) *Service {
	return &Service{store: store, validity: validity}
}

// Approve is called when the user, logged in as sub, types the user code a
// device shows ("bcdf-ghjk" and "BCDFGHJK" are the same code). It returns
// the scope the device asked for. A code that matches no pending, unexpired
// flow is ErrUnknownCode.
func (s *Service) Approve(ctx context.Context, userCode, sub string) (scope string, err error) {
	scope, err = s.store.DeviceFlowValidateUserCode(ctx, userCode, s.validity)
	if errors.Is(err, backend.ErrNotFound) {
		return "", ErrUnknownCode
	}
	if err != nil {
		return "", fmt.Errorf("login: approve: %w", err)
	}
	err = s.store.DeviceFlowInsertIDToken(ctx, userCode, map[string]any{"sub": sub}, s.validity)
	if errors.Is(err, backend.ErrNotPending) { // approved or expired meanwhile
		return "", ErrUnknownCode
	}
	if err != nil {
		return "", fmt.Errorf("login: approve: %w", err)
	}
	return scope, nil
}

// Session is one of a user's live refresh tokens.
type Session struct {
	ID    string    // the refresh token's JTI
	Scope string    // what it grants
	Since time.Time // when it was issued (the JTI's UUIDv7 time)
}

// Sessions lists sub's live sessions, oldest first.
func (s *Service) Sessions(ctx context.Context, sub string) ([]Session, error) {
	toks, err := s.store.GetUserRefreshTokens(ctx, sub)
	if err != nil {
		return nil, fmt.Errorf("login: sessions of %s: %w", sub, err)
	}
	out := make([]Session, len(toks))
	for i, t := range toks {
		out[i] = Session{ID: t.JTI.String(), Scope: t.Scope, Since: backend.UUIDv7Time(t.JTI)}
	}
	return out, nil
}

// SignOutEverywhere revokes every refresh token of sub and returns how many
// sessions it ended.
func (s *Service) SignOutEverywhere(ctx context.Context, sub string) (int, error) {
	n, err := s.store.RevokeUserRefreshTokens(ctx, sub)
	if err != nil {
		return 0, fmt.Errorf("login: sign out %s: %w", sub, err)
	}
	return int(n), nil
}
