package conformance

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// Load test shape (issue 7): chains goroutines each rotate their own token
// rotations times while others goroutines list tokens and start device flows.
const (
	loadChains    = 32
	loadRotations = 20
	loadOthers    = 8
	loadMaxLoops  = 100 // bound on each of the others' iterations
)

func loadTests() []testCase {
	return []testCase{{"RotationChains", testLoadRotationChains}}
}

func testLoadRotationChains(t *testing.T, s *suite) {
	h := s.open(t)
	subs := make([]string, loadChains)
	first := make([]uuid.UUID, loadChains)
	for i := range subs {
		subs[i] = fmt.Sprintf("load-user-%02d", i)
		first[i] = h.insertToken(subs[i], "openid offline_access")
	}
	chains := make([][]uuid.UUID, loadChains) // every JTI of a chain, in order
	var failed atomic.Int64
	fail := func(format string, args ...any) {
		failed.Add(1)
		t.Errorf(format, args...)
	}

	var rotators, others sync.WaitGroup
	done := make(chan struct{})
	start := make(chan struct{})
	for i := range loadChains {
		rotators.Add(1)
		go func() {
			defer rotators.Done()
			<-start
			cur := first[i]
			chain := []uuid.UUID{cur}
			for r := range loadRotations {
				next := UUIDv7At(h.clock.Now())
				old, err := h.b.RotateRefreshToken(h.ctx, cur, next)
				if err != nil {
					fail("chain %d rotation %d: %v", i, r, err)
					break
				}
				if old.JTI != cur || old.Status != backend.TokenRevoked || old.Sub != subs[i] {
					fail("chain %d rotation %d returned %+v", i, r, old)
				}
				cur = next
				chain = append(chain, cur)
			}
			chains[i] = chain
		}()
	}
	var flows atomic.Int64
	for g := range loadOthers {
		others.Add(1)
		go func() {
			defer others.Done()
			<-start
			for loop := 0; loop < loadMaxLoops; loop++ {
				select {
				case <-done:
					if loop > 0 {
						return
					}
				default:
				}
				if g%2 == 0 {
					loadList(h, subs[(g*7+loop)%loadChains], loop%10 == 0, fail)
				} else {
					uc, dc, err := h.b.InsertDeviceFlow(h.ctx, fmt.Sprintf("load-client-%d", g), "openid")
					if err != nil {
						fail("InsertDeviceFlow: %v", err)
						continue
					}
					flows.Add(1)
					if _, err := h.b.DeviceFlowValidateUserCode(h.ctx, uc, validity); err != nil {
						fail("DeviceFlowValidateUserCode: %v", err)
					}
					if f, err := h.b.GetDeviceFlow(h.ctx, dc); err != nil || f.UserCode != uc {
						fail("GetDeviceFlow = %+v, %v", f, err)
					}
				}
			}
		}()
	}
	close(start)
	rotators.Wait()
	close(done)
	others.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d calls failed under load", n)
	}

	all := h.list("")
	bySub := map[string][]backend.RefreshToken{}
	for _, tok := range all {
		bySub[tok.Sub] = append(bySub[tok.Sub], tok)
	}
	for i, sub := range subs {
		chain := chains[i]
		if len(chain) != loadRotations+1 {
			t.Errorf("chain %d has %d tokens, want %d", i, len(chain), loadRotations+1)
			continue
		}
		last := chain[len(chain)-1]
		h.wantList(sub, of(created(last, sub, "openid offline_access"), chain[0]))
		var live, dead int
		for _, tok := range bySub[sub] {
			if tok.Status == backend.TokenCreated {
				live++
			} else {
				dead++
			}
		}
		if live != 1 || dead != loadRotations {
			t.Errorf("chain %d: %d live and %d revoked tokens, want 1 and %d", i, live, dead, loadRotations)
		}
		for _, jti := range chain[:len(chain)-1] {
			h.wantTokenStatus(jti, backend.TokenRevoked)
		}
	}
	if len(all) != loadChains*(loadRotations+1) {
		t.Errorf("%d tokens stored, want %d", len(all), loadChains*(loadRotations+1))
	}
	if got := h.countDeviceFlows(); got != flows.Load() {
		t.Errorf("%d device flows stored, %d inserted", got, flows.Load())
	}
	t.Logf("load: %d rotations, %d device flows started", loadChains*loadRotations, flows.Load())
}

// loadList checks that a chain always shows exactly one live token, even
// mid-rotation (rotation is atomic); with all set it checks the
// administrator's view too.
func loadList(h *harness, sub string, all bool, fail func(string, ...any)) {
	toks, err := h.b.GetUserRefreshTokens(h.ctx, sub)
	if err != nil {
		fail("GetUserRefreshTokens(%q): %v", sub, err)
		return
	}
	if len(toks) != 1 {
		fail("GetUserRefreshTokens(%q) returned %d live tokens mid-rotation, want exactly 1", sub, len(toks))
	}
	if !all {
		return
	}
	toks, err = h.b.GetUserRefreshTokens(h.ctx, "")
	if err != nil {
		fail("GetUserRefreshTokens(\"\"): %v", err)
		return
	}
	live := map[string]int{}
	for _, tok := range toks {
		if tok.Status == backend.TokenCreated {
			live[tok.Sub]++
		}
	}
	for s, n := range live {
		if n != 1 {
			fail("administrator's view: %s has %d live tokens, want 1", s, n)
		}
	}
	if len(live) != loadChains {
		fail("administrator's view: %d subjects with a live token, want %d", len(live), loadChains)
	}
}
