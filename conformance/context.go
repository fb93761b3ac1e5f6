package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// ctxFixture is the state every context test starts from.
type ctxFixture struct {
	pendingUC, pendingDC string    // a PENDING device flow
	readyDC              string    // a READY device flow
	pendingID            string    // a PENDING authorization flow
	readyCode            string    // a READY authorization flow
	tok                  uuid.UUID // a CREATED token of alice
	next                 uuid.UUID // an unused UUIDv7
}

func newCtxFixture(h *harness) *ctxFixture {
	h.t.Helper()
	f := &ctxFixture{}
	f.pendingUC, f.pendingDC = h.insertDeviceFlow("c", "s")
	_, f.readyDC = h.readyDeviceFlow(sampleIDToken())
	f.pendingID = h.pendingAuthFlow()
	_, f.readyCode = h.readyAuthFlow(sampleIDToken())
	f.tok = h.insertToken("alice", "s")
	f.next = h.newJTI()
	return f
}

// ctxCase calls one method with ctx; check (optional) verifies afterwards
// that the refused calls wrote nothing.
type ctxCase struct {
	name  string
	call  func(h *harness, f *ctxFixture, ctx context.Context) error
	check func(h *harness, f *ctxFixture)
}

func ctxCases() []ctxCase {
	return []ctxCase{
		{"InsertDeviceFlow", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, _, err := h.b.InsertDeviceFlow(ctx, "c", "s")
			return err
		}, func(h *harness, f *ctxFixture) {
			if n := h.countDeviceFlows(); n != 2 {
				h.t.Errorf("%d device flows, want the fixture's 2", n)
			}
		}},
		{"DeviceFlowValidateUserCode", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.DeviceFlowValidateUserCode(ctx, f.pendingUC, validity)
			return err
		}, nil},
		{"DeviceFlowInsertIDToken", func(h *harness, f *ctxFixture, ctx context.Context) error {
			return h.b.DeviceFlowInsertIDToken(ctx, f.pendingUC, sampleIDToken(), validity)
		}, func(h *harness, f *ctxFixture) {
			if fl := h.getDeviceFlow(f.pendingDC); fl.Status != backend.StatusPending || fl.IDToken != nil {
				h.t.Errorf("flow written: %+v", fl)
			}
		}},
		{"GetDeviceFlow", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.GetDeviceFlow(ctx, f.pendingDC)
			return err
		}, nil},
		{"UpdateDeviceFlowStatus", func(h *harness, f *ctxFixture, ctx context.Context) error {
			return h.b.UpdateDeviceFlowStatus(ctx, f.pendingDC, backend.StatusError)
		}, func(h *harness, f *ctxFixture) { h.wantDeviceStatus(f.pendingDC, backend.StatusPending) }},
		{"ConsumeDeviceFlow", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.ConsumeDeviceFlow(ctx, f.readyDC, validity)
			return err
		}, func(h *harness, f *ctxFixture) {
			h.wantDeviceStatus(f.readyDC, backend.StatusReady)
			_, err := h.b.ConsumeDeviceFlow(h.ctx, f.readyDC, validity)
			noErr(h.t, err, "ConsumeDeviceFlow with a live context")
		}},
		{"InsertAuthorizationFlow", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.InsertAuthorizationFlow(ctx, "c", "s", "cc", "S256", "https://x")
			return err
		}, func(h *harness, f *ctxFixture) {
			if n := h.countAuthFlows(); n != 2 {
				h.t.Errorf("%d authorization flows, want the fixture's 2", n)
			}
		}},
		{"AuthorizationFlowInsertIDToken", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, _, err := h.b.AuthorizationFlowInsertIDToken(ctx, f.pendingID, sampleIDToken(), validity)
			return err
		}, func(h *harness, f *ctxFixture) {
			_, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, f.pendingID, sampleIDToken(), validity)
			noErr(h.t, err, "AuthorizationFlowInsertIDToken with a live context (flow still PENDING)")
		}},
		{"GetAuthorizationFlow", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.GetAuthorizationFlow(ctx, f.readyCode, validity)
			return err
		}, nil},
		{"UpdateAuthorizationFlowStatus", func(h *harness, f *ctxFixture, ctx context.Context) error {
			return h.b.UpdateAuthorizationFlowStatus(ctx, f.readyCode, backend.StatusError)
		}, func(h *harness, f *ctxFixture) { h.wantAuthStatus(f.readyCode, backend.StatusReady) }},
		{"ConsumeAuthorizationFlow", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.ConsumeAuthorizationFlow(ctx, f.readyCode, validity)
			return err
		}, func(h *harness, f *ctxFixture) { h.wantAuthStatus(f.readyCode, backend.StatusReady) }},
		{"InsertRefreshToken", func(h *harness, f *ctxFixture, ctx context.Context) error {
			return h.b.InsertRefreshToken(ctx, f.next, "bob", "s")
		}, func(h *harness, f *ctxFixture) { h.wantNoToken(f.next) }},
		{"GetRefreshToken", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.GetRefreshToken(ctx, f.tok)
			return err
		}, nil},
		{"GetUserRefreshTokensSubject", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.GetUserRefreshTokens(ctx, "alice")
			return err
		}, nil},
		{"GetUserRefreshTokensAll", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.GetUserRefreshTokens(ctx, "")
			return err
		}, nil},
		{"RevokeRefreshToken", func(h *harness, f *ctxFixture, ctx context.Context) error {
			return h.b.RevokeRefreshToken(ctx, f.tok)
		}, func(h *harness, f *ctxFixture) { h.wantTokenStatus(f.tok, backend.TokenCreated) }},
		{"RevokeUserRefreshTokens", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.RevokeUserRefreshTokens(ctx, "alice")
			return err
		}, func(h *harness, f *ctxFixture) { h.wantTokenStatus(f.tok, backend.TokenCreated) }},
		{"RotateRefreshToken", func(h *harness, f *ctxFixture, ctx context.Context) error {
			_, err := h.b.RotateRefreshToken(ctx, f.tok, f.next)
			return err
		}, func(h *harness, f *ctxFixture) {
			h.wantTokenStatus(f.tok, backend.TokenCreated)
			h.wantNoToken(f.next)
		}},
		{"CleanExpiredDeviceFlows", func(h *harness, f *ctxFixture, ctx context.Context) error {
			h.clock.Set(start.Add(retention + time.Hour))
			_, err := h.b.CleanExpiredDeviceFlows(ctx, retention)
			return err
		}, func(h *harness, f *ctxFixture) { h.getDeviceFlow(f.pendingDC) }},
		{"CleanExpiredAuthorizationFlows", func(h *harness, f *ctxFixture, ctx context.Context) error {
			h.clock.Set(start.Add(retention + time.Hour))
			_, err := h.b.CleanExpiredAuthorizationFlows(ctx, retention)
			return err
		}, func(h *harness, f *ctxFixture) {
			h.clock.Set(start)
			h.getAuthFlow(f.readyCode)
		}},
		{"CleanExpiredRefreshTokens", func(h *harness, f *ctxFixture, ctx context.Context) error {
			h.clock.Set(start.Add(retention + time.Hour))
			_, err := h.b.CleanExpiredRefreshTokens(ctx, retention)
			return err
		}, func(h *harness, f *ctxFixture) { h.getToken(f.tok) }},
		{"Ping", func(h *harness, f *ctxFixture, ctx context.Context) error {
			return h.b.Ping(ctx)
		}, nil},
	}
}

func contextTests() []testCase {
	var out []testCase
	for _, c := range ctxCases() {
		out = append(out, testCase{c.name, func(t *testing.T, s *suite) { testContext(t, s, c) }})
	}
	return out
}

// testContext calls c with a cancelled context, then with one whose deadline
// has passed: each must return the context's error, within 0.5 s, and write
// nothing.
func testContext(t *testing.T, s *suite, c ctxCase) {
	h := s.open(t)
	f := newCtxFixture(h)

	cancelled, cancel := context.WithCancel(h.ctx)
	cancel()
	if err := c.call(h, f, cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: error = %v, want errors.Is(err, context.Canceled)", err)
	}

	expired, cancel2 := context.WithDeadline(h.ctx, time.Now().Add(-time.Second))
	defer cancel2()
	began := time.Now()
	err := c.call(h, f, expired)
	took := time.Since(began)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired deadline: error = %v, want errors.Is(err, context.DeadlineExceeded)", err)
	}
	if took > 500*time.Millisecond {
		t.Errorf("expired deadline: returned after %v, want within 0.5s", took)
	}
	if c.check != nil {
		c.check(h, f)
	}
}
