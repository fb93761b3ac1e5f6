package conformance

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

func refreshTokenTests() []testCase {
	return []testCase{
		{"InsertGet", testTokenInsertGet},
		{"GetUnknown", testTokenGetUnknown},
		{"InsertDuplicate", testTokenInsertDuplicate},
		{"InsertIdenticalRetry", testTokenInsertIdenticalRetry},
		{"InsertNotUUIDv7", testTokenInsertNotUUIDv7},
		{"ListBySubject", testTokenListBySubject},
		{"ListUnknownSubject", testTokenListUnknownSubject},
		{"ListAdmin", testTokenListAdmin},
		{"ListEmptyStore", testTokenListEmptyStore},
		{"Revoke", testTokenRevoke},
		{"RevokeIdempotent", testTokenRevokeIdempotent},
		{"RevokeUnknown", testTokenRevokeUnknown},
		{"RevokeSubject", testTokenRevokeSubject},
		{"RevokeSubjectUnknown", testTokenRevokeSubjectUnknown},
		{"RevokeSubjectEmpty", testTokenRevokeSubjectEmpty},
	}
}

// created is a CREATED token as InsertRefreshToken stores it: the first of
// its own family (FamilyID = JTI). Use of and replaced for rotated tokens.
func created(jti uuid.UUID, sub, scope string) backend.RefreshToken {
	return backend.RefreshToken{JTI: jti, Status: backend.TokenCreated, Scope: scope, Sub: sub, FamilyID: jti}
}

// revoked is created, REVOKED.
func revoked(jti uuid.UUID, sub, scope string) backend.RefreshToken {
	return backend.RefreshToken{JTI: jti, Status: backend.TokenRevoked, Scope: scope, Sub: sub, FamilyID: jti}
}

// of returns t as a member of family fam (a token made by rotation).
func of(t backend.RefreshToken, fam uuid.UUID) backend.RefreshToken {
	t.FamilyID = fam
	return t
}

// replaced returns t with its successor set.
func replaced(t backend.RefreshToken, succ uuid.UUID) backend.RefreshToken {
	t.ReplacedBy = succ
	return t
}

func testTokenInsertGet(t *testing.T, s *suite) {
	h := s.open(t)
	jti := h.insertToken("alice", "openid vo:lhcb")
	if got, want := h.getToken(jti), created(jti, "alice", "openid vo:lhcb"); got != want {
		t.Errorf("GetRefreshToken = %+v, want %+v", got, want)
	}
	// A JTI far from the clock's time is accepted as given.
	old := UUIDv7At(time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC))
	h.insertTokenJTI(old, "bob", "")
	if got, want := h.getToken(old), created(old, "bob", ""); got != want {
		t.Errorf("GetRefreshToken = %+v, want %+v", got, want)
	}
}

func testTokenGetUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	h.insertToken("alice", "s")
	_, err := h.b.GetRefreshToken(h.ctx, h.newJTI())
	wantErr(t, err, backend.ErrNotFound)
}

func testTokenInsertDuplicate(t *testing.T, s *suite) {
	h := s.open(t)
	jti := h.insertToken("alice", "first")
	wantErr(t, h.b.InsertRefreshToken(h.ctx, jti, "mallory", "second"), backend.ErrAlreadyExists)
	if got := h.getToken(jti); got != created(jti, "alice", "first") {
		t.Errorf("token overwritten: %+v", got)
	}
	noErr(t, h.b.RevokeRefreshToken(h.ctx, jti), "RevokeRefreshToken")
	wantErr(t, h.b.InsertRefreshToken(h.ctx, jti, "alice", "first"), backend.ErrAlreadyExists)
	h.wantTokenStatus(jti, backend.TokenRevoked)
	h.wantList("", revoked(jti, "alice", "first"))
}

// testTokenInsertIdenticalRetry: inserting a row identical to a stored
// CREATED one (same JTI, subject and scope) is the caller's own retry after
// a lost reply: a success that changes nothing. Any difference, or a
// revoked row, is ErrAlreadyExists (testTokenInsertDuplicate).
func testTokenInsertIdenticalRetry(t *testing.T, s *suite) {
	h := s.open(t)
	jti := h.insertToken("alice", "openid")
	noErr(t, h.b.InsertRefreshToken(h.ctx, jti, "alice", "openid"), "InsertRefreshToken of an identical row")
	h.wantList("", created(jti, "alice", "openid"))
	wantErr(t, h.b.InsertRefreshToken(h.ctx, jti, "alice", "openid offline_access"), backend.ErrAlreadyExists)
	wantErr(t, h.b.InsertRefreshToken(h.ctx, jti, "Alice", "openid"), backend.ErrAlreadyExists)
	h.wantList("", created(jti, "alice", "openid"))
}

func testTokenInsertNotUUIDv7(t *testing.T, s *suite) {
	h := s.open(t)
	v7 := h.newJTI()
	wrongVariant := v7
	wrongVariant[8] &^= 0x80 // NCS variant
	for name, jti := range map[string]uuid.UUID{
		"nil":              uuid.Nil,
		"v4":               uuid.New(),
		"v1-like":          uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
		"v7 wrong variant": wrongVariant,
		"max":              uuid.Max,
	} {
		err := h.b.InsertRefreshToken(h.ctx, jti, "alice", "s")
		if !errors.Is(err, backend.ErrInvalidInput) {
			t.Errorf("%s JTI %s: error = %v, want ErrInvalidInput", name, jti, err)
		} else {
			wantInvalid(t, err, "jti")
		}
	}
	h.wantList("")
}

// threeSubjects stores tokens of alice (three, the middle one revoked) and
// bob (two), inserted in an order unlike their JTI order; it returns them
// sorted by JTI per subject.
func threeSubjects(h *harness) (alice, bob []uuid.UUID) {
	h.t.Helper()
	a := []uuid.UUID{UUIDv7At(start.Add(-3 * time.Hour)), UUIDv7At(start.Add(-2 * time.Hour)), UUIDv7At(start.Add(-time.Hour))}
	b := []uuid.UUID{UUIDv7At(start.Add(-150 * time.Minute)), UUIDv7At(start.Add(-30 * time.Minute))}
	h.insertTokenJTI(a[2], "alice", "scope-a2")
	h.insertTokenJTI(b[1], "bob", "scope-b1")
	h.insertTokenJTI(a[0], "alice", "scope-a0")
	h.insertTokenJTI(b[0], "bob", "scope-b0")
	h.insertTokenJTI(a[1], "alice", "scope-a1")
	if err := h.b.RevokeRefreshToken(h.ctx, a[1]); err != nil {
		h.t.Fatalf("RevokeRefreshToken: %v", err)
	}
	return a, b
}

func testTokenListBySubject(t *testing.T, s *suite) {
	h := s.open(t)
	a, b := threeSubjects(h)
	h.wantList("alice", created(a[0], "alice", "scope-a0"), created(a[2], "alice", "scope-a2"))
	h.wantList("bob", created(b[0], "bob", "scope-b0"), created(b[1], "bob", "scope-b1"))
}

func testTokenListUnknownSubject(t *testing.T, s *suite) {
	h := s.open(t)
	threeSubjects(h)
	h.wantList("carol")
	h.wantList("alic")
	h.wantList("alice2")
}

func testTokenListAdmin(t *testing.T, s *suite) {
	h := s.open(t)
	a, b := threeSubjects(h)
	h.wantList("",
		created(a[0], "alice", "scope-a0"),
		created(b[0], "bob", "scope-b0"),
		revoked(a[1], "alice", "scope-a1"),
		created(a[2], "alice", "scope-a2"),
		created(b[1], "bob", "scope-b1"),
	)
}

func testTokenListEmptyStore(t *testing.T, s *suite) {
	h := s.open(t)
	h.wantList("")
	h.wantList("alice")
}

func testTokenRevoke(t *testing.T, s *suite) {
	h := s.open(t)
	a, b := threeSubjects(h)
	noErr(t, h.b.RevokeRefreshToken(h.ctx, a[0]), "RevokeRefreshToken")
	if got := h.getToken(a[0]); got != revoked(a[0], "alice", "scope-a0") {
		t.Errorf("after revoke: %+v", got)
	}
	h.wantList("alice", created(a[2], "alice", "scope-a2"))
	h.wantList("bob", created(b[0], "bob", "scope-b0"), created(b[1], "bob", "scope-b1"))
}

func testTokenRevokeIdempotent(t *testing.T, s *suite) {
	h := s.open(t)
	jti := h.insertToken("alice", "s")
	noErr(t, h.b.RevokeRefreshToken(h.ctx, jti), "first RevokeRefreshToken")
	noErr(t, h.b.RevokeRefreshToken(h.ctx, jti), "second RevokeRefreshToken")
	h.wantTokenStatus(jti, backend.TokenRevoked)
}

func testTokenRevokeUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	jti := h.insertToken("alice", "s")
	wantErr(t, h.b.RevokeRefreshToken(h.ctx, h.newJTI()), backend.ErrNotFound)
	h.wantTokenStatus(jti, backend.TokenCreated)
	h.wantList("", created(jti, "alice", "s"))
}

func testTokenRevokeSubject(t *testing.T, s *suite) {
	h := s.open(t)
	a, b := threeSubjects(h)
	n, err := h.b.RevokeUserRefreshTokens(h.ctx, "alice")
	noErr(t, err, "RevokeUserRefreshTokens")
	if n != 2 {
		t.Errorf("RevokeUserRefreshTokens(alice) = %d, want 2 (the revoked one is not counted)", n)
	}
	for _, jti := range a {
		h.wantTokenStatus(jti, backend.TokenRevoked)
	}
	h.wantList("alice")
	h.wantList("bob", created(b[0], "bob", "scope-b0"), created(b[1], "bob", "scope-b1"))
	n, err = h.b.RevokeUserRefreshTokens(h.ctx, "alice")
	noErr(t, err, "second RevokeUserRefreshTokens")
	if n != 0 {
		t.Errorf("second RevokeUserRefreshTokens(alice) = %d, want 0", n)
	}
}

func testTokenRevokeSubjectUnknown(t *testing.T, s *suite) {
	h := s.open(t)
	_, b := threeSubjects(h)
	n, err := h.b.RevokeUserRefreshTokens(h.ctx, "carol")
	if err != nil || n != 0 {
		t.Errorf("RevokeUserRefreshTokens(carol) = %d, %v; want 0, nil", n, err)
	}
	h.wantList("bob", created(b[0], "bob", "scope-b0"), created(b[1], "bob", "scope-b1"))
}

func testTokenRevokeSubjectEmpty(t *testing.T, s *suite) {
	h := s.open(t)
	a, b := threeSubjects(h)
	n, err := h.b.RevokeUserRefreshTokens(h.ctx, "")
	wantInvalid(t, err, "sub")
	if n != 0 {
		t.Errorf("RevokeUserRefreshTokens(\"\") = %d, want 0", n)
	}
	h.wantList("alice", created(a[0], "alice", "scope-a0"), created(a[2], "alice", "scope-a2"))
	h.wantList("bob", created(b[0], "bob", "scope-b0"), created(b[1], "bob", "scope-b1"))
}

func rotateTests() []testCase {
	return []testCase{
		{"Success", testRotateSuccess},
		{"ReplayRevokesSubject", testRotateReplay},
		{"RevokedTokenRevokesSubject", testRotateRevoked},
		{"UnknownOld", testRotateUnknownOld},
		{"NewNotUUIDv7", testRotateNewNotUUIDv7},
		{"NewExists", testRotateNewExists},
		{"NewEqualsOld", testRotateNewEqualsOld},
		{"RetryIsIdempotent", testRotateRetry},
		{"RetryOfAnotherSuccessor", testRotateRetryOtherSuccessor},
		{"ConcurrentExactlyOnce", testRotateConcurrent},
	}
}

func testRotateSuccess(t *testing.T, s *suite) {
	h := s.open(t)
	old := h.insertToken("alice", "openid offline_access")
	other := h.insertToken("bob", "x")
	h.clock.Advance(time.Minute)
	next := h.newJTI()
	got, err := h.b.RotateRefreshToken(h.ctx, old, next)
	noErr(t, err, "RotateRefreshToken")
	if want := replaced(revoked(old, "alice", "openid offline_access"), next); got != want {
		t.Errorf("returned %+v, want the old token as stored after the call %+v", got, want)
	}
	if got := h.getToken(old); got.Status != backend.TokenRevoked {
		t.Errorf("old token status %s, want REVOKED", got.Status)
	}
	if got, want := h.getToken(next), of(created(next, "alice", "openid offline_access"), old); got != want {
		t.Errorf("new token = %+v, want %+v (in the old token's family)", got, want)
	}
	h.wantList("alice", of(created(next, "alice", "openid offline_access"), old))
	h.wantList("bob", created(other, "bob", "x"))
}

func testRotateReplay(t *testing.T, s *suite) {
	h := s.open(t)
	old := h.insertToken("alice", "s")
	unrelated := h.insertToken("alice", "other-device")
	bobs := h.insertToken("bob", "s")
	next := h.newJTI()
	_, err := h.b.RotateRefreshToken(h.ctx, old, next)
	noErr(t, err, "RotateRefreshToken")
	// The stolen old token is presented again.
	attacker := h.newJTI()
	_, err = h.b.RotateRefreshToken(h.ctx, old, attacker)
	wantErr(t, err, backend.ErrTokenReused)
	for _, jti := range []uuid.UUID{old, unrelated, next} {
		h.wantTokenStatus(jti, backend.TokenRevoked)
	}
	h.wantNoToken(attacker)
	h.wantList("alice")
	h.wantList("bob", created(bobs, "bob", "s"))
}

// testRotateRetry: RotateRefreshToken(old, new) again after it succeeded
// (the caller's retry after a lost reply) finds old REVOKED and new stored
// with old's subject and scope: the rotation happened, so it succeeds,
// returns the old record and revokes nothing.
func testRotateRetry(t *testing.T, s *suite) {
	h := s.open(t)
	old := h.insertToken("alice", "openid")
	other := h.insertToken("alice", "other-device")
	next := h.newJTI()
	first, err := h.b.RotateRefreshToken(h.ctx, old, next)
	noErr(t, err, "RotateRefreshToken")
	again, err := h.b.RotateRefreshToken(h.ctx, old, next)
	noErr(t, err, "RotateRefreshToken retried with the same JTIs")
	if want := revoked(old, "alice", "openid"); again.JTI != want.JTI || again.Status != want.Status ||
		again.Sub != want.Sub || again.Scope != want.Scope {
		t.Errorf("retried rotation returned %+v, want %+v", again, want)
	}
	if first.JTI != again.JTI || first.Status != again.Status {
		t.Errorf("retried rotation returned %+v, the first %+v", again, first)
	}
	live := []backend.RefreshToken{created(other, "alice", "other-device"), of(created(next, "alice", "openid"), old)}
	if bytes.Compare(next[:], other[:]) < 0 { // two JTIs of one millisecond: random order
		live[0], live[1] = live[1], live[0]
	}
	h.wantList("alice", live...)
	// The successor rotates on as usual.
	_, err = h.b.RotateRefreshToken(h.ctx, next, h.newJTI())
	noErr(t, err, "RotateRefreshToken of the successor")
}

// testRotateRetryOtherSuccessor: a revoked old token whose given new JTI
// is stored but is not its successor (another subject's, or another
// scope's) is a replay: ErrTokenReused, the subject's tokens revoked.
func testRotateRetryOtherSuccessor(t *testing.T, s *suite) {
	for name, mk := range map[string]func(h *harness) uuid.UUID{
		"OtherSubject": func(h *harness) uuid.UUID { return h.insertToken("bob", "openid") },
		"OtherScope":   func(h *harness) uuid.UUID { return h.insertToken("alice", "admin") },
	} {
		t.Run(name, func(t *testing.T) {
			h := s.open(t)
			old := h.insertToken("alice", "openid")
			next := h.newJTI()
			_, err := h.b.RotateRefreshToken(h.ctx, old, next)
			noErr(t, err, "RotateRefreshToken")
			foreign := mk(h)
			_, err = h.b.RotateRefreshToken(h.ctx, old, foreign)
			wantErr(t, err, backend.ErrTokenReused)
			h.wantTokenStatus(next, backend.TokenRevoked)
			h.wantList("alice")
			if name == "OtherSubject" {
				h.wantList("bob", created(foreign, "bob", "openid"))
			}
		})
	}
}

func testRotateRevoked(t *testing.T, s *suite) {
	h := s.open(t)
	old := h.insertToken("alice", "s")
	live := h.insertToken("alice", "s")
	noErr(t, h.b.RevokeRefreshToken(h.ctx, old), "RevokeRefreshToken")
	next := h.newJTI()
	_, err := h.b.RotateRefreshToken(h.ctx, old, next)
	wantErr(t, err, backend.ErrTokenReused)
	h.wantTokenStatus(live, backend.TokenRevoked)
	h.wantNoToken(next)
}

func testRotateUnknownOld(t *testing.T, s *suite) {
	h := s.open(t)
	live := h.insertToken("alice", "s")
	next := h.newJTI()
	_, err := h.b.RotateRefreshToken(h.ctx, h.newJTI(), next)
	wantErr(t, err, backend.ErrNotFound)
	h.wantNoToken(next)
	h.wantList("", created(live, "alice", "s"))
}

func testRotateNewNotUUIDv7(t *testing.T, s *suite) {
	h := s.open(t)
	old := h.insertToken("alice", "s")
	for name, next := range map[string]uuid.UUID{"nil": uuid.Nil, "v4": uuid.New()} {
		_, err := h.b.RotateRefreshToken(h.ctx, old, next)
		if !errors.Is(err, backend.ErrInvalidInput) {
			t.Errorf("%s new JTI: error = %v, want ErrInvalidInput", name, err)
		} else {
			wantInvalid(t, err, "jti")
		}
	}
	h.wantList("", created(old, "alice", "s"))
	// Validation comes first: a bad new JTI with a revoked old one is not a replay.
	revokedOld := h.insertToken("bob", "s")
	bobLive := h.insertToken("bob", "s")
	noErr(t, h.b.RevokeRefreshToken(h.ctx, revokedOld), "RevokeRefreshToken")
	_, err := h.b.RotateRefreshToken(h.ctx, revokedOld, uuid.New())
	wantInvalid(t, err, "jti")
	h.wantTokenStatus(bobLive, backend.TokenCreated)
}

func testRotateNewExists(t *testing.T, s *suite) {
	h := s.open(t)
	old := h.insertToken("alice", "s")
	taken := h.insertToken("bob", "bob-scope")
	_, err := h.b.RotateRefreshToken(h.ctx, old, taken)
	wantErr(t, err, backend.ErrAlreadyExists)
	h.wantTokenStatus(old, backend.TokenCreated)
	if got := h.getToken(taken); got != created(taken, "bob", "bob-scope") {
		t.Errorf("existing token changed: %+v", got)
	}
	// The failed rotation wrote nothing: the old token still rotates.
	next := h.newJTI()
	_, err = h.b.RotateRefreshToken(h.ctx, old, next)
	noErr(t, err, "RotateRefreshToken after the refused one")
}

func testRotateNewEqualsOld(t *testing.T, s *suite) {
	h := s.open(t)
	old := h.insertToken("alice", "s")
	_, err := h.b.RotateRefreshToken(h.ctx, old, old)
	wantErr(t, err, backend.ErrAlreadyExists)
	h.wantList("", created(old, "alice", "s"))
}

func testRotateConcurrent(t *testing.T, s *suite) {
	h := s.open(t)
	old := h.insertToken("alice", "s")
	bobs := h.insertToken("bob", "s")
	news := make([]uuid.UUID, racers)
	for i := range news {
		news[i] = h.newJTI()
	}
	got := make([]backend.RefreshToken, racers)
	errs := race(racers, func(i int) error {
		var err error
		got[i], err = h.b.RotateRefreshToken(h.ctx, old, news[i])
		return err
	})
	w := wantOneWinner(t, errs, backend.ErrTokenReused)
	for i, jti := range news {
		if i == w {
			// The winner's new token existed, then the replays revoked it.
			h.wantTokenStatus(jti, backend.TokenRevoked)
			if got[i] != replaced(revoked(old, "alice", "s"), jti) {
				t.Errorf("winner got %+v", got[i])
			}
		} else {
			h.wantNoToken(jti)
		}
	}
	h.wantTokenStatus(old, backend.TokenRevoked)
	h.wantList("alice")
	h.wantList("bob", created(bobs, "bob", "s"))
}
