package conformance

import (
	"testing"

	"github.com/authdb/authdb/backend"
)

func copyTests() []testCase {
	return []testCase{
		{"DeviceFlowIDToken", testCopyDeviceIDToken},
		{"AuthorizationFlowIDToken", testCopyAuthIDToken},
		{"RefreshTokenList", testCopyTokenList},
	}
}

// scribble mutates an ID token shaped like sampleIDToken, top level and
// nested. A nil token (a backend that lost it) is left as it is: the
// comparison that follows fails the subtest.
func scribble(tok map[string]any) {
	if tok == nil {
		return
	}
	tok["sub"] = "mallory"
	tok["added"] = "x"
	delete(tok, "iss")
	if nested, ok := tok["nested"].(map[string]any); ok {
		nested["preferred_username"] = "mallory"
	}
	if groups, ok := tok["groups"].([]any); ok && len(groups) > 0 {
		groups[0] = "admin"
	}
}

func testCopyDeviceIDToken(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("c", "")
	mine := sampleIDToken()
	noErr(t, h.b.DeviceFlowInsertIDToken(h.ctx, uc, mine, validity), "DeviceFlowInsertIDToken")
	scribble(mine)
	sameJSON(t, "after mutating the caller's map", h.getDeviceFlow(dc).IDToken, sampleIDToken())
	scribble(h.getDeviceFlow(dc).IDToken)
	sameJSON(t, "after mutating a returned map", h.getDeviceFlow(dc).IDToken, sampleIDToken())
	f, err := h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
	noErr(t, err, "ConsumeDeviceFlow")
	scribble(f.IDToken)
	sameJSON(t, "after mutating Consume's map", h.getDeviceFlow(dc).IDToken, sampleIDToken())
}

func testCopyAuthIDToken(t *testing.T, s *suite) {
	h := s.open(t)
	id := h.pendingAuthFlow()
	mine := sampleIDToken()
	code, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, mine, validity)
	noErr(t, err, "AuthorizationFlowInsertIDToken")
	scribble(mine)
	sameJSON(t, "after mutating the caller's map", h.getAuthFlow(code).IDToken, sampleIDToken())
	scribble(h.getAuthFlow(code).IDToken)
	sameJSON(t, "after mutating a returned map", h.getAuthFlow(code).IDToken, sampleIDToken())
	f, err := h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
	noErr(t, err, "ConsumeAuthorizationFlow")
	scribble(f.IDToken)
	sameJSON(t, "after mutating Consume's map", h.getAuthFlow(code).IDToken, sampleIDToken())
}

func testCopyTokenList(t *testing.T, s *suite) {
	h := s.open(t)
	a := h.insertToken("alice", "s")
	b := h.insertToken("alice", "s")
	if b.String() < a.String() {
		a, b = b, a
	}
	for _, sub := range []string{"alice", ""} {
		got := h.list(sub)
		for i := range got {
			got[i].Status = backend.TokenRevoked
			got[i].Sub = "mallory"
		}
		h.wantList(sub, created(a, "alice", "s"), created(b, "alice", "s"))
	}
}
