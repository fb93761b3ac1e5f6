package reliability

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
)

// fuzzBackends are the backends FuzzStoredVerbatim compares: memory and a
// private SQLite database, opened once per fuzzing process.
var fuzzBackends = sync.OnceValues(func() ([]backend.Backend, error) {
	var out []backend.Backend
	for _, u := range []string{"memory://", "sqlite://:memory:"} {
		b, err := authdb.Open(context.Background(), u, backend.WithClock(func() time.Time { return start }))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
})

// FuzzStoredVerbatim sends fuzzed strings as subject, scope and client ID
// to the memory and SQLite backends: each call either stores the values
// and reads them back byte for byte (and finds the token by its subject,
// exactly), or refuses them with ErrInvalidInput on both backends, exactly
// when the backend package's validation says they are invalid.
func FuzzStoredVerbatim(f *testing.F) {
	for _, s := range []string{
		"alice", "", "'; DROP TABLE \"RefreshTokens\";--", "%", "_", `\`, "a\x00b", "\xff\xfe",
		"é数🔑", "\u2028", " trailing ", "NULL", "$1", "?", "e\u0301",
	} {
		f.Add(s, s+" scope")
	}
	f.Add(hostileOf(backend.MaxSubLen), hostileOf(backend.MaxScopeLen))
	f.Add(hostileOf(backend.MaxSubLen+1), hostileOf(backend.MaxScopeLen+1))
	f.Add(hostileOf(backend.MaxClientIDLen), "")
	f.Fuzz(func(t *testing.T, sub, scope string) {
		bs, err := fuzzBackends()
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		wantErr := backend.CheckRefreshToken(conformance.UUIDv7At(start), sub, scope) != nil
		for _, b := range bs {
			jti := conformance.UUIDv7At(start)
			err := b.InsertRefreshToken(ctx, jti, sub, scope)
			if wantErr {
				if !errors.Is(err, backend.ErrInvalidInput) {
					t.Fatalf("%T: InsertRefreshToken(%q, %q) = %v, want ErrInvalidInput", b, sub, scope, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%T: InsertRefreshToken(%q, %q): %v", b, sub, scope, err)
			}
			got, err := b.GetRefreshToken(ctx, jti)
			if err != nil || got.Sub != sub || got.Scope != scope {
				t.Fatalf("%T: stored (%q, %q), read back %+v, %v", b, sub, scope, got, err)
			}
			toks, err := b.GetUserRefreshTokens(ctx, sub)
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range toks {
				if tok.Sub != sub {
					t.Fatalf("%T: GetUserRefreshTokens(%q) returned a token of %q", b, sub, tok.Sub)
				}
			}
			if n, err := b.RevokeUserRefreshTokens(ctx, sub); err != nil || n != int64(len(toks)) || n < 1 {
				t.Fatalf("%T: RevokeUserRefreshTokens(%q) = %d, %v; listed %d", b, sub, n, err, len(toks))
			}

			wantFlowErr := backend.CheckDeviceFlow(sub, scope) != nil
			_, dc, err := b.InsertDeviceFlow(ctx, sub, scope)
			if wantFlowErr {
				if !errors.Is(err, backend.ErrInvalidInput) {
					t.Fatalf("%T: InsertDeviceFlow(%q, %q) = %v, want ErrInvalidInput", b, sub, scope, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%T: InsertDeviceFlow(%q, %q): %v", b, sub, scope, err)
			}
			fl, err := b.GetDeviceFlow(ctx, dc)
			if err != nil || fl.ClientID != sub || fl.Scope != scope {
				t.Fatalf("%T: device flow stored (%q, %q), read back %+v, %v", b, sub, scope, fl, err)
			}
		}
	})
}
