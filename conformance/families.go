package conformance

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// grace is the rotation grace window the family tests open backends with.
const grace = 5 * time.Second

// familyRacers is the number of concurrent refreshes of one token.
const familyRacers = 16

func familyTests() []testCase {
	return []testCase{
		{"ChainKeepsFamily", testFamilyChain},
		{"RevokeFamily", testRevokeFamily},
		{"RevokeFamilyUnknown", testRevokeFamilyUnknown},
		{"ReplayRevokesFamilyOnly", testReplayRevokesFamily},
		{"ReplayDefaultRevokesSubject", testReplayDefaultRevokesSubject},
		{"RetryOfOwnRotation", testRotateOwnRetry},
		{"GraceConcurrentConverge", testGraceConcurrent},
		{"NoGraceConcurrentFamily", testNoGraceConcurrentFamily},
		{"GraceBoundary", testGraceBoundary},
		{"GraceSuccessorRotated", testGraceSuccessorRotated},
		{"GraceSuccessorRevoked", testGraceSuccessorRevoked},
		{"GraceRevokedWithoutSuccessor", testGraceRevokedWithoutSuccessor},
		{"FamilyLifetimeBoundary", testFamilyLifetimeBoundary},
		{"FamilyLifetimeRevokedToken", testFamilyLifetimeRevoked},
	}
}

// rotate rotates old into a new JTI made now and returns the new JTI and
// the returned record.
func (h *harness) rotate(old uuid.UUID) (uuid.UUID, backend.RefreshToken) {
	h.t.Helper()
	next := h.newJTI()
	got, err := h.b.RotateRefreshToken(h.ctx, old, next)
	if err != nil {
		h.t.Fatalf("RotateRefreshToken(%s): %v", old, err)
	}
	return next, got
}

func (h *harness) revokeFamily(jti uuid.UUID, want int64) {
	h.t.Helper()
	n, err := h.b.RevokeRefreshTokenFamily(h.ctx, jti)
	if err != nil || n != want {
		h.t.Errorf("RevokeRefreshTokenFamily(%s) = %d, %v; want %d, nil", jti, n, err, want)
	}
}

// A rotation chain stays in its first token's family; each rotated token
// names its successor.
func testFamilyChain(t *testing.T, s *suite) {
	h := s.open(t)
	a := h.insertToken("alice", "s")
	h.clock.Advance(time.Minute)
	b, gotA := h.rotate(a)
	if want := replaced(revoked(a, "alice", "s"), b); gotA != want {
		t.Errorf("rotation returned %+v, want %+v", gotA, want)
	}
	h.clock.Advance(time.Minute)
	c, gotB := h.rotate(b)
	if want := replaced(of(revoked(b, "alice", "s"), a), c); gotB != want {
		t.Errorf("second rotation returned %+v, want %+v", gotB, want)
	}
	h.wantList("",
		replaced(revoked(a, "alice", "s"), b),
		replaced(of(revoked(b, "alice", "s"), a), c),
		of(created(c, "alice", "s"), a))
	h.wantList("alice", of(created(c, "alice", "s"), a))
}

// RevokeRefreshTokenFamily revokes one session, found from any of its
// tokens, and counts what changed.
func testRevokeFamily(t *testing.T, s *suite) {
	h := s.open(t)
	a := h.insertToken("alice", "s")
	other := h.insertToken("alice", "other-device")
	bobs := h.insertToken("bob", "s")
	b, _ := h.rotate(a)
	c, _ := h.rotate(b)
	h.revokeFamily(a, 1) // through its revoked first token: c is the one live
	for _, jti := range []uuid.UUID{a, b, c} {
		h.wantTokenStatus(jti, backend.TokenRevoked)
	}
	h.wantList("alice", created(other, "alice", "other-device"))
	h.wantList("bob", created(bobs, "bob", "s"))
	h.revokeFamily(c, 0) // already revoked: nothing changed, not an error
	h.revokeFamily(other, 1)
	h.wantList("alice")
	h.wantList("bob", created(bobs, "bob", "s"))
}

func testRevokeFamilyUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	live := h.insertToken("alice", "s")
	n, err := h.b.RevokeRefreshTokenFamily(h.ctx, h.newJTI())
	wantErr(t, err, backend.ErrNotFound)
	if n != 0 {
		t.Errorf("RevokeRefreshTokenFamily(unknown) = %d, want 0", n)
	}
	h.wantList("", created(live, "alice", "s"))
}

// Under RevokeFamily a replay outside any grace window revokes the replayed
// token's family and leaves the subject's other sessions live.
func testReplayRevokesFamily(t *testing.T, s *suite) {
	for _, g := range []time.Duration{0, grace} {
		t.Run("grace="+g.String(), func(t *testing.T) {
			h := s.open(t, backend.WithReuseScope(backend.RevokeFamily), backend.WithRotationGrace(g))
			a := h.insertToken("alice", "s")
			laptop := h.insertToken("alice", "laptop")
			bobs := h.insertToken("bob", "s")
			b, _ := h.rotate(a)
			h.clock.Advance(grace) // outside the window (at its boundary) when there is one
			attacker := h.newJTI()
			_, err := h.b.RotateRefreshToken(h.ctx, a, attacker)
			wantErr(t, err, backend.ErrTokenReused)
			h.wantTokenStatus(b, backend.TokenRevoked)
			h.wantNoToken(attacker)
			h.wantList("alice", created(laptop, "alice", "laptop"))
			h.wantList("bob", created(bobs, "bob", "s"))
			// The laptop's family still rotates.
			next, _ := h.rotate(laptop)
			h.wantList("alice", of(created(next, "alice", "laptop"), laptop))
		})
	}
}

// The default scope is the subject (DiracX's behaviour), with or without grace.
func testReplayDefaultRevokesSubject(t *testing.T, s *suite) {
	h := s.open(t, backend.WithRotationGrace(grace))
	a := h.insertToken("alice", "s")
	laptop := h.insertToken("alice", "laptop")
	bobs := h.insertToken("bob", "s")
	b, _ := h.rotate(a)
	h.clock.Advance(grace)
	_, err := h.b.RotateRefreshToken(h.ctx, a, h.newJTI())
	wantErr(t, err, backend.ErrTokenReused)
	h.wantTokenStatus(b, backend.TokenRevoked)
	h.wantTokenStatus(laptop, backend.TokenRevoked)
	h.wantList("alice")
	h.wantList("bob", created(bobs, "bob", "s"))
}

// Rotating again into the successor the first call made is the caller's own
// retry (its reply was lost), not a replay: it succeeds and writes nothing.
func testRotateOwnRetry(t *testing.T, s *suite) {
	h := s.open(t)
	a := h.insertToken("alice", "s")
	laptop := h.insertToken("alice", "laptop")
	h.clock.Advance(time.Millisecond)
	b, first := h.rotate(a)
	h.clock.Advance(time.Hour)
	again, err := h.b.RotateRefreshToken(h.ctx, a, b)
	noErr(t, err, "RotateRefreshToken retried with the same new JTI")
	if again != first {
		t.Errorf("retry returned %+v, want %+v", again, first)
	}
	h.wantList("alice", created(laptop, "alice", "laptop"), of(created(b, "alice", "s"), a))
}

// Concurrent refreshes of one token within the grace window all succeed and
// all get the same successor; one token of the family is live afterwards.
func testGraceConcurrent(t *testing.T, s *suite) {
	for _, scope := range []backend.ReuseScope{backend.RevokeSubject, backend.RevokeFamily} {
		t.Run(scope.String(), func(t *testing.T) {
			h := s.open(t, backend.WithRotationGrace(grace), backend.WithReuseScope(scope))
			a := h.insertToken("alice", "s")
			laptop := h.insertToken("alice", "laptop")
			h.clock.Advance(time.Millisecond) // the successor sorts after the laptop's token
			news := make([]uuid.UUID, familyRacers)
			for i := range news {
				news[i] = h.newJTI()
			}
			got := make([]backend.RefreshToken, familyRacers)
			errs := race(familyRacers, func(i int) error {
				var err error
				got[i], err = h.b.RotateRefreshToken(h.ctx, a, news[i])
				return err
			})
			succ := uuid.Nil
			for i, err := range errs {
				if err != nil {
					t.Errorf("refresh %d: %v, want success within the grace window", i, err)
					continue
				}
				if succ == uuid.Nil {
					succ = got[i].ReplacedBy
				}
				if want := replaced(revoked(a, "alice", "s"), succ); got[i] != want {
					t.Errorf("refresh %d returned %+v, want %+v (one successor for all)", i, got[i], want)
				}
			}
			inserted := 0
			for _, jti := range news {
				if jti == succ {
					inserted++
					continue
				}
				h.wantNoToken(jti)
			}
			if inserted != 1 {
				t.Fatalf("the successor %s is none of the new JTIs passed", succ)
			}
			h.wantList("alice", created(laptop, "alice", "laptop"), of(created(succ, "alice", "s"), a))
		})
	}
}

// Without grace, of concurrent refreshes exactly one succeeds and the
// others are replays: under RevokeFamily they revoke that family (the
// winner's new token too) and leave the subject's other family live.
func testNoGraceConcurrentFamily(t *testing.T, s *suite) {
	h := s.open(t, backend.WithReuseScope(backend.RevokeFamily))
	a := h.insertToken("alice", "s")
	laptop := h.insertToken("alice", "laptop")
	news := make([]uuid.UUID, familyRacers)
	for i := range news {
		news[i] = h.newJTI()
	}
	errs := race(familyRacers, func(i int) error {
		_, err := h.b.RotateRefreshToken(h.ctx, a, news[i])
		return err
	})
	w := wantOneWinner(t, errs, backend.ErrTokenReused)
	for i, jti := range news {
		if i == w {
			h.wantTokenStatus(jti, backend.TokenRevoked)
		} else {
			h.wantNoToken(jti)
		}
	}
	h.wantList("alice", created(laptop, "alice", "laptop"))
}

// The window is measured from the successor's UUIDv7 time to the clock, to
// the millisecond: less than the grace ago converges, exactly the grace ago
// is a replay.
func testGraceBoundary(t *testing.T, s *suite) {
	h := s.open(t, backend.WithRotationGrace(grace), backend.WithReuseScope(backend.RevokeFamily))
	a := h.insertToken("alice", "s")
	b, _ := h.rotate(a) // b's UUIDv7 is the clock's millisecond
	h.clock.Advance(grace - time.Millisecond)
	late := h.newJTI()
	got, err := h.b.RotateRefreshToken(h.ctx, a, late)
	noErr(t, err, "RotateRefreshToken 1ms inside the grace window")
	if got.ReplacedBy != b {
		t.Errorf("ReplacedBy = %s, want the successor %s", got.ReplacedBy, b)
	}
	h.wantNoToken(late)
	h.clock.Advance(time.Millisecond)
	_, err = h.b.RotateRefreshToken(h.ctx, a, h.newJTI())
	wantErr(t, err, backend.ErrTokenReused)
	h.wantTokenStatus(b, backend.TokenRevoked)
}

// A successor that was rotated in turn ends the grace: the old token is a replay.
func testGraceSuccessorRotated(t *testing.T, s *suite) {
	h := s.open(t, backend.WithRotationGrace(grace), backend.WithReuseScope(backend.RevokeFamily))
	a := h.insertToken("alice", "s")
	b, _ := h.rotate(a)
	c, _ := h.rotate(b)
	_, err := h.b.RotateRefreshToken(h.ctx, a, h.newJTI())
	wantErr(t, err, backend.ErrTokenReused)
	h.wantTokenStatus(c, backend.TokenRevoked)
	h.wantList("alice")
}

// A successor revoked (signed out) ends the grace too.
func testGraceSuccessorRevoked(t *testing.T, s *suite) {
	h := s.open(t, backend.WithRotationGrace(grace))
	a := h.insertToken("alice", "s")
	b, _ := h.rotate(a)
	noErr(t, h.b.RevokeRefreshToken(h.ctx, b), "RevokeRefreshToken")
	next := h.newJTI()
	_, err := h.b.RotateRefreshToken(h.ctx, a, next)
	wantErr(t, err, backend.ErrTokenReused)
	h.wantNoToken(next)
}

// A token revoked by RevokeRefreshToken has no successor: no grace applies.
func testGraceRevokedWithoutSuccessor(t *testing.T, s *suite) {
	h := s.open(t, backend.WithRotationGrace(grace), backend.WithReuseScope(backend.RevokeFamily))
	a := h.insertToken("alice", "s")
	laptop := h.insertToken("alice", "laptop")
	noErr(t, h.b.RevokeRefreshToken(h.ctx, a), "RevokeRefreshToken")
	next := h.newJTI()
	_, err := h.b.RotateRefreshToken(h.ctx, a, next)
	wantErr(t, err, backend.ErrTokenReused)
	h.wantNoToken(next)
	h.wantList("alice", created(laptop, "alice", "laptop")) // its own family only
}

// A family started exactly the lifetime ago still rotates; one millisecond
// later it is ErrExpired and nothing is written.
func testFamilyLifetimeBoundary(t *testing.T, s *suite) {
	const lifetime = 12 * time.Hour
	h := s.open(t, backend.WithFamilyLifetime(lifetime), backend.WithRotationGrace(grace))
	a := h.insertToken("alice", "s") // the family's id dates the login
	h.clock.Advance(lifetime / 2)
	b, _ := h.rotate(a)
	h.clock.Advance(lifetime / 2)
	c, _ := h.rotate(b) // the family is exactly lifetime old
	h.clock.Advance(time.Millisecond)
	next := h.newJTI()
	_, err := h.b.RotateRefreshToken(h.ctx, c, next)
	wantErr(t, err, backend.ErrExpired)
	h.wantNoToken(next)
	h.wantList("alice", of(created(c, "alice", "s"), a))
	// A new login is a new family, unaffected.
	d := h.insertToken("alice", "s")
	h.rotate(d)
}

// An expired family's revoked token is ErrExpired too, not a replay:
// nothing is written, and a grace window does not revive it.
func testFamilyLifetimeRevoked(t *testing.T, s *suite) {
	const lifetime = time.Hour
	h := s.open(t, backend.WithFamilyLifetime(lifetime), backend.WithRotationGrace(grace))
	a := h.insertToken("alice", "s")
	h.clock.Advance(lifetime)
	b, _ := h.rotate(a)
	h.clock.Advance(time.Second)
	for _, jti := range []uuid.UUID{a, b} {
		_, err := h.b.RotateRefreshToken(h.ctx, jti, h.newJTI())
		if !errors.Is(err, backend.ErrExpired) {
			t.Errorf("rotating %s of an expired family: %v, want ErrExpired", jti, err)
		}
	}
	h.wantList("alice", of(created(b, "alice", "s"), a))
}
