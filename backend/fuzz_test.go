package backend_test

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// FuzzNormalizeUserCode: normalising is idempotent, leaves no space or '-',
// and finds an alphabet code however a person formats it.
func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{"", "BCDFGHJK", "bcdf-ghjk", " b c d f - g h j k ", "ß", "ǆ", "ﬀ-x", "\xff-\xfe", "--"} {
		f.Add(s, uint64(0))
	}
	f.Add("x", uint64(0xdeadbeefcafef00d))
	f.Fuzz(func(t *testing.T, typed string, seed uint64) {
		n := backend.NormalizeUserCode(typed)
		if strings.ContainsAny(n, " -") {
			t.Fatalf("NormalizeUserCode(%q) = %q contains a space or '-'", typed, n)
		}
		if again := backend.NormalizeUserCode(n); again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", typed, n, again)
		}
		// An 8-character alphabet code, lower-cased and split with '-' and
		// spaces according to seed, normalises back to itself.
		var code, formatted strings.Builder
		for i := range backend.UserCodeLength {
			c := backend.UserCodeAlphabet[(seed>>(i*5))%uint64(len(backend.UserCodeAlphabet))]
			code.WriteByte(c)
			if seed>>(40+i)&1 == 1 {
				c += 'a' - 'A'
			}
			formatted.WriteByte(c)
			switch seed >> (48 + 2*i) & 3 {
			case 1:
				formatted.WriteByte('-')
			case 2:
				formatted.WriteByte(' ')
			}
		}
		if got := backend.NormalizeUserCode(formatted.String()); got != code.String() {
			t.Fatalf("NormalizeUserCode(%q) = %q, want %q", formatted.String(), got, code.String())
		}
	})
}

// FuzzParseStoredUUID: never panics; the 32-hex and dashed forms of any UUID
// round-trip.
func FuzzParseStoredUUID(f *testing.F) {
	for _, s := range []string{
		"", "0190a1b2c3d47e5f8a6b7c8d9e0f1a2b", "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b",
		"0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B", "zz90a1b2c3d47e5f8a6b7c8d9e0f1a2b",
		"{0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2}", "urn:uuid:0190a1b2-c3d4-7e5f-8a6b-7c8",
		"0190a1b2xc3d4x7e5fx8a6bx7c8d9e0f1a2b",
	} {
		f.Add(s, []byte("0123456789abcdef"))
	}
	f.Fuzz(func(t *testing.T, s string, raw []byte) {
		if id, err := backend.ParseStoredUUID(s); err == nil {
			if again, err := backend.ParseStoredUUID(id.String()); err != nil || again != id {
				t.Fatalf("ParseStoredUUID(%q) = %s, which does not round-trip: %s, %v", s, id, again, err)
			}
		}
		var id uuid.UUID
		copy(id[:], raw)
		for _, form := range []string{backend.HexJTI(id), id.String(), strings.ToUpper(id.String())} {
			got, err := backend.ParseStoredUUID(form)
			if err != nil || got != id {
				t.Fatalf("ParseStoredUUID(%q) = %s, %v; want %s", form, got, err, id)
			}
		}
	})
}

// FuzzIDTokenRoundTrip: a map of fuzzed strings and numbers encodes, and
// decodes to what one encode/decode cycle of its JSON form gives; a second
// cycle changes nothing.
func FuzzIDTokenRoundTrip(f *testing.F) {
	f.Add("sub", "alice", "iat", 1.7e9, int64(42), true)
	f.Add("", "", "", 0.0, int64(0), false)
	f.Add("é€𝄞", "\x00\u2028<>&", "neg", -1e-300, int64(math.MinInt64), true)
	f.Add("\xff", "\xfe", "big", 1e308, int64(math.MaxInt64), false)
	f.Fuzz(func(t *testing.T, k1, v1, k2 string, num float64, i int64, flag bool) {
		in := map[string]any{
			k1:       v1,
			k2:       num,
			"int":    i,
			"flag":   flag,
			"nested": map[string]any{k1: []any{v1, num, nil}},
		}
		b, err := backend.EncodeIDToken(in)
		if math.IsNaN(num) || math.IsInf(num, 0) {
			if err == nil {
				t.Fatalf("EncodeIDToken with %v: no error", num)
			}
			return
		}
		if err != nil {
			t.Fatalf("EncodeIDToken(%#v): %v", in, err)
		}
		once, err := backend.DecodeIDToken(b)
		if err != nil {
			t.Fatalf("DecodeIDToken(%s): %v", b, err)
		}
		if once == nil {
			t.Fatalf("DecodeIDToken(%s) = nil", b)
		}
		b2, err := backend.EncodeIDToken(once)
		if err != nil {
			t.Fatalf("EncodeIDToken(decoded %#v): %v", once, err)
		}
		twice, err := backend.DecodeIDToken(b2)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(once, twice) {
			t.Fatalf("not stable after one decode:\n%#v\n%#v", once, twice)
		}
		// Valid UTF-8 strings, numbers and the flag come back exactly (json
		// replaces invalid UTF-8 with U+FFFD, so two keys may then collide).
		if k1 != k2 && k1 != "int" && k1 != "flag" && k1 != "nested" && utf8.ValidString(k1) && utf8.ValidString(k2) && utf8.ValidString(v1) {
			if once[k1] != v1 {
				t.Fatalf("%q: got %#v, want %q", k1, once[k1], v1)
			}
		}
		if once["flag"] != flag {
			t.Fatalf("flag: got %#v, want %v", once["flag"], flag)
		}
		if k2 != "int" && k2 != "flag" && k2 != "nested" && k1 != k2 && utf8.ValidString(k1) && utf8.ValidString(k2) && once[k2] != num {
			t.Fatalf("%q: got %#v, want %v", k2, once[k2], num)
		}
	})
}
