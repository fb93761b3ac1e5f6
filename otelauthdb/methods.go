package otelauthdb

import (
	"errors"
	"iter"

	"context"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// op names an instrumented operation.
type op int

const (
	opInsertDeviceFlow op = iota
	opDeviceFlowValidateUserCode
	opDeviceFlowInsertIDToken
	opGetDeviceFlow
	opUpdateDeviceFlowStatus
	opConsumeDeviceFlow
	opInsertAuthorizationFlow
	opAuthorizationFlowInsertIDToken
	opGetAuthorizationFlow
	opUpdateAuthorizationFlowStatus
	opConsumeAuthorizationFlow
	opInsertRefreshToken
	opGetRefreshToken
	opGetUserRefreshTokens
	opRevokeRefreshToken
	opRevokeUserRefreshTokens
	opRotateRefreshToken
	opRevokeRefreshTokenFamily
	opCleanExpiredDeviceFlows
	opCleanExpiredAuthorizationFlows
	opCleanExpiredRefreshTokens
	opPing
	opPlanRefreshTokenPartitions
	opMaintainRefreshTokenPartitions
	opRefreshTokens
	numOps
)

// opSpecs: each operation's name (db.operation.name and the span name), its table
// (db.collection.name) and, for a redemption, its flow kind.
var opSpecs = [numOps]struct{ name, table, flowKind string }{
	opInsertDeviceFlow:               {"InsertDeviceFlow", "DeviceFlows", ""},
	opDeviceFlowValidateUserCode:     {"DeviceFlowValidateUserCode", "DeviceFlows", ""},
	opDeviceFlowInsertIDToken:        {"DeviceFlowInsertIDToken", "DeviceFlows", ""},
	opGetDeviceFlow:                  {"GetDeviceFlow", "DeviceFlows", ""},
	opUpdateDeviceFlowStatus:         {"UpdateDeviceFlowStatus", "DeviceFlows", ""},
	opConsumeDeviceFlow:              {"ConsumeDeviceFlow", "DeviceFlows", "device"},
	opInsertAuthorizationFlow:        {"InsertAuthorizationFlow", "AuthorizationFlows", ""},
	opAuthorizationFlowInsertIDToken: {"AuthorizationFlowInsertIDToken", "AuthorizationFlows", ""},
	opGetAuthorizationFlow:           {"GetAuthorizationFlow", "AuthorizationFlows", ""},
	opUpdateAuthorizationFlowStatus:  {"UpdateAuthorizationFlowStatus", "AuthorizationFlows", ""},
	opConsumeAuthorizationFlow:       {"ConsumeAuthorizationFlow", "AuthorizationFlows", "authorization"},
	opInsertRefreshToken:             {"InsertRefreshToken", "RefreshTokens", ""},
	opGetRefreshToken:                {"GetRefreshToken", "RefreshTokens", ""},
	opGetUserRefreshTokens:           {"GetUserRefreshTokens", "RefreshTokens", ""},
	opRevokeRefreshToken:             {"RevokeRefreshToken", "RefreshTokens", ""},
	opRevokeUserRefreshTokens:        {"RevokeUserRefreshTokens", "RefreshTokens", ""},
	opRotateRefreshToken:             {"RotateRefreshToken", "RefreshTokens", ""},
	opRevokeRefreshTokenFamily:       {"RevokeRefreshTokenFamily", "RefreshTokens", ""},
	opCleanExpiredDeviceFlows:        {"CleanExpiredDeviceFlows", "DeviceFlows", ""},
	opCleanExpiredAuthorizationFlows: {"CleanExpiredAuthorizationFlows", "AuthorizationFlows", ""},
	opCleanExpiredRefreshTokens:      {"CleanExpiredRefreshTokens", "RefreshTokens", ""},
	opPing:                           {"Ping", "", ""},
	opPlanRefreshTokenPartitions:     {"PlanRefreshTokenPartitions", "RefreshTokens", ""},
	opMaintainRefreshTokenPartitions: {"MaintainRefreshTokenPartitions", "RefreshTokens", ""},
	opRefreshTokens:                  {"RefreshTokens", "RefreshTokens", ""},
}

// InsertDeviceFlow implements backend.Backend.
func (w *wrapped) InsertDeviceFlow(ctx context.Context, clientID, scope string) (userCode, deviceCode string, err error) {
	ctx, span, t0 := w.start(ctx, opInsertDeviceFlow, nil)
	userCode, deviceCode, err = w.b.InsertDeviceFlow(ctx, clientID, scope)
	w.end(ctx, opInsertDeviceFlow, span, t0, err, "")
	return
}

// DeviceFlowValidateUserCode implements backend.Backend.
func (w *wrapped) DeviceFlowValidateUserCode(ctx context.Context, userCode string, maxValidity time.Duration) (scope string, err error) {
	ctx, span, t0 := w.start(ctx, opDeviceFlowValidateUserCode, nil)
	scope, err = w.b.DeviceFlowValidateUserCode(ctx, userCode, maxValidity)
	w.end(ctx, opDeviceFlowValidateUserCode, span, t0, err, "")
	return
}

// DeviceFlowInsertIDToken implements backend.Backend.
func (w *wrapped) DeviceFlowInsertIDToken(ctx context.Context, userCode string, idToken map[string]any, maxValidity time.Duration) (err error) {
	ctx, span, t0 := w.start(ctx, opDeviceFlowInsertIDToken, nil)
	err = w.b.DeviceFlowInsertIDToken(ctx, userCode, idToken, maxValidity)
	w.end(ctx, opDeviceFlowInsertIDToken, span, t0, err, "")
	return
}

// GetDeviceFlow implements backend.Backend.
func (w *wrapped) GetDeviceFlow(ctx context.Context, deviceCode string) (f backend.DeviceFlow, err error) {
	ctx, span, t0 := w.start(ctx, opGetDeviceFlow, nil)
	f, err = w.b.GetDeviceFlow(ctx, deviceCode)
	w.end(ctx, opGetDeviceFlow, span, t0, err, "")
	return
}

// UpdateDeviceFlowStatus implements backend.Backend.
func (w *wrapped) UpdateDeviceFlowStatus(ctx context.Context, deviceCode string, status backend.FlowStatus) (err error) {
	ctx, span, t0 := w.start(ctx, opUpdateDeviceFlowStatus, nil)
	err = w.b.UpdateDeviceFlowStatus(ctx, deviceCode, status)
	w.end(ctx, opUpdateDeviceFlowStatus, span, t0, err, "")
	return
}

// ConsumeDeviceFlow implements backend.Backend.
func (w *wrapped) ConsumeDeviceFlow(ctx context.Context, deviceCode string, maxValidity time.Duration) (f backend.DeviceFlow, err error) {
	ctx, span, t0 := w.start(ctx, opConsumeDeviceFlow, nil)
	f, err = w.b.ConsumeDeviceFlow(ctx, deviceCode, maxValidity)
	o := w.end(ctx, opConsumeDeviceFlow, span, t0, err, "")
	w.redemptions.Add(ctx, 1, w.ops[opConsumeDeviceFlow].counted[o])
	return
}

// InsertAuthorizationFlow implements backend.Backend.
func (w *wrapped) InsertAuthorizationFlow(ctx context.Context, clientID, scope, codeChallenge, codeChallengeMethod, redirectURI string) (id string, err error) {
	ctx, span, t0 := w.start(ctx, opInsertAuthorizationFlow, nil)
	id, err = w.b.InsertAuthorizationFlow(ctx, clientID, scope, codeChallenge, codeChallengeMethod, redirectURI)
	w.end(ctx, opInsertAuthorizationFlow, span, t0, err, "")
	return
}

// AuthorizationFlowInsertIDToken implements backend.Backend.
func (w *wrapped) AuthorizationFlowInsertIDToken(ctx context.Context, id string, idToken map[string]any, maxValidity time.Duration) (code, redirectURI string, err error) {
	ctx, span, t0 := w.start(ctx, opAuthorizationFlowInsertIDToken, nil)
	code, redirectURI, err = w.b.AuthorizationFlowInsertIDToken(ctx, id, idToken, maxValidity)
	w.end(ctx, opAuthorizationFlowInsertIDToken, span, t0, err, "")
	return
}

// GetAuthorizationFlow implements backend.Backend.
func (w *wrapped) GetAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (f backend.AuthorizationFlow, err error) {
	ctx, span, t0 := w.start(ctx, opGetAuthorizationFlow, nil)
	f, err = w.b.GetAuthorizationFlow(ctx, code, maxValidity)
	w.end(ctx, opGetAuthorizationFlow, span, t0, err, "")
	return
}

// UpdateAuthorizationFlowStatus implements backend.Backend.
func (w *wrapped) UpdateAuthorizationFlowStatus(ctx context.Context, code string, status backend.FlowStatus) (err error) {
	ctx, span, t0 := w.start(ctx, opUpdateAuthorizationFlowStatus, nil)
	err = w.b.UpdateAuthorizationFlowStatus(ctx, code, status)
	w.end(ctx, opUpdateAuthorizationFlowStatus, span, t0, err, "")
	return
}

// ConsumeAuthorizationFlow implements backend.Backend.
func (w *wrapped) ConsumeAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (f backend.AuthorizationFlow, err error) {
	ctx, span, t0 := w.start(ctx, opConsumeAuthorizationFlow, nil)
	f, err = w.b.ConsumeAuthorizationFlow(ctx, code, maxValidity)
	o := w.end(ctx, opConsumeAuthorizationFlow, span, t0, err, "")
	w.redemptions.Add(ctx, 1, w.ops[opConsumeAuthorizationFlow].counted[o])
	return
}

// InsertRefreshToken implements backend.Backend.
func (w *wrapped) InsertRefreshToken(ctx context.Context, jti uuid.UUID, sub, scope string) (err error) {
	ctx, span, t0 := w.start(ctx, opInsertRefreshToken, nil)
	err = w.b.InsertRefreshToken(ctx, jti, sub, scope)
	w.end(ctx, opInsertRefreshToken, span, t0, err, "")
	return
}

// GetRefreshToken implements backend.Backend.
func (w *wrapped) GetRefreshToken(ctx context.Context, jti uuid.UUID) (t backend.RefreshToken, err error) {
	ctx, span, t0 := w.start(ctx, opGetRefreshToken, nil)
	t, err = w.b.GetRefreshToken(ctx, jti)
	w.end(ctx, opGetRefreshToken, span, t0, err, "")
	return
}

// GetUserRefreshTokens implements backend.Backend.
func (w *wrapped) GetUserRefreshTokens(ctx context.Context, sub string) (ts []backend.RefreshToken, err error) {
	ctx, span, t0 := w.start(ctx, opGetUserRefreshTokens, nil)
	ts, err = w.b.GetUserRefreshTokens(ctx, sub)
	w.end(ctx, opGetUserRefreshTokens, span, t0, err, "")
	return
}

// RevokeRefreshToken implements backend.Backend.
func (w *wrapped) RevokeRefreshToken(ctx context.Context, jti uuid.UUID) (err error) {
	ctx, span, t0 := w.start(ctx, opRevokeRefreshToken, nil)
	err = w.b.RevokeRefreshToken(ctx, jti)
	w.end(ctx, opRevokeRefreshToken, span, t0, err, "")
	return
}

// RevokeUserRefreshTokens implements backend.Backend.
func (w *wrapped) RevokeUserRefreshTokens(ctx context.Context, sub string) (n int64, err error) {
	ctx, span, t0 := w.start(ctx, opRevokeUserRefreshTokens, nil)
	n, err = w.b.RevokeUserRefreshTokens(ctx, sub)
	w.end(ctx, opRevokeUserRefreshTokens, span, t0, err, "")
	return
}

// RevokeRefreshTokenFamily implements backend.Backend.
func (w *wrapped) RevokeRefreshTokenFamily(ctx context.Context, jti uuid.UUID) (n int64, err error) {
	ctx, span, t0 := w.start(ctx, opRevokeRefreshTokenFamily, nil)
	n, err = w.b.RevokeRefreshTokenFamily(ctx, jti)
	w.end(ctx, opRevokeRefreshTokenFamily, span, t0, err, "")
	return
}

// CleanExpiredDeviceFlows implements backend.Backend.
func (w *wrapped) CleanExpiredDeviceFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	return w.clean(ctx, opCleanExpiredDeviceFlows, w.b.CleanExpiredDeviceFlows, maxRetention)
}

// CleanExpiredAuthorizationFlows implements backend.Backend.
func (w *wrapped) CleanExpiredAuthorizationFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	return w.clean(ctx, opCleanExpiredAuthorizationFlows, w.b.CleanExpiredAuthorizationFlows, maxRetention)
}

// CleanExpiredRefreshTokens implements backend.Backend.
func (w *wrapped) CleanExpiredRefreshTokens(ctx context.Context, maxRetention time.Duration) (int64, error) {
	return w.clean(ctx, opCleanExpiredRefreshTokens, w.b.CleanExpiredRefreshTokens, maxRetention)
}

// Ping implements backend.Backend.
func (w *wrapped) Ping(ctx context.Context) (err error) {
	ctx, span, t0 := w.start(ctx, opPing, nil)
	err = w.b.Ping(ctx)
	w.end(ctx, opPing, span, t0, err, "")
	return
}

// RotateRefreshToken implements backend.Backend. It counts the rotation by
// outcome ("grace" when the backend handed back an existing successor) and
// a replay (ErrTokenReused) once in authdb.refresh_token.reuse, with the
// scope the backend reported.
func (w *wrapped) RotateRefreshToken(ctx context.Context, oldJTI, newJTI uuid.UUID) (backend.RefreshToken, error) {
	info := &w.ops[opRotateRefreshToken]
	var ev backend.ReuseEvent
	ctx, span, t0 := w.start(ctx, opRotateRefreshToken, w.observer(info, &ev))
	t, err := w.b.RotateRefreshToken(ctx, oldJTI, newJTI)
	grace := ""
	if err == nil && t.ReplacedBy != uuid.Nil && t.ReplacedBy != newJTI {
		grace = outcomeGrace
	}
	if errors.Is(err, backend.ErrTokenReused) {
		scope := "unknown"
		if ev.JTI != uuid.Nil {
			scope = ev.Scope.String()
		}
		w.reuse.Add(ctx, 1, w.reuseBy[scope])
		if recording(span) {
			span.AddEvent("authdb.refresh_token.reuse", trace.WithAttributes(
				ReuseScopeKey.String(scope), attribute.String("authdb.jti", oldJTI.String()),
				attribute.Int64("authdb.revoked", ev.Revoked)))
		}
	}
	o := w.end(ctx, opRotateRefreshToken, span, t0, err, grace)
	w.rotations.Add(ctx, 1, info.counted[o])
	return t, err
}

// Close implements backend.Backend (no span: nothing to measure).
func (w *wrapped) Close() error { return w.b.Close() }

// Describe implements backend.Describer: the wrapped backend's
// description (db.system.name "other_sql" when it has none).
func (w *wrapped) Describe() backend.Description { return w.desc }

// Unwrap returns the wrapped backend, for its other optional interfaces.
func (w *wrapped) Unwrap() backend.Backend { return w.b }

// The optional interfaces the wrapper keeps: one type per combination, so
// that a wrapper has exactly the methods of the backend it wraps.
type (
	wrappedIter struct {
		*wrapped
		iterMethods
	}
	wrappedPartitions struct {
		*wrapped
		partitionMethods
	}
	wrappedBoth struct {
		*wrapped
		iterMethods
		partitionMethods
	}
)

var (
	_ backend.Backend              = (*wrapped)(nil)
	_ backend.Describer            = (*wrapped)(nil)
	_ backend.RefreshTokenIterator = wrappedIter{}
	_ backend.PartitionMaintainer  = wrappedPartitions{}
	_ backend.RefreshTokenIterator = wrappedBoth{}
	_ backend.PartitionMaintainer  = wrappedBoth{}
)

// keepOptional returns w as the type that has b's optional interfaces.
func keepOptional(w *wrapped, b backend.Backend) backend.Backend {
	it, isIter := b.(backend.RefreshTokenIterator)
	pm, isPM := b.(backend.PartitionMaintainer)
	switch {
	case isIter && isPM:
		return wrappedBoth{w, iterMethods{w, it}, partitionMethods{w, pm}}
	case isIter:
		return wrappedIter{w, iterMethods{w, it}}
	case isPM:
		return wrappedPartitions{w, partitionMethods{w, pm}}
	}
	return w
}

// iterMethods instruments a backend.RefreshTokenIterator.
type iterMethods struct {
	w  *wrapped
	it backend.RefreshTokenIterator
}

// RefreshTokens implements backend.RefreshTokenIterator: one span (and one
// duration) for the whole listing, from its first page to the caller's
// last token or break; an error yielded is the span's.
func (m iterMethods) RefreshTokens(ctx context.Context, sub string) iter.Seq2[backend.RefreshToken, error] {
	return func(yield func(backend.RefreshToken, error) bool) {
		ctx, span, t0 := m.w.start(ctx, opRefreshTokens, nil)
		var err error
		for t, e := range m.it.RefreshTokens(ctx, sub) {
			if e != nil {
				err = e
			}
			if !yield(t, e) {
				break
			}
		}
		m.w.end(ctx, opRefreshTokens, span, t0, err, "")
	}
}

// partitionMethods instruments a backend.PartitionMaintainer.
type partitionMethods struct {
	w  *wrapped
	pm backend.PartitionMaintainer
}

// PlanRefreshTokenPartitions implements backend.PartitionMaintainer.
func (m partitionMethods) PlanRefreshTokenPartitions(ctx context.Context, retentionMonths, monthsAhead int) (backend.PartitionReport, error) {
	ctx, span, t0 := m.w.start(ctx, opPlanRefreshTokenPartitions, nil)
	rep, err := m.pm.PlanRefreshTokenPartitions(ctx, retentionMonths, monthsAhead)
	m.w.end(ctx, opPlanRefreshTokenPartitions, span, t0, err, "")
	return rep, err
}

// MaintainRefreshTokenPartitions implements backend.PartitionMaintainer
// and counts the partitions added and dropped in authdb.partitions.changed.
func (m partitionMethods) MaintainRefreshTokenPartitions(ctx context.Context, retentionMonths, monthsAhead int) (backend.PartitionReport, error) {
	ctx, span, t0 := m.w.start(ctx, opMaintainRefreshTokenPartitions, nil)
	rep, err := m.pm.MaintainRefreshTokenPartitions(ctx, retentionMonths, monthsAhead)
	if n := len(rep.Added); err == nil || n > 0 { // a 0 says maintenance ran
		m.w.partitions.Add(ctx, int64(n), m.w.added)
	}
	if n := len(rep.Dropped); err == nil || n > 0 {
		m.w.partitions.Add(ctx, int64(n), m.w.dropped)
	}
	m.w.end(ctx, opMaintainRefreshTokenPartitions, span, t0, err, "")
	return rep, err
}

// clean runs one of the three clean-ups as a span and counts what it
// deleted in authdb.cleanup.deleted by table (a 0 with no error says a
// clean-up ran).
func (w *wrapped) clean(ctx context.Context, o op, fn func(context.Context, time.Duration) (int64, error), maxRetention time.Duration) (n int64, err error) {
	ctx, span, t0 := w.start(ctx, o, nil)
	n, err = fn(ctx, maxRetention)
	w.end(ctx, o, span, t0, err, "")
	if err == nil || n > 0 {
		w.deleted.Add(ctx, n, w.tables[o])
	}
	return n, err
}
