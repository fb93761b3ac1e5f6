package memory

import (
	"bytes"
	"context"
	"iter"
	"slices"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

var _ backend.RefreshTokenIterator = (*Backend)(nil)

// RefreshTokens implements backend.RefreshTokenIterator. Each page of
// Options.ListPageSize tokens (backend.WithListPageSize) is copied under the lock, which is released before the
// tokens are yielded. A subject's tokens are a sorted slice, so each page of
// them is a binary search (keyset by JTI); the whole store is listed from a
// sorted snapshot of its JTIs (16 bytes a token, instead of a full record
// each as GetUserRefreshTokens makes), each looked up again when its page is
// read, so a token deleted meanwhile is skipped and one revoked meanwhile
// shows its status at that moment.
func (b *Backend) RefreshTokens(ctx context.Context, sub string) iter.Seq2[backend.RefreshToken, error] {
	const op = "list refresh tokens"
	return func(yield func(backend.RefreshToken, error) bool) {
		if sub == "" {
			b.streamAll(ctx, op, yield)
			return
		}
		last := uuid.Nil
		pageSize := b.opts.ListPageSize
		page := make([]backend.RefreshToken, 0, pageSize)
		for {
			if err := b.begin(ctx, op); err != nil {
				yield(backend.RefreshToken{}, err)
				return
			}
			page = page[:0]
			more := false
			if si, ok := b.tokens.subjectIndex(sub, false); ok {
				toks := b.tokens.subs[si].tokens
				i, _ := slices.BinarySearchFunc(toks, last, compareJTI)
				for ; i < len(toks); i++ {
					if toks[i].jti == last || toks[i].revoked {
						continue
					}
					if len(page) == pageSize {
						more = true
						break
					}
					page = append(page, b.tokens.record(si, i))
				}
			}
			b.mu.Unlock()
			for _, t := range page {
				if !yield(t, nil) {
					return
				}
			}
			if !more {
				return
			}
			last = page[len(page)-1].JTI
		}
	}
}

func (b *Backend) streamAll(ctx context.Context, op string, yield func(backend.RefreshToken, error) bool) {
	if err := b.begin(ctx, op); err != nil {
		yield(backend.RefreshToken{}, err)
		return
	}
	jtis := make([]uuid.UUID, 0, len(b.tokens.byJTI))
	for jti := range b.tokens.byJTI {
		jtis = append(jtis, jti)
	}
	b.mu.Unlock()
	slices.SortFunc(jtis, func(x, y uuid.UUID) int { return bytes.Compare(x[:], y[:]) })
	pageSize := b.opts.ListPageSize
	page := make([]backend.RefreshToken, 0, pageSize)
	for len(jtis) > 0 {
		n := min(pageSize, len(jtis))
		if err := b.begin(ctx, op); err != nil {
			yield(backend.RefreshToken{}, err)
			return
		}
		page = page[:0]
		for _, jti := range jtis[:n] {
			if si, i, ok := b.tokens.lookup(jti); ok {
				page = append(page, b.tokens.record(si, i))
			}
		}
		b.mu.Unlock()
		jtis = jtis[n:]
		for _, t := range page {
			if !yield(t, nil) {
				return
			}
		}
	}
}
