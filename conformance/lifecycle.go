package conformance

import "testing"

func lifecycleTests() []testCase {
	return []testCase{
		{"PingOpen", testPingOpen},
		{"NewBackendIsEmpty", testNewBackendIsEmpty},
		{"CallsAfterCloseFail", testCallsAfterClose},
	}
}

func testPingOpen(t *testing.T, s *suite) {
	h := s.open(t)
	noErr(t, h.b.Ping(h.ctx), "Ping")
}

func testNewBackendIsEmpty(t *testing.T, s *suite) {
	h := s.open(t)
	h.wantList("")
	if n := h.countDeviceFlows(); n != 0 {
		t.Errorf("a new backend holds %d device flows", n)
	}
	if n := h.countAuthFlows(); n != 0 {
		t.Errorf("a new backend holds %d authorization flows", n)
	}
}

func testCallsAfterClose(t *testing.T, s *suite) {
	h := s.open(t)
	jti := h.insertToken("alice", "s")
	_, dc := h.insertDeviceFlow("c", "")
	noErr(t, h.close(), "Close")
	calls := map[string]func() error{
		"Ping":            func() error { return h.b.Ping(h.ctx) },
		"GetRefreshToken": func() error { _, err := h.b.GetRefreshToken(h.ctx, jti); return err },
		"InsertRefreshToken": func() error {
			return h.b.InsertRefreshToken(h.ctx, h.newJTI(), "bob", "s")
		},
		"InsertDeviceFlow": func() error { _, _, err := h.b.InsertDeviceFlow(h.ctx, "c", ""); return err },
		"GetDeviceFlow":    func() error { _, err := h.b.GetDeviceFlow(h.ctx, dc); return err },
		"RotateRefreshToken": func() error {
			_, err := h.b.RotateRefreshToken(h.ctx, jti, h.newJTI())
			return err
		},
		"GetUserRefreshTokens": func() error { _, err := h.b.GetUserRefreshTokens(h.ctx, ""); return err },
		"CleanExpiredRefreshTokens": func() error {
			_, err := h.b.CleanExpiredRefreshTokens(h.ctx, retention)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s after Close returned nil, want an error", name)
		}
	}
	// Close is idempotent, as database/sql's is: defer Close after an
	// explicit Close is safe.
	noErr(t, h.b.Close(), "second Close")
}
