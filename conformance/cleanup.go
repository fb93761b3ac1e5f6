package conformance

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

var allStatuses = []backend.FlowStatus{backend.StatusPending, backend.StatusReady, backend.StatusDone, backend.StatusError}

func flowCleanupTests() []testCase {
	return []testCase{
		{"DeviceFlows", testCleanDeviceFlows},
		{"DeviceFlowsBoundary", testCleanDeviceFlowsBoundary},
		{"AuthorizationFlows", testCleanAuthFlows},
		{"AuthorizationFlowsBoundary", testCleanAuthFlowsBoundary},
		{"EmptyStore", testCleanEmpty},
	}
}

// wantCleaned calls clean, one of the CleanExpired methods, with maxRetention
// and checks that it removed want rows; what names them.
func (h *harness) wantCleaned(clean func(context.Context, time.Duration) (int64, error), maxRetention time.Duration, want int64, what string) {
	h.t.Helper()
	n, err := clean(h.ctx, maxRetention)
	noErr(h.t, err, what)
	if n != want {
		h.t.Errorf("%s: removed %d, want %d", what, n, want)
	}
}

func testCleanDeviceFlows(t *testing.T, s *suite) {
	h := s.open(t)
	var old []string
	for _, st := range allStatuses {
		_, dc := h.deviceFlowWithStatus(st)
		old = append(old, dc)
	}
	h.wantCleaned(h.b.CleanExpiredDeviceFlows, retention, 0, "young flows")
	h.clock.Advance(retention + time.Minute)
	_, young := h.insertDeviceFlow("young", "")
	h.wantCleaned(h.b.CleanExpiredDeviceFlows, retention, 4, "old flows (one of each status)")
	for i, dc := range old {
		_, err := h.b.GetDeviceFlow(h.ctx, dc)
		if !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("old %s flow: GetDeviceFlow error = %v, want ErrNotFound", allStatuses[i], err)
		}
	}
	h.getDeviceFlow(young)
	h.wantCleaned(h.b.CleanExpiredDeviceFlows, retention, 0, "second clean-up")
}

func testCleanDeviceFlowsBoundary(t *testing.T, s *suite) {
	h := s.open(t)
	base := start.Truncate(time.Second) // whole seconds: no truncation ambiguity
	h.clock.Set(base)
	_, dc := h.insertDeviceFlow("c", "")
	// Deleted when CreationTime < now-maxRetention: kept at exactly maxRetention.
	h.clock.Set(base.Add(retention))
	h.wantCleaned(h.b.CleanExpiredDeviceFlows, retention, 0, "flow exactly maxRetention old")
	h.getDeviceFlow(dc)
	h.clock.Set(base.Add(retention + time.Second))
	h.wantCleaned(h.b.CleanExpiredDeviceFlows, retention, 1, "flow maxRetention+1s old")
}

func testCleanAuthFlows(t *testing.T, s *suite) {
	h := s.open(t)
	var codes []string
	for _, st := range allStatuses {
		_, code := h.readyAuthFlow(sampleIDToken())
		if st != backend.StatusReady {
			h.setAuthStatus(code, st)
		}
		codes = append(codes, code)
	}
	h.pendingAuthFlow() // one that never got a code
	h.wantCleaned(h.b.CleanExpiredAuthorizationFlows, retention, 0, "young flows")
	h.clock.Advance(retention + time.Minute)
	_, young := h.readyAuthFlow(sampleIDToken())
	h.wantCleaned(h.b.CleanExpiredAuthorizationFlows, retention, 5, "old flows (one of each status and one without code)")
	h.getAuthFlow(young)
	// Back in time the old flows would be live: they are gone.
	h.clock.Set(start)
	for i, code := range codes {
		_, err := h.b.GetAuthorizationFlow(h.ctx, code, validity)
		if !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("old %s flow: error = %v, want ErrNotFound", allStatuses[i], err)
		}
	}
	h.clock.Advance(retention + time.Minute)
	h.wantCleaned(h.b.CleanExpiredAuthorizationFlows, retention, 0, "second clean-up")
}

func testCleanAuthFlowsBoundary(t *testing.T, s *suite) {
	h := s.open(t)
	base := start.Truncate(time.Second)
	h.clock.Set(base)
	h.pendingAuthFlow()
	h.clock.Set(base.Add(retention))
	h.wantCleaned(h.b.CleanExpiredAuthorizationFlows, retention, 0, "flow exactly maxRetention old")
	h.clock.Set(base.Add(retention + time.Second))
	h.wantCleaned(h.b.CleanExpiredAuthorizationFlows, retention, 1, "flow maxRetention+1s old")
}

func testCleanEmpty(t *testing.T, s *suite) {
	h := s.open(t)
	for name, clean := range map[string]func(context.Context, time.Duration) (int64, error){
		"CleanExpiredDeviceFlows":        h.b.CleanExpiredDeviceFlows,
		"CleanExpiredAuthorizationFlows": h.b.CleanExpiredAuthorizationFlows,
		"CleanExpiredRefreshTokens":      h.b.CleanExpiredRefreshTokens,
	} {
		n, err := clean(h.ctx, retention)
		if err != nil || n != 0 {
			t.Errorf("%s on an empty store = %d, %v; want 0, nil", name, n, err)
		}
	}
}

func refreshCleanupTests() []testCase {
	return []testCase{
		{"ByJTITime", testCleanRefreshByJTITime},
		{"StatusIrrelevant", testCleanRefreshStatusIrrelevant},
	}
}

func testCleanRefreshByJTITime(t *testing.T, s *suite) {
	h := s.open(t)
	now := start.Truncate(time.Second) // whole seconds: no truncation ambiguity
	h.clock.Set(now)
	const keep = 24 * time.Hour
	cutoff := now.Add(-keep)
	type tok struct {
		jti  uuid.UUID
		gone bool
	}
	toks := []tok{
		{UUIDv7At(cutoff.Add(-400 * 24 * time.Hour)), true},
		{UUIDv7At(cutoff.Add(-time.Second)), true},
		{UUIDv7At(cutoff.Add(-time.Millisecond)), true},
		{backend.LowestUUIDv7(cutoff), false}, // JTI == LowestUUIDv7(cutoff): not older
		{UUIDv7At(cutoff), false},
		{UUIDv7At(cutoff.Add(time.Millisecond)), false},
		{UUIDv7At(now), false},
		{UUIDv7At(now.Add(time.Hour)), false}, // from a clock a little ahead
	}
	for i, tk := range toks {
		h.insertTokenJTI(tk.jti, "user-"+string(rune('a'+i%3)), "scope")
	}
	h.wantCleaned(h.b.CleanExpiredRefreshTokens, keep, 3, "first clean-up")
	var want []uuid.UUID
	for _, tk := range toks {
		if tk.gone {
			h.wantNoToken(tk.jti)
		} else {
			want = append(want, tk.jti)
		}
	}
	sort.Slice(want, func(i, j int) bool { return want[i].String() < want[j].String() })
	got := h.list("")
	if len(got) != len(want) {
		t.Fatalf("%d tokens left, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].JTI != want[i] {
			t.Errorf("survivor %d = %s, want %s", i, got[i].JTI, want[i])
		}
	}
	h.wantCleaned(h.b.CleanExpiredRefreshTokens, keep, 0, "second clean-up")
	// Later, everything but the token from the future is old.
	h.clock.Set(now.Add(keep + time.Second))
	h.wantCleaned(h.b.CleanExpiredRefreshTokens, keep, 4, "a day later")
	h.wantList("", h.getToken(toks[len(toks)-1].jti))
}

func testCleanRefreshStatusIrrelevant(t *testing.T, s *suite) {
	h := s.open(t)
	old := []uuid.UUID{h.insertToken("alice", "s"), h.insertToken("alice", "s"), h.insertToken("bob", "s")}
	noErr(t, h.b.RevokeRefreshToken(h.ctx, old[0]), "RevokeRefreshToken")
	h.clock.Advance(retention + time.Second)
	young := h.insertToken("alice", "s")
	h.wantCleaned(h.b.CleanExpiredRefreshTokens, retention, 3, "clean-up (revoked and created alike)")
	for _, jti := range old {
		h.wantNoToken(jti)
	}
	h.wantList("", created(young, "alice", "s"))
}
