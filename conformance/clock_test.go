package conformance

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
)

func TestUUIDv7At(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2025, 6, 15, 10, 20, 30, 750_123_456, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999_000_000, time.FixedZone("X", -7200)),
		time.UnixMilli(0),
	} {
		seen := map[string]bool{}
		for range 100 {
			id := UUIDv7At(at)
			if !backend.IsUUIDv7(id) {
				t.Fatalf("UUIDv7At(%v) = %s, not a UUIDv7", at, id)
			}
			if got := backend.UUIDv7Time(id); !got.Equal(at.Truncate(time.Millisecond)) {
				t.Errorf("timestamp of %s = %v, want %v", id, got, at.Truncate(time.Millisecond))
			}
			lo, hi := backend.LowestUUIDv7(at), backend.LowestUUIDv7(at.Add(time.Millisecond))
			if bytes.Compare(id[:], lo[:]) < 0 || bytes.Compare(id[:], hi[:]) >= 0 {
				t.Errorf("%s outside [%s, %s)", id, lo, hi)
			}
			if seen[id.String()] {
				t.Errorf("%s made twice", id)
			}
			seen[id.String()] = true
		}
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(start)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				c.Advance(time.Second)
				_ = c.Now()
			}
		}()
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(800*time.Second); !got.Equal(want) {
		t.Errorf("after 800 concurrent Advance(1s): %v, want %v", got, want)
	}
	c.Set(start)
	c.Advance(-time.Hour)
	if got := c.Now(); !got.Equal(start.Add(-time.Hour)) {
		t.Errorf("Set then Advance(-1h) = %v", got)
	}
}
