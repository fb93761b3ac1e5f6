package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

func streamTests() []testCase {
	return []testCase{
		{"Pages", testStreamPages},
		{"Cancelled", testStreamCancelled},
	}
}

// collect drains backend.RefreshTokens; it fails the test on an error.
func collect(t *testing.T, h *harness, sub string) []backend.RefreshToken {
	t.Helper()
	var out []backend.RefreshToken
	for tok, err := range backend.RefreshTokens(h.ctx, h.b, sub) {
		if err != nil {
			t.Fatalf("RefreshTokens(%q): %v", sub, err)
		}
		out = append(out, tok)
	}
	return out
}

// streamPage is the page size the suite asks for (backend.WithListPageSize;
// a backend that ignores it is checked on one page).
const streamPage = 10

// streamFixture stores several pages of tokens: alice 53, six of them
// revoked, and bob 7.
func streamFixture(t *testing.T, h *harness) {
	t.Helper()
	for i := range 53 {
		jti := h.insertToken("alice", fmt.Sprintf("scope-%d", i%7))
		if i%10 == 0 {
			if err := h.b.RevokeRefreshToken(h.ctx, jti); err != nil {
				t.Fatalf("RevokeRefreshToken: %v", err)
			}
			h.insertToken("bob", "openid")
		}
	}
	h.insertToken("bob", "openid")
}

// testStreamPages: the listing in pages is GetUserRefreshTokens' listing;
// a caller may stop early; changes during the listing never make a token
// appear twice or one stored throughout go missing.
func testStreamPages(t *testing.T, s *suite) {
	h := s.open(t, backend.WithListPageSize(streamPage))
	if got := collect(t, h, ""); len(got) != 0 {
		t.Fatalf("empty store: RefreshTokens yields %d tokens", len(got))
	}
	streamFixture(t, h)
	for _, sub := range []string{"", "alice", "bob", "nobody"} {
		want, err := h.b.GetUserRefreshTokens(h.ctx, sub)
		if err != nil {
			t.Fatal(err)
		}
		got := collect(t, h, sub)
		if !slices.Equal(got, want) {
			t.Errorf("RefreshTokens(%q): %d tokens, GetUserRefreshTokens: %d; they differ", sub, len(got), len(want))
		}
	}
	testStreamBreak(t, h)
	testStreamChanges(t, h)
}

func testStreamBreak(t *testing.T, h *harness) {
	n := 0
	for _, err := range backend.RefreshTokens(h.ctx, h.b, "") {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == streamPage+1 {
			break
		}
	}
	// The backend still works: nothing stayed open or locked.
	jti := h.insertToken("carol", "openid")
	if got := collect(t, h, "carol"); len(got) != 1 || got[0].JTI != jti {
		t.Errorf("after a break: carol's tokens %v, want %s", got, jti)
	}
}

func testStreamCancelled(t *testing.T, s *suite) {
	h := s.open(t)
	h.insertToken("alice", "openid")
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	var errs []error
	for tok, err := range backend.RefreshTokens(ctx, h.b, "") {
		if err == nil {
			t.Errorf("cancelled context: yielded token %s", tok.JTI)
			continue
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Errorf("cancelled context: errors %v, want one wrapping context.Canceled", errs)
	}
}

// testStreamChanges: tokens inserted and revoked while the listing runs;
// every token that stays the whole time is yielded exactly once.
func testStreamChanges(t *testing.T, h *harness) {
	before, err := h.b.GetUserRefreshTokens(h.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uuid.UUID]int{}
	i := 0
	for tok, err := range backend.RefreshTokens(h.ctx, h.b, "") {
		if err != nil {
			t.Fatal(err)
		}
		seen[tok.JTI]++
		if i++; i%7 == 0 {
			h.insertToken("dave", "openid") // a JTI after every listed one
			if err := h.b.RevokeRefreshToken(h.ctx, before[len(before)-i/7].JTI); err != nil {
				t.Fatal(err)
			}
		}
	}
	for jti, n := range seen {
		if n != 1 {
			t.Errorf("token %s yielded %d times", jti, n)
		}
	}
	for _, tok := range before {
		if seen[tok.JTI] != 1 {
			t.Errorf("token %s, stored throughout, yielded %d times", tok.JTI, seen[tok.JTI])
		}
	}
}
