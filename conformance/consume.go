package conformance

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
)

// racers is how many goroutines race on one code or one token.
const racers = 24

func consumeDeviceFlowTests() []testCase {
	return []testCase{
		{"Success", testConsumeDeviceSuccess},
		{"Unknown", testConsumeDeviceUnknown},
		{"AlreadyUsed", testConsumeDeviceAlreadyUsed},
		{"AlreadyUsedEvenWhenOld", testConsumeDeviceAlreadyUsedOld},
		{"Expired", testConsumeDeviceExpired},
		{"ExpiredBeforeStatus", testConsumeDeviceExpiredBeforeStatus},
		{"AuthorizationPending", testConsumeDevicePending},
		{"FlowFailed", testConsumeDeviceFailed},
		{"ConcurrentExactlyOnce", testConsumeDeviceConcurrent},
	}
}

func testConsumeDeviceSuccess(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.readyDeviceFlow(sampleIDToken())
	h.clock.Advance(validity - time.Second)
	f, err := h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
	noErr(t, err, "ConsumeDeviceFlow")
	if f.Status != backend.StatusDone {
		t.Errorf("returned Status = %s, want DONE (as stored after the call)", f.Status)
	}
	if f.UserCode != uc || f.DeviceCode != backend.HashCode(dc) || f.ClientID != "client-ready" || f.Scope != "openid profile" {
		t.Errorf("returned flow = %+v", f)
	}
	wantTime(t, "CreationTime", f.CreationTime, start.Truncate(time.Second))
	sameJSON(t, "returned IDToken", f.IDToken, sampleIDToken())
	stored := h.getDeviceFlow(dc)
	if stored.Status != backend.StatusDone {
		t.Errorf("stored Status = %s, want DONE", stored.Status)
	}
	sameJSON(t, "stored IDToken", stored.IDToken, sampleIDToken())
}

func testConsumeDeviceUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.readyDeviceFlow(sampleIDToken())
	_, err := h.b.ConsumeDeviceFlow(h.ctx, "no-such-device-code", validity)
	wantErr(t, err, backend.ErrNotFound)
	_, err = h.b.ConsumeDeviceFlow(h.ctx, backend.HashCode(dc), validity)
	wantErr(t, err, backend.ErrNotFound)
	h.wantDeviceStatus(dc, backend.StatusReady)
}

func testConsumeDeviceAlreadyUsed(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.readyDeviceFlow(sampleIDToken())
	_, err := h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
	noErr(t, err, "first ConsumeDeviceFlow")
	_, err = h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
	wantErr(t, err, backend.ErrAlreadyUsed)
	// A flow set DONE by UpdateDeviceFlowStatus is used too.
	_, dc2 := h.deviceFlowWithStatus(backend.StatusDone)
	_, err = h.b.ConsumeDeviceFlow(h.ctx, dc2, validity)
	wantErr(t, err, backend.ErrAlreadyUsed)
	h.wantDeviceStatus(dc, backend.StatusDone)
}

func testConsumeDeviceAlreadyUsedOld(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.readyDeviceFlow(sampleIDToken())
	_, err := h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
	noErr(t, err, "ConsumeDeviceFlow")
	h.clock.Advance(validity + time.Hour)
	_, err = h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
	wantErr(t, err, backend.ErrAlreadyUsed)
}

func testConsumeDeviceExpired(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.readyDeviceFlow(sampleIDToken())
	h.clock.Advance(validity) // CreationTime == now-maxValidity: not live
	_, err := h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
	wantErr(t, err, backend.ErrExpired)
	h.wantDeviceStatus(dc, backend.StatusReady)
}

func testConsumeDeviceExpiredBeforeStatus(t *testing.T, s *suite) {
	h := s.open(t)
	_, pending := h.deviceFlowWithStatus(backend.StatusPending)
	_, failed := h.deviceFlowWithStatus(backend.StatusError)
	h.clock.Advance(validity + time.Second)
	_, err := h.b.ConsumeDeviceFlow(h.ctx, pending, validity)
	wantErr(t, err, backend.ErrExpired)
	_, err = h.b.ConsumeDeviceFlow(h.ctx, failed, validity)
	wantErr(t, err, backend.ErrExpired)
}

func testConsumeDevicePending(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.deviceFlowWithStatus(backend.StatusPending)
	_, err := h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
	wantErr(t, err, backend.ErrAuthorizationPending)
	h.wantDeviceStatus(dc, backend.StatusPending)
}

func testConsumeDeviceFailed(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.deviceFlowWithStatus(backend.StatusError)
	_, err := h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
	wantErr(t, err, backend.ErrFlowFailed)
	h.wantDeviceStatus(dc, backend.StatusError)
}

// race runs fn in n goroutines released at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// wantOneWinner checks that exactly one error is nil and every other one is loser.
func wantOneWinner(t *testing.T, errs []error, loser error) int {
	t.Helper()
	winner := -1
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			winner = i
		case !errors.Is(err, loser):
			t.Errorf("goroutine %d: error = %v, want nil or %v", i, err, loser)
		}
	}
	if wins != 1 {
		t.Errorf("%d of %d concurrent calls succeeded, want exactly 1", wins, len(errs))
	}
	return winner
}

func testConsumeDeviceConcurrent(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.readyDeviceFlow(sampleIDToken())
	got := make([]backend.DeviceFlow, racers)
	errs := race(racers, func(i int) error {
		var err error
		got[i], err = h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
		return err
	})
	if w := wantOneWinner(t, errs, backend.ErrAlreadyUsed); w >= 0 {
		if got[w].Status != backend.StatusDone {
			t.Errorf("winner got Status %s, want DONE", got[w].Status)
		}
		sameJSON(t, "winner's IDToken", got[w].IDToken, sampleIDToken())
	}
	h.wantDeviceStatus(dc, backend.StatusDone)
}
