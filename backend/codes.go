package backend

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

const (
	// UserCodeAlphabet is the alphabet of user codes (no vowels, no look-alikes).
	UserCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	// UserCodeLength is the number of characters of a user code.
	UserCodeLength = 8
	// MaxUserCodeAttempts is how many user codes InsertDeviceFlow tries in all
	// before ErrCodeCollision.
	MaxUserCodeAttempts = 5
	// CodeBytes is the number of random bytes in a device or authorization code.
	CodeBytes = 32
)

// GenerateUserCode returns UserCodeLength characters drawn uniformly from
// UserCodeAlphabet with crypto/rand.
func GenerateUserCode() (string, error) {
	var buf [UserCodeLength]byte
	out := make([]byte, 0, UserCodeLength)
	n := byte(len(UserCodeAlphabet))
	// Rejection sampling: 256 - 256%20 = 240 keeps the draw uniform.
	limit := 256 - 256%int(n)
	for len(out) < UserCodeLength {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("authdb: generate user code: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < UserCodeLength {
				out = append(out, UserCodeAlphabet[b%n])
			}
		}
	}
	return string(out), nil
}

// NormalizeUserCode turns a user code as typed by a person into its stored
// form: upper-cased, spaces and '-' removed ("bcdf-ghjk" -> "BCDFGHJK").
func NormalizeUserCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.ToUpper(code))
}

// GenerateCode returns a device or authorization code: CodeBytes random bytes
// from crypto/rand, base64url without padding.
func GenerateCode() (string, error) {
	var buf [CodeBytes]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", fmt.Errorf("authdb: generate code: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(buf[:]), nil
}

// HashCode returns the lowercase sha256 hex of a plain code: the only form
// in which device and authorization codes are stored.
func HashCode(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// NewUUIDv7 returns a new UUIDv7 (random bits from crypto/rand).
func NewUUIDv7() (uuid.UUID, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, fmt.Errorf("authdb: new uuid: %w", err)
	}
	return id, nil
}

// IsUUIDv7 reports whether id is a version-7, RFC 4122-variant UUID.
func IsUUIDv7(id uuid.UUID) bool {
	return id.Version() == 7 && id.Variant() == uuid.RFC4122
}

// UUIDv7Time returns the millisecond timestamp of a UUIDv7, in UTC.
func UUIDv7Time(id uuid.UUID) time.Time {
	var b [8]byte
	copy(b[2:], id[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:]))).UTC()
}

// LowestUUIDv7 returns the lowest UUIDv7 of t's millisecond: t's 48-bit
// Unix-millisecond timestamp, version 7, variant bits set, every random bit
// zero. Every UUIDv7 made at or after t compares >= to it, bytewise and as
// hex; every one made before compares lower. Times before the Unix epoch
// give the timestamp 0.
func LowestUUIDv7(t time.Time) uuid.UUID {
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	var id uuid.UUID
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms))
	copy(id[:6], b[2:])
	id[6] = 0x70
	id[8] = 0x80
	return id
}

// HexJTI returns id as 32 lowercase hex digits without dashes, the form
// DiracX stores in CHAR(32) columns (MySQL, SQLite).
func HexJTI(id uuid.UUID) string { return hex.EncodeToString(id[:]) }

// ParseStoredUUID decodes a UUID as a database returns it: 32 hex digits
// without dashes, or the canonical dashed form (PostgreSQL), any case.
func ParseStoredUUID(s string) (uuid.UUID, error) {
	if len(s) == 32 {
		var id uuid.UUID
		if _, err := hex.Decode(id[:], []byte(s)); err != nil {
			return uuid.Nil, fmt.Errorf("authdb: stored uuid %q: %w", s, err)
		}
		return id, nil
	}
	if len(s) != 36 {
		return uuid.Nil, fmt.Errorf("authdb: stored uuid %q: want 32 hex digits or the dashed form", s)
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, fmt.Errorf("authdb: stored uuid %q: %w", s, err)
	}
	return id, nil
}
