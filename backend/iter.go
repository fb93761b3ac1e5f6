package backend

import (
	"context"
	"iter"
)

// RefreshTokenIterator is implemented by backends that can stream a listing
// of refresh tokens instead of returning it whole (the SQL and memory
// backends do). Use it through RefreshTokens, which falls back to
// GetUserRefreshTokens for backends without it.
type RefreshTokenIterator interface {
	// RefreshTokens yields what GetUserRefreshTokens(ctx, sub) returns, in
	// the same order (by JTI), without holding the whole listing: a
	// subject's tokens that are not revoked, or, with sub == "", every token
	// of every subject, revoked ones included.
	//
	// It reads in pages (keyset pagination by JTI), each page its own short
	// statement, never one long transaction, so it is not a snapshot: a
	// token present and matching for the whole iteration is yielded exactly
	// once, and one inserted, revoked or deleted meanwhile may or may not
	// be. No JTI is yielded twice. An error (a cancelled context, a lost
	// connection) is yielded once, with a zero RefreshToken, and ends the
	// sequence. The caller may stop early (break); nothing stays open.
	RefreshTokens(ctx context.Context, sub string) iter.Seq2[RefreshToken, error]
}

// RefreshTokens streams b's listing of sub's refresh tokens (see
// RefreshTokenIterator): through b's RefreshTokenIterator when it has one,
// else from one GetUserRefreshTokens call, whose error is yielded once.
//
//	for tok, err := range backend.RefreshTokens(ctx, store, "alice") {
//		if err != nil {
//			return err
//		}
//		fmt.Println(tok.JTI, tok.Status)
//	}
func RefreshTokens(ctx context.Context, b Backend, sub string) iter.Seq2[RefreshToken, error] {
	if it, ok := b.(RefreshTokenIterator); ok {
		return it.RefreshTokens(ctx, sub)
	}
	return func(yield func(RefreshToken, error) bool) {
		toks, err := b.GetUserRefreshTokens(ctx, sub)
		if err != nil {
			yield(RefreshToken{}, err)
			return
		}
		for _, t := range toks {
			if !yield(t, nil) {
				return
			}
		}
	}
}
