package conformance

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// Clock is a settable clock for tests: pass its Now method to
// backend.WithClock and move time with Advance or Set instead of sleeping.
// It is safe for concurrent use. The zero value reads as the zero time; use
// NewClock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads start until it is moved.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's current time. It has the signature
// backend.WithClock expects.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t, forward or backward.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// UUIDv7At returns a UUIDv7 whose timestamp is t's millisecond and whose
// other bits are random (crypto/rand), with the version and RFC 4122 variant
// bits set. It lets tests make refresh-token JTIs "created" at any time, for
// example to exercise CleanExpiredRefreshTokens. It panics only if the system
// random source fails.
func UUIDv7At(t time.Time) uuid.UUID {
	id := backend.LowestUUIDv7(t)
	var r [10]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic("conformance: crypto/rand: " + err.Error())
	}
	id[6] = 0x70 | r[0]&0x0f
	id[7] = r[1]
	id[8] = 0x80 | r[2]&0x3f
	copy(id[9:], r[3:])
	return id
}
