package backend_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

func TestGenerateUserCodeAlphabetAndLength(t *testing.T) {
	seen := map[rune]int{}
	const draws = 2000 // 16000 characters: each of 20 letters ~800 times
	for range draws {
		code, err := backend.GenerateUserCode()
		if err != nil {
			t.Fatalf("GenerateUserCode: %v", err)
		}
		if len(code) != backend.UserCodeLength {
			t.Fatalf("GenerateUserCode() = %q: %d characters, want %d", code, len(code), backend.UserCodeLength)
		}
		for _, r := range code {
			if !strings.ContainsRune(backend.UserCodeAlphabet, r) {
				t.Fatalf("GenerateUserCode() = %q: %q is not in %q", code, r, backend.UserCodeAlphabet)
			}
			seen[r]++
		}
	}
	total := draws * backend.UserCodeLength
	want := total / len(backend.UserCodeAlphabet)
	for _, r := range backend.UserCodeAlphabet {
		// Far outside any plausible fluctuation (sd ~27) of a uniform draw.
		if n := seen[r]; n < want/2 || n > want*3/2 {
			t.Errorf("letter %q drawn %d times in %d, want about %d", r, n, total, want)
		}
	}
}

func TestGenerateUserCodeNotConstant(t *testing.T) {
	codes := map[string]bool{}
	for range 50 {
		c, err := backend.GenerateUserCode()
		if err != nil {
			t.Fatal(err)
		}
		codes[c] = true
	}
	if len(codes) < 45 {
		t.Errorf("50 user codes gave only %d distinct ones", len(codes))
	}
}

func TestNormalizeUserCode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"BCDFGHJK", "BCDFGHJK"},
		{"bcdf-ghjk", "BCDFGHJK"},
		{"bcdfghjk", "BCDFGHJK"},
		{" BcDf GhJk ", "BCDFGHJK"},
		{"b-c-d-f-g-h-j-k", "BCDFGHJK"},
		{"--  --", ""},
		{"", ""},
		{"bcdf_ghjk", "BCDF_GHJK"}, // only spaces and '-' are removed
		{"bcdf\tghjk", "BCDF\tGHJK"},
	} {
		if got := backend.NormalizeUserCode(tc.in); got != tc.want {
			t.Errorf("NormalizeUserCode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGenerateCode(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		code, err := backend.GenerateCode()
		if err != nil {
			t.Fatalf("GenerateCode: %v", err)
		}
		if len(code) != 43 {
			t.Fatalf("GenerateCode() = %q: length %d, want 43", code, len(code))
		}
		raw, err := base64.RawURLEncoding.DecodeString(code)
		if err != nil {
			t.Fatalf("GenerateCode() = %q: not base64url without padding: %v", code, err)
		}
		if len(raw) != backend.CodeBytes {
			t.Fatalf("GenerateCode() = %q decodes to %d bytes, want %d", code, len(raw), backend.CodeBytes)
		}
		if seen[code] {
			t.Fatalf("GenerateCode() repeated %q", code)
		}
		seen[code] = true
	}
}

func TestHashCode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	} {
		if got := backend.HashCode(tc.in); got != tc.want {
			t.Errorf("HashCode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLowestUUIDv7(t *testing.T) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	low := backend.LowestUUIDv7(at)
	if low.Version() != 7 || low.Variant() != uuid.RFC4122 || !backend.IsUUIDv7(low) {
		t.Fatalf("LowestUUIDv7 = %s: version %d variant %v, want a UUIDv7", low, low.Version(), low.Variant())
	}
	if got := backend.UUIDv7Time(low); !got.Equal(at) {
		t.Errorf("UUIDv7Time(LowestUUIDv7(%s)) = %s", at, got)
	}
	// Every random bit is zero: the 32-hex form ends in 12 zeros after the variant nibble.
	if h := backend.HexJTI(low); h[12:13] != "7" || h[16:] != "8000000000000000" || h[13:16] != "000" {
		t.Errorf("LowestUUIDv7 hex = %s, want version 7, variant 8, random bits zero", h)
	}
	if got := backend.LowestUUIDv7(time.Unix(-10, 0)); backend.UUIDv7Time(got).UnixMilli() != 0 {
		t.Errorf("LowestUUIDv7(before epoch) has time %s, want the epoch", backend.UUIDv7Time(got))
	}
}

// TestLowestUUIDv7Ordering compares real uuid.NewV7 values with the lowest
// UUIDv7 of times at, after and before their millisecond.
func TestLowestUUIDv7Ordering(t *testing.T) {
	for range 200 {
		id, err := uuid.NewV7()
		if err != nil {
			t.Fatal(err)
		}
		made := backend.UUIDv7Time(id)
		for _, tc := range []struct {
			name  string
			bound time.Time
			above bool // id >= LowestUUIDv7(bound)
		}{
			{"made at the bound", made, true},
			{"made after the bound", made.Add(-time.Millisecond), true},
			{"made long after the bound", made.Add(-30 * 24 * time.Hour), true},
			{"made before the bound", made.Add(time.Millisecond), false},
			{"made long before the bound", made.Add(365 * 24 * time.Hour), false},
		} {
			low := backend.LowestUUIDv7(tc.bound)
			c := bytes.Compare(id[:], low[:])
			hc := strings.Compare(backend.HexJTI(id), backend.HexJTI(low))
			if tc.above != (c >= 0) || tc.above != (hc >= 0) {
				t.Fatalf("%s: %s vs LowestUUIDv7 %s: bytes %d, hex %d; want >= %v",
					tc.name, id, low, c, hc, tc.above)
			}
		}
	}
}

func TestUUIDv7TimeRoundTrip(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	id, err := backend.NewUUIDv7()
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if !backend.IsUUIDv7(id) {
		t.Fatalf("NewUUIDv7() = %s is not a UUIDv7", id)
	}
	if got := backend.UUIDv7Time(id); got.Before(before) || got.After(after) || got.Location() != time.UTC {
		t.Errorf("UUIDv7Time(NewUUIDv7()) = %s, want UTC within [%s, %s]", got, before, after)
	}
	for _, at := range []time.Time{
		time.Date(2026, 3, 1, 12, 30, 45, 123_000_000, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 1_000_000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
	} {
		if got := backend.UUIDv7Time(backend.LowestUUIDv7(at)); !got.Equal(at) {
			t.Errorf("UUIDv7Time(LowestUUIDv7(%s)) = %s", at, got)
		}
	}
}

func TestIsUUIDv7(t *testing.T) {
	if backend.IsUUIDv7(uuid.Nil) {
		t.Error("IsUUIDv7(Nil) = true")
	}
	if backend.IsUUIDv7(uuid.New()) {
		t.Error("IsUUIDv7(a v4) = true")
	}
}

func TestParseStoredUUID(t *testing.T) {
	id := uuid.MustParse("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")
	for _, in := range []string{
		"0190a1b2c3d47e5f8a6b7c8d9e0f1a2b",
		"0190A1B2C3D47E5F8A6B7C8D9E0F1A2B",
		"0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b",
		"0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B",
	} {
		got, err := backend.ParseStoredUUID(in)
		if err != nil || got != id {
			t.Errorf("ParseStoredUUID(%q) = %s, %v; want %s", in, got, err, id)
		}
	}
	for _, in := range []string{
		"",
		"0190a1b2c3d47e5f8a6b7c8d9e0f1a2",   // 31
		"0190a1b2c3d47e5f8a6b7c8d9e0f1a2bc", // 33
		"0190a1b2c3d47e5f8a6b7c8d9e0f1a2g",
		"0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2g",
		"0190a1b2xc3d4-7e5f-8a6b-7c8d9e0f1a2b",
		"{0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b}",
		"urn:uuid:0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b",
	} {
		if got, err := backend.ParseStoredUUID(in); err == nil {
			t.Errorf("ParseStoredUUID(%q) = %s, want an error", in, got)
		}
	}
	if got := backend.HexJTI(id); got != "0190a1b2c3d47e5f8a6b7c8d9e0f1a2b" {
		t.Errorf("HexJTI = %q", got)
	}
}
