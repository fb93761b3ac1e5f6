package conformance

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
)

func deviceFlowTests() []testCase {
	return []testCase{
		{"InsertReturnsCodes", testDeviceInsertReturnsCodes},
		{"UserCodesUseWholeAlphabet", testDeviceUserCodesUseWholeAlphabet},
		{"GetReturnsStoredRow", testDeviceGetReturnsStoredRow},
		{"CreationTimeIsUTC", testDeviceCreationTimeIsUTC},
		{"GetByHashIsNotFound", testDeviceGetByHashIsNotFound},
		{"GetUnknown", testDeviceGetUnknown},
		{"GetAnyStatusAndAge", testDeviceGetAnyStatusAndAge},
		{"ValidateUserCode", testDeviceValidateUserCode},
		{"ValidateUserCodeNormalised", testDeviceValidateUserCodeNormalised},
		{"ValidateUserCodeUnknown", testDeviceValidateUserCodeUnknown},
		{"ValidateUserCodeExpired", testDeviceValidateUserCodeExpired},
		{"ValidateUserCodeNotPending", testDeviceValidateUserCodeNotPending},
		{"InsertIDToken", testDeviceInsertIDToken},
		{"InsertIDTokenNormalisedUserCode", testDeviceInsertIDTokenNormalised},
		{"InsertIDTokenOnlyOnce", testDeviceInsertIDTokenOnlyOnce},
		{"InsertIDTokenExpired", testDeviceInsertIDTokenExpired},
		{"InsertIDTokenUnknown", testDeviceInsertIDTokenUnknown},
		{"InsertIDTokenNotPending", testDeviceInsertIDTokenNotPending},
		{"UpdateStatus", testDeviceUpdateStatus},
		{"UpdateStatusUnknown", testDeviceUpdateStatusUnknown},
		{"UpdateStatusInvalid", testDeviceUpdateStatusInvalid},
		{"UserCodeCollision", testDeviceUserCodeCollision},
		{"UserCodeCollisionThenFresh", testDeviceUserCodeCollisionThenFresh},
		{"UserCodeGeneratorError", testDeviceUserCodeGeneratorError},
	}
}

func checkUserCode(t *testing.T, uc string) {
	t.Helper()
	if len(uc) != backend.UserCodeLength {
		t.Errorf("user code %q has %d characters, want %d", uc, len(uc), backend.UserCodeLength)
	}
	for _, r := range uc {
		if !strings.ContainsRune(backend.UserCodeAlphabet, r) {
			t.Errorf("user code %q has %q, not in %s", uc, r, backend.UserCodeAlphabet)
		}
	}
}

// checkPlainCode checks a device or authorization code: 32 random bytes,
// base64url without padding (43 characters).
func checkPlainCode(t *testing.T, what, code string) {
	t.Helper()
	if len(code) != 43 {
		t.Errorf("%s %q has %d characters, want 43", what, code, len(code))
	}
	b, err := base64.RawURLEncoding.DecodeString(code)
	if err != nil {
		t.Errorf("%s %q is not base64url without padding: %v", what, code, err)
	} else if len(b) != backend.CodeBytes {
		t.Errorf("%s decodes to %d bytes, want %d", what, len(b), backend.CodeBytes)
	}
}

func testDeviceInsertReturnsCodes(t *testing.T, s *suite) {
	h := s.open(t)
	uc1, dc1 := h.insertDeviceFlow("myclient", "openid")
	uc2, dc2 := h.insertDeviceFlow("myclient", "openid")
	checkUserCode(t, uc1)
	checkUserCode(t, uc2)
	checkPlainCode(t, "device code", dc1)
	checkPlainCode(t, "device code", dc2)
	if uc1 == uc2 || dc1 == dc2 {
		t.Errorf("two flows got the same codes: %s/%s and %s/%s", uc1, dc1, uc2, dc2)
	}
}

func testDeviceUserCodesUseWholeAlphabet(t *testing.T, s *suite) {
	h := s.open(t)
	seen := map[rune]int{}
	codes := map[string]bool{}
	// 50 codes = 400 draws: a uniform draw misses one of the 20 letters with
	// probability below 1e-7.
	for range 50 {
		uc, _ := h.insertDeviceFlow("c", "")
		checkUserCode(t, uc)
		if codes[uc] {
			t.Errorf("user code %s returned twice", uc)
		}
		codes[uc] = true
		for _, r := range uc {
			seen[r]++
		}
	}
	for _, r := range backend.UserCodeAlphabet {
		if seen[r] == 0 {
			t.Errorf("letter %q never drawn in 400 draws", r)
		}
	}
}

func testDeviceGetReturnsStoredRow(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("myclient", "openid profile")
	f := h.getDeviceFlow(dc)
	if f.UserCode != uc || f.ClientID != "myclient" || f.Scope != "openid profile" {
		t.Errorf("GetDeviceFlow = %+v, want user code %s, client myclient, scope %q", f, uc, "openid profile")
	}
	if f.DeviceCode != backend.HashCode(dc) {
		t.Errorf("DeviceCode = %q, want sha256 hex of the plain code %q", f.DeviceCode, backend.HashCode(dc))
	}
	if f.Status != backend.StatusPending {
		t.Errorf("Status = %s, want PENDING", f.Status)
	}
	wantTime(t, "CreationTime", f.CreationTime, h.now())
	if f.IDToken != nil {
		t.Errorf("IDToken = %v, want nil before it is set", f.IDToken)
	}
}

func testDeviceCreationTimeIsUTC(t *testing.T, s *suite) {
	h := s.open(t)
	// The same instant as seen from a zone with a half-hour offset.
	h.clock.Set(start.Add(37 * time.Minute).In(time.FixedZone("IST", 5*3600+1800)))
	_, dc := h.insertDeviceFlow("c", "")
	wantTime(t, "CreationTime", h.getDeviceFlow(dc).CreationTime, start.Add(37*time.Minute).Truncate(time.Second))
}

func testDeviceGetByHashIsNotFound(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.insertDeviceFlow("c", "")
	_, err := h.b.GetDeviceFlow(h.ctx, backend.HashCode(dc))
	wantErr(t, err, backend.ErrNotFound)
}

func testDeviceGetUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	h.insertDeviceFlow("c", "")
	_, err := h.b.GetDeviceFlow(h.ctx, "unknown-device-code-aaaaaaaaaaaaaaaaaaaaaaaa")
	wantErr(t, err, backend.ErrNotFound)
	_, err = h.b.GetDeviceFlow(h.ctx, "")
	wantErr(t, err, backend.ErrNotFound)
}

func testDeviceGetAnyStatusAndAge(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.insertDeviceFlow("c", "s")
	h.clock.Advance(30 * 24 * time.Hour)
	for _, st := range []backend.FlowStatus{backend.StatusPending, backend.StatusReady, backend.StatusDone, backend.StatusError} {
		h.setDeviceStatus(dc, st)
		f := h.getDeviceFlow(dc)
		if f.Status != st {
			t.Errorf("old flow status = %s, want %s", f.Status, st)
		}
		wantTime(t, "CreationTime", f.CreationTime, start.Truncate(time.Second))
	}
}

func testDeviceValidateUserCode(t *testing.T, s *suite) {
	h := s.open(t)
	uc, _ := h.insertDeviceFlow("c", "openid vo:lhcb")
	scope, err := h.b.DeviceFlowValidateUserCode(h.ctx, uc, validity)
	noErr(t, err, "DeviceFlowValidateUserCode")
	if scope != "openid vo:lhcb" {
		t.Errorf("scope = %q, want %q", scope, "openid vo:lhcb")
	}
	// Live until the last second of its validity.
	h.clock.Advance(validity - time.Second)
	if _, err := h.b.DeviceFlowValidateUserCode(h.ctx, uc, validity); err != nil {
		t.Errorf("at creation+maxValidity-1s: %v, want the flow still live", err)
	}
}

func testDeviceValidateUserCodeNormalised(t *testing.T, s *suite) {
	h := s.open(t)
	uc, _ := h.insertDeviceFlow("c", "sc")
	lower := strings.ToLower(uc)
	for _, typed := range []string{
		lower[:4] + "-" + lower[4:],
		" " + uc[:4] + " " + uc[4:] + " ",
		lower,
		uc[:2] + "-" + lower[2:5] + " -" + uc[5:],
	} {
		scope, err := h.b.DeviceFlowValidateUserCode(h.ctx, typed, validity)
		if err != nil || scope != "sc" {
			t.Errorf("DeviceFlowValidateUserCode(%q) = %q, %v; want the flow of %s", typed, scope, err, uc)
		}
	}
}

func testDeviceValidateUserCodeUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	uc, _ := h.insertDeviceFlow("c", "")
	other := "BCDFGHJK"
	if uc == other {
		other = "CDFGHJKL"
	}
	for _, code := range []string{other, "", uc[:7], uc + "B"} {
		_, err := h.b.DeviceFlowValidateUserCode(h.ctx, code, validity)
		wantErr(t, err, backend.ErrNotFound)
	}
}

func testDeviceValidateUserCodeExpired(t *testing.T, s *suite) {
	h := s.open(t)
	uc, _ := h.insertDeviceFlow("c", "")
	// Live means CreationTime > now-maxValidity: at exactly maxValidity it is over.
	h.clock.Advance(validity)
	_, err := h.b.DeviceFlowValidateUserCode(h.ctx, uc, validity)
	wantErr(t, err, backend.ErrNotFound)
	h.clock.Advance(time.Hour)
	_, err = h.b.DeviceFlowValidateUserCode(h.ctx, uc, validity)
	wantErr(t, err, backend.ErrNotFound)
}

func testDeviceValidateUserCodeNotPending(t *testing.T, s *suite) {
	h := s.open(t)
	for _, st := range []backend.FlowStatus{backend.StatusReady, backend.StatusDone, backend.StatusError} {
		uc, _ := h.deviceFlowWithStatus(st)
		_, err := h.b.DeviceFlowValidateUserCode(h.ctx, uc, validity)
		if !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s flow: error = %v, want ErrNotFound", st, err)
		}
	}
}

func testDeviceInsertIDToken(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("c", "sc")
	h.clock.Advance(validity - time.Second) // still live
	noErr(t, h.b.DeviceFlowInsertIDToken(h.ctx, uc, sampleIDToken(), validity), "DeviceFlowInsertIDToken")
	f := h.getDeviceFlow(dc)
	if f.Status != backend.StatusReady {
		t.Errorf("Status = %s, want READY", f.Status)
	}
	sameJSON(t, "IDToken", f.IDToken, sampleIDToken())
	wantTime(t, "CreationTime (unchanged)", f.CreationTime, start.Truncate(time.Second))
}

func testDeviceInsertIDTokenNormalised(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("c", "sc")
	typed := strings.ToLower(uc[:4]) + "-" + strings.ToLower(uc[4:])
	noErr(t, h.b.DeviceFlowInsertIDToken(h.ctx, typed, sampleIDToken(), validity), "DeviceFlowInsertIDToken("+typed+")")
	h.wantDeviceStatus(dc, backend.StatusReady)
}

func testDeviceInsertIDTokenOnlyOnce(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("c", "")
	noErr(t, h.b.DeviceFlowInsertIDToken(h.ctx, uc, sampleIDToken(), validity), "first DeviceFlowInsertIDToken")
	err := h.b.DeviceFlowInsertIDToken(h.ctx, uc, map[string]any{"sub": "attacker"}, validity)
	wantErr(t, err, backend.ErrNotPending)
	f := h.getDeviceFlow(dc)
	if f.Status != backend.StatusReady {
		t.Errorf("Status = %s, want READY", f.Status)
	}
	sameJSON(t, "IDToken after the refused second insert", f.IDToken, sampleIDToken())
}

func testDeviceInsertIDTokenExpired(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("c", "")
	h.clock.Advance(validity)
	err := h.b.DeviceFlowInsertIDToken(h.ctx, uc, sampleIDToken(), validity)
	wantErr(t, err, backend.ErrNotPending)
	f := h.getDeviceFlow(dc)
	if f.Status != backend.StatusPending || f.IDToken != nil {
		t.Errorf("after refused insert: status %s, IDToken %v; want PENDING and nil", f.Status, f.IDToken)
	}
}

func testDeviceInsertIDTokenUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("c", "")
	other := "BCDFGHJK"
	if uc == other {
		other = "CDFGHJKL"
	}
	err := h.b.DeviceFlowInsertIDToken(h.ctx, other, sampleIDToken(), validity)
	wantErr(t, err, backend.ErrNotPending)
	if f := h.getDeviceFlow(dc); f.Status != backend.StatusPending || f.IDToken != nil {
		t.Errorf("another flow changed: %+v", f)
	}
}

func testDeviceInsertIDTokenNotPending(t *testing.T, s *suite) {
	h := s.open(t)
	for _, st := range []backend.FlowStatus{backend.StatusDone, backend.StatusError} {
		uc, dc := h.deviceFlowWithStatus(st)
		err := h.b.DeviceFlowInsertIDToken(h.ctx, uc, sampleIDToken(), validity)
		if !errors.Is(err, backend.ErrNotPending) {
			t.Errorf("%s flow: error = %v, want ErrNotPending", st, err)
		}
		if f := h.getDeviceFlow(dc); f.Status != st || f.IDToken != nil {
			t.Errorf("%s flow changed: status %s, IDToken %v", st, f.Status, f.IDToken)
		}
	}
}

func testDeviceUpdateStatus(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.insertDeviceFlow("c", "")
	for _, st := range []backend.FlowStatus{backend.StatusReady, backend.StatusError, backend.StatusDone, backend.StatusPending} {
		h.setDeviceStatus(dc, st)
		h.wantDeviceStatus(dc, st)
	}
}

func testDeviceUpdateStatusUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.insertDeviceFlow("c", "")
	err := h.b.UpdateDeviceFlowStatus(h.ctx, "no-such-device-code", backend.StatusDone)
	wantErr(t, err, backend.ErrNotFound)
	// The hash is not a plain code either.
	err = h.b.UpdateDeviceFlowStatus(h.ctx, backend.HashCode(dc), backend.StatusDone)
	wantErr(t, err, backend.ErrNotFound)
	h.wantDeviceStatus(dc, backend.StatusPending)
}

func testDeviceUpdateStatusInvalid(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.insertDeviceFlow("c", "")
	for _, st := range []backend.FlowStatus{"", "pending", "EXPIRED", "DONE ", "READY'; --"} {
		err := h.b.UpdateDeviceFlowStatus(h.ctx, dc, st)
		wantInvalid(t, err, "status")
	}
	h.wantDeviceStatus(dc, backend.StatusPending)
	// Validation comes before the lookup.
	wantInvalid(t, h.b.UpdateDeviceFlowStatus(h.ctx, "no-such-device-code", "BOGUS"), "status")
}

// countingGenerator returns a user-code generator that hands out codes in
// order (repeating the last one forever) and a counter of its calls, which
// the test may reset without affecting the order.
func countingGenerator(codes ...string) (func() (string, error), *atomic.Int64) {
	var next, calls atomic.Int64
	return func() (string, error) {
		calls.Add(1)
		i := int(next.Add(1)) - 1
		if i >= len(codes) {
			i = len(codes) - 1
		}
		return codes[i], nil
	}, &calls
}

func testDeviceUserCodeCollision(t *testing.T, s *suite) {
	gen, calls := countingGenerator("BCDFGHJK")
	h := s.open(t, backend.WithUserCodeGenerator(gen))
	uc, dc := h.insertDeviceFlow("first", "")
	if uc != "BCDFGHJK" || calls.Load() != 1 {
		t.Fatalf("first insert: user code %q after %d generator calls; want BCDFGHJK after 1", uc, calls.Load())
	}
	calls.Store(0)
	_, _, err := h.b.InsertDeviceFlow(h.ctx, "second", "")
	wantErr(t, err, backend.ErrCodeCollision)
	if got := calls.Load(); got != backend.MaxUserCodeAttempts {
		t.Errorf("generator called %d times, want exactly %d", got, backend.MaxUserCodeAttempts)
	}
	if f := h.getDeviceFlow(dc); f.ClientID != "first" {
		t.Errorf("the first flow was overwritten: %+v", f)
	}
	if n := h.countDeviceFlows(); n != 1 {
		t.Errorf("%d device flows stored, want 1 (the colliding insert must write nothing)", n)
	}
}

func testDeviceUserCodeCollisionThenFresh(t *testing.T, s *suite) {
	gen, calls := countingGenerator("BCDFGHJK", "BCDFGHJK", "BCDFGHJK", "BCDFGHJK", "BCDFGHJK", "ZXWVTSRQ")
	h := s.open(t, backend.WithUserCodeGenerator(gen))
	h.insertDeviceFlow("first", "")
	calls.Store(0)
	uc, dc, err := h.b.InsertDeviceFlow(h.ctx, "second", "sc2")
	noErr(t, err, "InsertDeviceFlow after 4 collisions")
	if uc != "ZXWVTSRQ" {
		t.Errorf("user code = %q, want the fifth candidate ZXWVTSRQ", uc)
	}
	if got := calls.Load(); got != backend.MaxUserCodeAttempts {
		t.Errorf("generator called %d times, want %d", got, backend.MaxUserCodeAttempts)
	}
	if f := h.getDeviceFlow(dc); f.UserCode != "ZXWVTSRQ" || f.ClientID != "second" || f.Scope != "sc2" {
		t.Errorf("stored flow = %+v", f)
	}
}

func testDeviceUserCodeGeneratorError(t *testing.T, s *suite) {
	boom := errors.New("entropy exhausted")
	h := s.open(t, backend.WithUserCodeGenerator(func() (string, error) { return "", boom }))
	_, _, err := h.b.InsertDeviceFlow(h.ctx, "c", "")
	if !errors.Is(err, boom) {
		t.Errorf("error = %v, want the generator's error wrapped", err)
	}
	if n := h.countDeviceFlows(); n != 0 {
		t.Errorf("%d device flows stored, want 0", n)
	}
}
