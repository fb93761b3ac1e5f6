package conformance

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

func authorizationFlowTests() []testCase {
	return []testCase{
		{"InsertReturnsUUIDv7", testAuthInsertReturnsUUIDv7},
		{"InsertIDToken", testAuthInsertIDToken},
		{"InsertIDTokenOnlyOnce", testAuthInsertIDTokenOnlyOnce},
		{"InsertIDTokenExpired", testAuthInsertIDTokenExpired},
		{"InsertIDTokenUnknown", testAuthInsertIDTokenUnknown},
		{"GetByHashIsNotFound", testAuthGetByHashIsNotFound},
		{"GetUnknown", testAuthGetUnknown},
		{"GetLiveOnly", testAuthGetLiveOnly},
		{"GetAnyStatus", testAuthGetAnyStatus},
		{"UpdateStatus", testAuthUpdateStatus},
		{"UpdateStatusUnknown", testAuthUpdateStatusUnknown},
		{"UpdateStatusInvalid", testAuthUpdateStatusInvalid},
	}
}

func consumeAuthorizationFlowTests() []testCase {
	return []testCase{
		{"Success", testConsumeAuthSuccess},
		{"Unknown", testConsumeAuthUnknown},
		{"Expired", testConsumeAuthExpired},
		{"ExpiredBeforeStatus", testConsumeAuthExpiredBeforeStatus},
		{"AlreadyUsed", testConsumeAuthAlreadyUsed},
		{"FlowFailed", testConsumeAuthFailed},
		{"ConcurrentExactlyOnce", testConsumeAuthConcurrent},
	}
}

func testAuthInsertReturnsUUIDv7(t *testing.T, s *suite) {
	h := s.open(t)
	ids := map[string]bool{}
	for range 3 {
		id := h.pendingAuthFlow()
		u, err := uuid.Parse(id)
		if err != nil || len(id) != 36 || u.String() != id {
			t.Errorf("id %q is not a canonical dashed UUID (%v)", id, err)
			continue
		}
		if !backend.IsUUIDv7(u) {
			t.Errorf("id %s is not a UUIDv7", id)
		}
		if ids[id] {
			t.Errorf("id %s returned twice", id)
		}
		ids[id] = true
	}
}

func testAuthInsertIDToken(t *testing.T, s *suite) {
	h := s.open(t)
	id := h.insertAuthFlow("myclient", "openid email", "challenge-abc", "S256", "https://app.example/cb?x=1")
	h.clock.Advance(validity - time.Second) // still live
	code, redirect, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
	noErr(t, err, "AuthorizationFlowInsertIDToken")
	checkPlainCode(t, "authorization code", code)
	if redirect != "https://app.example/cb?x=1" {
		t.Errorf("redirect URI = %q, want the stored one", redirect)
	}
	f := h.getAuthFlow(code)
	want := backend.AuthorizationFlow{
		UUID: id, ClientID: "myclient", Scope: "openid email", CodeChallenge: "challenge-abc",
		CodeChallengeMethod: "S256", RedirectURI: "https://app.example/cb?x=1",
		Code: backend.HashCode(code), Status: backend.StatusReady,
	}
	got := f
	got.CreationTime, got.IDToken = time.Time{}, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetAuthorizationFlow =\n%+v\nwant\n%+v", got, want)
	}
	wantTime(t, "CreationTime", f.CreationTime, start.Truncate(time.Second))
	sameJSON(t, "IDToken", f.IDToken, sampleIDToken())

	// A second flow gets a different code.
	_, code2 := h.readyAuthFlow(sampleIDToken())
	if code2 == code {
		t.Errorf("two flows got the same code %s", code)
	}
}

func testAuthInsertIDTokenOnlyOnce(t *testing.T, s *suite) {
	h := s.open(t)
	id, code := h.readyAuthFlow(sampleIDToken())
	_, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, map[string]any{"sub": "attacker"}, validity)
	wantErr(t, err, backend.ErrNotPending)
	f := h.getAuthFlow(code) // the first code still works
	if f.Status != backend.StatusReady || f.Code != backend.HashCode(code) {
		t.Errorf("after refused second insert: %+v", f)
	}
	sameJSON(t, "IDToken", f.IDToken, sampleIDToken())
	// DONE and ERROR flows are not pending either.
	for _, st := range []backend.FlowStatus{backend.StatusDone, backend.StatusError} {
		h.setAuthStatus(code, st)
		_, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
		if !errors.Is(err, backend.ErrNotPending) {
			t.Errorf("%s flow: error = %v, want ErrNotPending", st, err)
		}
		h.wantAuthStatus(code, st)
	}
}

func testAuthInsertIDTokenExpired(t *testing.T, s *suite) {
	h := s.open(t)
	id := h.pendingAuthFlow()
	h.clock.Advance(validity)
	_, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
	wantErr(t, err, backend.ErrNotPending)
	// Nothing was written: back in its lifetime, the flow is still PENDING.
	h.clock.Set(start)
	_, _, err = h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
	noErr(t, err, "AuthorizationFlowInsertIDToken on the flow once live again")
}

func testAuthInsertIDTokenUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	id := h.pendingAuthFlow()
	_, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, h.newJTI().String(), sampleIDToken(), validity)
	wantErr(t, err, backend.ErrNotPending)
	// A malformed id matches nothing: ErrNotPending (or ErrInvalidInput).
	_, _, err = h.b.AuthorizationFlowInsertIDToken(h.ctx, "not-a-uuid", sampleIDToken(), validity)
	if !errors.Is(err, backend.ErrNotPending) && !errors.Is(err, backend.ErrInvalidInput) {
		t.Errorf("malformed id: error = %v, want ErrNotPending or ErrInvalidInput", err)
	}
	_, _, err = h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
	noErr(t, err, "the real flow is untouched")
}

func testAuthGetByHashIsNotFound(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	_, err := h.b.GetAuthorizationFlow(h.ctx, backend.HashCode(code), validity)
	wantErr(t, err, backend.ErrNotFound)
}

func testAuthGetUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	h.readyAuthFlow(sampleIDToken())
	for _, code := range []string{"no-such-code", ""} {
		_, err := h.b.GetAuthorizationFlow(h.ctx, code, validity)
		wantErr(t, err, backend.ErrNotFound)
	}
}

func testAuthGetLiveOnly(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	h.clock.Advance(validity - time.Second)
	if _, err := h.b.GetAuthorizationFlow(h.ctx, code, validity); err != nil {
		t.Errorf("at creation+maxValidity-1s: %v, want the flow", err)
	}
	h.clock.Advance(time.Second) // CreationTime == now-maxValidity: not live
	_, err := h.b.GetAuthorizationFlow(h.ctx, code, validity)
	wantErr(t, err, backend.ErrNotFound)
	// A longer maxValidity makes it live again: nothing was deleted.
	if _, err := h.b.GetAuthorizationFlow(h.ctx, code, 2*validity); err != nil {
		t.Errorf("with a longer maxValidity: %v", err)
	}
}

func testAuthGetAnyStatus(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	for _, st := range []backend.FlowStatus{backend.StatusPending, backend.StatusDone, backend.StatusError, backend.StatusReady} {
		h.setAuthStatus(code, st)
		h.wantAuthStatus(code, st)
	}
}

func testAuthUpdateStatus(t *testing.T, s *suite) {
	h := s.open(t)
	id, code := h.readyAuthFlow(sampleIDToken())
	h.setAuthStatus(code, backend.StatusError)
	f := h.getAuthFlow(code)
	if f.Status != backend.StatusError || f.UUID != id || f.Code != backend.HashCode(code) {
		t.Errorf("after update: %+v", f)
	}
	sameJSON(t, "IDToken kept", f.IDToken, sampleIDToken())
}

func testAuthUpdateStatusUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	wantErr(t, h.b.UpdateAuthorizationFlowStatus(h.ctx, "no-such-code", backend.StatusDone), backend.ErrNotFound)
	wantErr(t, h.b.UpdateAuthorizationFlowStatus(h.ctx, backend.HashCode(code), backend.StatusDone), backend.ErrNotFound)
	h.wantAuthStatus(code, backend.StatusReady)
}

func testAuthUpdateStatusInvalid(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	for _, st := range []backend.FlowStatus{"", "ready", "CREATED", "REVOKED", " DONE"} {
		wantInvalid(t, h.b.UpdateAuthorizationFlowStatus(h.ctx, code, st), "status")
	}
	h.wantAuthStatus(code, backend.StatusReady)
	wantInvalid(t, h.b.UpdateAuthorizationFlowStatus(h.ctx, "no-such-code", "BOGUS"), "status")
}

func testConsumeAuthSuccess(t *testing.T, s *suite) {
	h := s.open(t)
	id, code := h.readyAuthFlow(sampleIDToken())
	h.clock.Advance(validity - time.Second)
	f, err := h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
	noErr(t, err, "ConsumeAuthorizationFlow")
	if f.Status != backend.StatusDone || f.UUID != id || f.Code != backend.HashCode(code) ||
		f.ClientID != "client-auth" || f.RedirectURI != "https://app.example/callback" ||
		f.CodeChallengeMethod != "S256" || f.CodeChallenge != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Errorf("returned flow = %+v", f)
	}
	wantTime(t, "CreationTime", f.CreationTime, start.Truncate(time.Second))
	sameJSON(t, "returned IDToken", f.IDToken, sampleIDToken())
	h.wantAuthStatus(code, backend.StatusDone)
}

func testConsumeAuthUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	_, err := h.b.ConsumeAuthorizationFlow(h.ctx, "no-such-code", validity)
	wantErr(t, err, backend.ErrNotFound)
	_, err = h.b.ConsumeAuthorizationFlow(h.ctx, backend.HashCode(code), validity)
	wantErr(t, err, backend.ErrNotFound)
	h.wantAuthStatus(code, backend.StatusReady)
}

func testConsumeAuthExpired(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	h.clock.Advance(validity)
	_, err := h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
	wantErr(t, err, backend.ErrNotFound)
	h.clock.Set(start)
	h.wantAuthStatus(code, backend.StatusReady)
}

func testConsumeAuthExpiredBeforeStatus(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	_, err := h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
	noErr(t, err, "ConsumeAuthorizationFlow")
	h.clock.Advance(validity + time.Second)
	// Not live comes first (as GetAuthorizationFlow), even for a DONE flow.
	_, err = h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
	wantErr(t, err, backend.ErrNotFound)
}

func testConsumeAuthAlreadyUsed(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	_, err := h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
	noErr(t, err, "first ConsumeAuthorizationFlow")
	_, err = h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
	wantErr(t, err, backend.ErrAlreadyUsed)
	_, code2 := h.readyAuthFlow(sampleIDToken())
	h.setAuthStatus(code2, backend.StatusDone)
	_, err = h.b.ConsumeAuthorizationFlow(h.ctx, code2, validity)
	wantErr(t, err, backend.ErrAlreadyUsed)
}

func testConsumeAuthFailed(t *testing.T, s *suite) {
	h := s.open(t)
	for _, st := range []backend.FlowStatus{backend.StatusError, backend.StatusPending} {
		_, code := h.readyAuthFlow(sampleIDToken())
		h.setAuthStatus(code, st)
		_, err := h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
		if !errors.Is(err, backend.ErrFlowFailed) {
			t.Errorf("%s flow: error = %v, want ErrFlowFailed", st, err)
		}
		h.wantAuthStatus(code, st)
	}
}

func testConsumeAuthConcurrent(t *testing.T, s *suite) {
	h := s.open(t)
	_, code := h.readyAuthFlow(sampleIDToken())
	got := make([]backend.AuthorizationFlow, racers)
	errs := race(racers, func(i int) error {
		var err error
		got[i], err = h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
		return err
	})
	if w := wantOneWinner(t, errs, backend.ErrAlreadyUsed); w >= 0 && got[w].Status != backend.StatusDone {
		t.Errorf("winner got Status %s, want DONE", got[w].Status)
	}
	h.wantAuthStatus(code, backend.StatusDone)
}
