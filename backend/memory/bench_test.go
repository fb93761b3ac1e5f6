package memory_test

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
)

const benchValidity = time.Hour

var benchBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchJTI returns the i-th of a sequence of distinct, increasing UUIDv7s
// made at benchBase+i ms: no randomness, so big stores build fast.
func benchJTI(i int) uuid.UUID {
	id := backend.LowestUUIDv7(benchBase.Add(time.Duration(i) * time.Millisecond))
	binary.BigEndian.PutUint32(id[12:], uint32(i))
	return id
}

func benchIDToken() map[string]any {
	return map[string]any{"sub": "b824d4dc-1f9d-4ee8-8df5-c0ae55d46041", "iss": "https://idp.example.org",
		"iat": 1718446830, "groups": []string{"dirac_user", "lhcb_prod"}}
}

func newBench(b *testing.B) *memory.Backend {
	b.Helper()
	m := memory.New(backend.WithClock(func() time.Time { return benchBase }))
	b.Cleanup(func() { m.Close() })
	return m
}

func deviceFlows(b *testing.B, m *memory.Backend, n int, ready bool) (userCodes, deviceCodes []string) {
	b.Helper()
	ctx := context.Background()
	for range n {
		uc, dc, err := m.InsertDeviceFlow(ctx, "client", "openid profile")
		if err != nil {
			b.Fatal(err)
		}
		if ready {
			if err := m.DeviceFlowInsertIDToken(ctx, uc, benchIDToken(), benchValidity); err != nil {
				b.Fatal(err)
			}
		}
		userCodes, deviceCodes = append(userCodes, uc), append(deviceCodes, dc)
	}
	return userCodes, deviceCodes
}

func authFlows(b *testing.B, m *memory.Backend, n int, ready bool) (ids, codes []string) {
	b.Helper()
	ctx := context.Background()
	for range n {
		id, err := m.InsertAuthorizationFlow(ctx, "client", "openid", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256", "https://app.example/cb")
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
		if ready {
			code, _, err := m.AuthorizationFlowInsertIDToken(ctx, id, benchIDToken(), benchValidity)
			if err != nil {
				b.Fatal(err)
			}
			codes = append(codes, code)
		}
	}
	return ids, codes
}

// benchSubject names subject i.
func benchSubject(i int) string { return "user-" + strconv.Itoa(i) }

// fillTokens fills m with n tokens, perSub per subject (subjects
// benchSubject(0) to benchSubject(n/perSub-1)), inserted in JTI order
// round-robin over the subjects.
func fillTokens(m *memory.Backend, n, perSub int) error {
	ctx := context.Background()
	subs := make([]string, n/perSub)
	for i := range subs {
		subs[i] = benchSubject(i)
	}
	for i := range n {
		if err := m.InsertRefreshToken(ctx, benchJTI(i), subs[i%len(subs)], "openid offline_access"); err != nil {
			return err
		}
	}
	return nil
}

// tokenStore fills m with n tokens, perSub per subject, and returns the subjects.
func tokenStore(b *testing.B, m *memory.Backend, n, perSub int) []string {
	b.Helper()
	if err := fillTokens(m, n, perSub); err != nil {
		b.Fatal(err)
	}
	subs := make([]string, n/perSub)
	for i := range subs {
		subs[i] = benchSubject(i)
	}
	return subs
}

func BenchmarkInsertDeviceFlow(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.InsertDeviceFlow(ctx, "client", "openid profile"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeviceFlowValidateUserCode(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	ucs, _ := deviceFlows(b, m, 1000, false)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := m.DeviceFlowValidateUserCode(ctx, ucs[i%len(ucs)], benchValidity); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeviceFlowInsertIDToken(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	ucs, _ := deviceFlows(b, m, b.N, false)
	tok := benchIDToken()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := m.DeviceFlowInsertIDToken(ctx, ucs[i], tok, benchValidity); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetDeviceFlow(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	_, dcs := deviceFlows(b, m, 1000, true)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := m.GetDeviceFlow(ctx, dcs[i%len(dcs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateDeviceFlowStatus(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	_, dcs := deviceFlows(b, m, 1000, false)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := m.UpdateDeviceFlowStatus(ctx, dcs[i%len(dcs)], backend.StatusError); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsumeDeviceFlow(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	_, dcs := deviceFlows(b, m, b.N, true)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := m.ConsumeDeviceFlow(ctx, dcs[i], benchValidity); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInsertAuthorizationFlow(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.InsertAuthorizationFlow(ctx, "client", "openid", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256", "https://app.example/cb"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthorizationFlowInsertIDToken(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	ids, _ := authFlows(b, m, b.N, false)
	tok := benchIDToken()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := m.AuthorizationFlowInsertIDToken(ctx, ids[i], tok, benchValidity); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetAuthorizationFlow(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	_, codes := authFlows(b, m, 1000, true)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := m.GetAuthorizationFlow(ctx, codes[i%len(codes)], benchValidity); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateAuthorizationFlowStatus(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	_, codes := authFlows(b, m, 1000, true)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := m.UpdateAuthorizationFlowStatus(ctx, codes[i%len(codes)], backend.StatusReady); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsumeAuthorizationFlow(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	_, codes := authFlows(b, m, b.N, true)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := m.ConsumeAuthorizationFlow(ctx, codes[i], benchValidity); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInsertRefreshToken(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	subs := make([]string, 1000)
	for i := range subs {
		subs[i] = benchSubject(i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := m.InsertRefreshToken(ctx, benchJTI(i), subs[i%len(subs)], "openid"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetRefreshToken(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	tokenStore(b, m, 1000, 10)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := m.GetRefreshToken(ctx, benchJTI(i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

// bigStore is the 1,000,000-token store, built once per process (about a
// second) by inserting through the API.
var bigStore = sync.OnceValues(func() (*memory.Backend, error) {
	m := memory.New(backend.WithClock(func() time.Time { return benchBase }))
	return m, fillTokens(m, 1_000_000, 10)
})

// BenchmarkGetUserRefreshTokens lists one subject's 10 tokens from a store
// of 1,000, 100,000 and 1,000,000 tokens (10 per subject), visiting the
// subjects in a scattered order: the work depends on the subject's tokens,
// not on the store's size (goal: store=1M within 2x of store=1k; what
// remains between them is cache and TLB misses, as the 1k store stays in
// L1/L2 while the bigger ones do not, which is why 100k and 1M are close). The subject
// name is written into a small reused buffer, as a server has it fresh
// from the request, so the harness adds no cache miss of its own.
func BenchmarkGetUserRefreshTokens(b *testing.B) {
	for _, bc := range []struct {
		name  string
		store func(b *testing.B) (*memory.Backend, error)
		subs  int
	}{
		{"store=1k", func(b *testing.B) (*memory.Backend, error) {
			m := newBench(b)
			return m, fillTokens(m, 1000, 10)
		}, 100},
		{"store=100k", func(b *testing.B) (*memory.Backend, error) {
			m := newBench(b)
			return m, fillTokens(m, 100_000, 10)
		}, 10_000},
		{"store=1M", func(*testing.B) (*memory.Backend, error) { return bigStore() }, 100_000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m, err := bc.store(b)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var buf [32]byte
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				// A stride prime to the number of subjects visits them all,
				// far apart in insertion order.
				name := strconv.AppendInt(append(buf[:0], "user-"...), int64((i*7919)%bc.subs), 10)
				// The backend only reads sub during the call.
				sub := unsafe.String(&name[0], len(name))
				toks, err := m.GetUserRefreshTokens(ctx, sub)
				if err != nil || len(toks) != 10 {
					b.Fatalf("GetUserRefreshTokens(%q): %d tokens, %v", sub, len(toks), err)
				}
			}
		})
	}
}

// BenchmarkGetUserRefreshTokensAll is the administrator's listing of a
// 1,000-token store.
func BenchmarkGetUserRefreshTokensAll(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	tokenStore(b, m, 1000, 10)
	b.ReportAllocs()
	for b.Loop() {
		if toks, err := m.GetUserRefreshTokens(ctx, ""); err != nil || len(toks) != 1000 {
			b.Fatal(len(toks), err)
		}
	}
}

func BenchmarkRevokeRefreshToken(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	tokenStore(b, m, 1000, 10)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := m.RevokeRefreshToken(ctx, benchJTI(i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRevokeUserRefreshTokens(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	subs := tokenStore(b, m, 1000, 10)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := m.RevokeUserRefreshTokens(ctx, subs[i%len(subs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRotateRefreshToken rotates a chain: each new token is the next
// one's old.
func BenchmarkRotateRefreshToken(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	tokenStore(b, m, 1000, 10)
	old := benchJTI(999)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		next := benchJTI(1000 + i)
		if _, err := m.RotateRefreshToken(ctx, old, next); err != nil {
			b.Fatal(err)
		}
		old = next
	}
}

// The clean-up benchmarks scan a store of 1,000 live rows and delete none:
// the steady cost of a periodic clean-up.
func BenchmarkCleanExpiredDeviceFlows(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	deviceFlows(b, m, 1000, false)
	b.ReportAllocs()
	for b.Loop() {
		if n, err := m.CleanExpiredDeviceFlows(ctx, benchValidity); err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkCleanExpiredAuthorizationFlows(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	authFlows(b, m, 1000, false)
	b.ReportAllocs()
	for b.Loop() {
		if n, err := m.CleanExpiredAuthorizationFlows(ctx, benchValidity); err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkCleanExpiredRefreshTokens(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	tokenStore(b, m, 1000, 10)
	b.ReportAllocs()
	for b.Loop() {
		if n, err := m.CleanExpiredRefreshTokens(ctx, benchValidity); err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkPing(b *testing.B) {
	m, ctx := newBench(b), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
