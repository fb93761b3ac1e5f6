package sqlbackend

import (
	"context"
	"iter"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

var _ backend.RefreshTokenIterator = (*Backend)(nil)

// RefreshTokens implements backend.RefreshTokenIterator: pages of
// Options.ListPageSize rows (backend.WithListPageSize, default 1,000), each one autocommit SELECT ... WHERE "JTI" > last ORDER
// BY "JTI" LIMIT n (the primary key's range for the whole table; for a
// subject, index_status_sub), read whole and the rows closed before the
// tokens are yielded, so no connection or transaction stays open while the
// caller works. A page that fails on a lost connection is read again.
func (b *Backend) RefreshTokens(ctx context.Context, sub string) iter.Seq2[backend.RefreshToken, error] {
	const op = "list refresh tokens"
	return func(yield func(backend.RefreshToken, error) bool) {
		if err := start(ctx, op); err != nil {
			yield(backend.RefreshToken{}, err)
			return
		}
		query, args := b.pageQuery(sub == "")
		if sub != "" {
			if backend.CheckString("sub", sub, backend.MaxSubLen, true) != nil {
				return // no token has such a subject
			}
			args = b.subArgs(sub)
		}
		size := b.opts.ListPageSize
		page := make([]backend.RefreshToken, 0, size)
		last := uuid.Nil
		for {
			err := b.retry(ctx, func() error {
				var err error
				page, err = b.queryTokens(ctx, b.db, op, query, append(args, b.idArg(last), size), page[:0])
				return err
			})
			if err != nil {
				yield(backend.RefreshToken{}, err)
				return
			}
			for _, t := range page {
				if !yield(t, nil) {
					return
				}
			}
			if len(page) < size {
				return
			}
			last = page[len(page)-1].JTI
		}
	}
}

// pageQuery is the statement of one page: every token (all) or a subject's
// live ones, after a JTI, at most a number of rows. Arguments: the
// subject's (subArgs) unless all, then the last JTI and the limit.
func (b *Backend) pageQuery(all bool) (string, []any) {
	q := `SELECT ` + tokenCols + ` FROM "RefreshTokens" WHERE `
	if !all {
		q += `"Status"='CREATED' AND "Sub"=? AND `
		if b.dialect == dialect.MySQL {
			q += `CAST("Sub" AS BINARY)=CAST(? AS BINARY) AND ` // as listTokens
		}
	}
	if b.dialect == dialect.Postgres {
		q += `"JTI">CAST(? AS uuid) ORDER BY "JTI" LIMIT ?`
	} else {
		q += `"JTI">? ORDER BY "JTI" LIMIT ?`
	}
	return sqldialect.Rewrite(b.dialect, q), nil
}
