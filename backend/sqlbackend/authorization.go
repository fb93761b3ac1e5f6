package sqlbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// InsertAuthorizationFlow implements backend.Backend: one INSERT.
func (b *Backend) InsertAuthorizationFlow(ctx context.Context, clientID, scope, codeChallenge, codeChallengeMethod, redirectURI string) (string, error) {
	const op = "insert authorization flow"
	if err := start(ctx, op); err != nil {
		return "", err
	}
	if err := backend.CheckAuthorizationFlow(clientID, scope, codeChallenge, codeChallengeMethod, redirectURI); err != nil {
		return "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	if err := b.checkColumns("AuthorizationFlows", "ClientID", "client_id", clientID, "Scope", "scope", scope,
		"CodeChallenge", "code_challenge", codeChallenge, "CodeChallengeMethod", "code_challenge_method", codeChallengeMethod,
		"RedirectURI", "redirect_uri", redirectURI); err != nil {
		return "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	var id uuid.UUID
	err := b.retryWrite(ctx, op, func() error {
		// A new id per attempt: after a lost connection the first insert
		// may have happened, and is then an orphan nobody knows the id of.
		var err error
		if id, err = backend.NewUUIDv7(); err != nil {
			return fmt.Errorf("authdb: %s: %w", op, err)
		}
		pctx, p := withProbe(ctx)
		_, err = b.write(pctx, b.q.insertAuth, b.idArg(id), clientID, b.timeArg(b.now()),
			scope, codeChallenge, codeChallengeMethod, redirectURI)
		if err != nil {
			// A lost reply: the flow is read back.
			if err = b.settle(ctx, op, p, err, true, b.existsVerdict(b.q.authRedirectURI, b.idArg(id))); err != nil {
				return b.wrap(ctx, op, err)
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// AuthorizationFlowInsertIDToken implements backend.Backend: one conditional
// UPDATE (PENDING and live) that stores the code's hash and the token and
// sets READY, returning the redirect URI (PostgreSQL, SQLite: RETURNING;
// MySQL: a SELECT after the update). The flow id is accepted dashed or as 32
// hex digits; anything else names no flow: backend.ErrNotPending.
func (b *Backend) AuthorizationFlowInsertIDToken(ctx context.Context, flowID string, idToken map[string]any, maxValidity time.Duration) (string, string, error) {
	const op = "insert authorization flow id token"
	if err := start(ctx, op); err != nil {
		return "", "", err
	}
	id, tok, code, err := backend.PrepareAuthorizationIDToken(flowID, idToken)
	if err == nil {
		err = b.checkColumns("AuthorizationFlows", "IDToken", "id_token", string(tok))
	}
	if err != nil {
		return "", "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	args := []any{backend.HashCode(code), string(tok), b.idArg(id), b.timeArg(liveSince(b.now(), maxValidity))}
	var redirectURI string
	own := b.authCodeVerdict(b.idArg(id), backend.HashCode(code), &redirectURI)
	lost := false // an attempt lost its reply: a flow found READY may be this call's
	err = b.retryWrite(ctx, op, func() error {
		var found bool
		var err error
		pctx, p := withProbe(ctx)
		if b.dialect == dialect.MySQL {
			var n int64
			if n, err = b.write(pctx, b.q.authInsertIDToken, args...); err != nil {
				err = b.settle(ctx, op, p, err, true, own)
				found = err == nil
			} else if n > 0 {
				found, err = queryRow(ctx, b.pool, b.q.authRedirectURI, []any{b.idArg(id)}, &redirectURI)
				err = safeToRetry(err) // the update is done: reading again is safe
			}
		} else if found, err = queryRow(pctx, b.pool, b.q.authInsertIDToken, args, &redirectURI); err != nil {
			err = b.settle(ctx, op, p, err, true, own)
			found = err == nil
		}
		if err != nil {
			lost = lost || isRetryable(err)
			return b.wrap(ctx, op, err)
		}
		if !found && lost {
			if v, err := own(ctx); err == nil && v == applied {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("authdb: %s %s: %w", op, id, backend.ErrNotPending)
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return code, redirectURI, nil
}

// GetAuthorizationFlow implements backend.Backend: one SELECT by the hashed
// code (indexed: ix_AuthorizationFlows_Code) and liveness.
func (b *Backend) GetAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (backend.AuthorizationFlow, error) {
	const op = "get authorization flow"
	if err := start(ctx, op); err != nil {
		return backend.AuthorizationFlow{}, err
	}
	args := []any{backend.HashCode(code), b.timeArg(liveSince(b.now(), maxValidity))}
	var r authRow
	found, err := b.readRow(ctx, op, b.q.getAuth, args, r.dest()...)
	if err != nil {
		return backend.AuthorizationFlow{}, err
	}
	if !found {
		return backend.AuthorizationFlow{}, fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
	}
	return r.flow()
}

// UpdateAuthorizationFlowStatus implements backend.Backend: one UPDATE.
func (b *Backend) UpdateAuthorizationFlowStatus(ctx context.Context, code string, status backend.FlowStatus) error {
	return b.updateFlowStatus(ctx, "update authorization flow status", b.q.updateAuthStatus, b.q.authStatus, code, status)
}

// ConsumeAuthorizationFlow implements backend.Backend, as ConsumeDeviceFlow:
// PostgreSQL one statement on every path; SQLite UPDATE ... RETURNING, plus
// a SELECT on the failure path; MySQL a SELECT, then the conditional UPDATE.
func (b *Backend) ConsumeAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (backend.AuthorizationFlow, error) {
	const op = "consume authorization flow"
	if err := start(ctx, op); err != nil {
		return backend.AuthorizationFlow{}, err
	}
	hash := backend.HashCode(code)
	since := b.timeArg(liveSince(b.now(), maxValidity))
	var r authRow
	err := b.retryRaced(ctx, opName(op), func() error {
		r = authRow{}
		return b.consumeAuthOnce(ctx, hash, since, &r)
	})
	if err != nil {
		return backend.AuthorizationFlow{}, err
	}
	return r.flow()
}

func (b *Backend) consumeAuthOnce(ctx context.Context, hash string, since any, r *authRow) error {
	pctx, p := withProbe(ctx)
	lost := func(err error) error {
		return b.settle(ctx, "consume authorization flow", p, err, false, b.consumeVerdict(b.q.authStatus, hash))
	}
	switch b.dialect {
	case dialect.Postgres:
		var done bool
		found, err := queryRow(pctx, b.pool, b.q.consumeAuth, []any{hash, since, hash, since}, append([]any{&done}, r.dest()...)...)
		if err != nil {
			return lost(err)
		}
		if !found {
			return fmt.Errorf("authdb: consume authorization flow: %w", backend.ErrNotFound)
		}
		if done {
			return nil
		}
		return authFailure(r)
	case dialect.SQLite:
		found, err := queryRow(pctx, b.pool, b.q.consumeAuth, []any{hash, since}, r.dest()...)
		if err != nil {
			return lost(err)
		}
		if found {
			return nil
		}
		found, err = queryRow(ctx, b.pool, b.q.getAuth, []any{hash, since}, r.dest()...)
		if err != nil {
			return safeToRetry(err)
		}
		if !found {
			return fmt.Errorf("authdb: consume authorization flow: %w", backend.ErrNotFound)
		}
		return authFailure(r)
	default: // MySQL
		found, err := queryRow(ctx, b.pool, b.q.getAuth, []any{hash, since}, r.dest()...)
		if err != nil {
			return safeToRetry(err)
		}
		if !found {
			return fmt.Errorf("authdb: consume authorization flow: %w", backend.ErrNotFound)
		}
		if err := authFailure(r); !errors.Is(err, errRaced) {
			return err
		}
		n, err := b.write(pctx, b.q.consumeAuth, hash, since)
		if err != nil {
			return lost(err)
		}
		if n == 0 {
			return errRaced
		}
		r.f.Status = backend.StatusDone
		return nil
	}
}

// authFailure says why a live authorization flow cannot be consumed;
// errRaced when it reads READY (see deviceFailure).
func authFailure(r *authRow) error {
	switch r.f.Status {
	case backend.StatusDone:
		return fmt.Errorf("authdb: consume authorization flow %s: %w", r.id, backend.ErrAlreadyUsed)
	case backend.StatusReady:
		if err := unreadableIDToken(r.idToken, &r.f.IDToken); err != nil {
			return fmt.Errorf("authdb: consume authorization flow %s: %w: %w", r.id, backend.ErrFlowFailed, err)
		}
		return errRaced
	}
	return fmt.Errorf("authdb: consume authorization flow %s (status %s): %w", r.id, r.f.Status, backend.ErrFlowFailed)
}
