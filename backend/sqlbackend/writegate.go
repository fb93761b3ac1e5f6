package sqlbackend

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
)

// writeGate queues a SQLite backend's writers in Go, one at a time.
//
// SQLite lets one connection write at a time. Without the gate, every
// pool connection that finds the write lock taken sleeps in SQLite's busy
// handler (1, 2, 5, 10, 15 ms...), not woken when the lock frees: under
// many concurrent writers the lock sits idle while they sleep, and the
// unlucky ones wait tens of milliseconds (the 64-goroutine figures of
// docs/scale.md). Through the gate, the backend's own writers wait on a
// channel and the next one starts as soon as the previous one is done:
// first come, first served, no busy sleeps. The backends this process
// opened on one file share its gate (shareWriteGate). Another process
// still meets the write lock and waits for it in SQLite's busy handler
// and the busy budget, as before.
//
// A nil gate (PostgreSQL, MySQL) lets everyone through. enter waits for
// the gate or for ctx, whichever comes first; when ctx ends first nothing
// was sent to the database, and the error wraps ctx's. The gate is held
// for one attempt of a write (a statement, or a transaction and what its
// outcome leads to, such as a replay's revocation), never across the
// retry loop's back-off.
type writeGate chan struct{}

// The write gates of the SQLite files this process has open, by file,
// with the number of backends using each.
var writeGates = struct {
	sync.Mutex
	m map[string]*sharedGate
}{m: map[string]*sharedGate{}}

type sharedGate struct {
	g    writeGate
	refs int
}

// shareWriteGate returns the write gate of SQLite file path, made for the
// first backend that opens it and shared by the others of this process,
// and the function that gives it back (Close). A file is known by its
// absolute path with symbolic links resolved; one reached through a hard
// link under another name gets a gate of its own (and its writers then
// meet SQLite's lock, as another process's do).
func shareWriteGate(path string) (writeGate, func()) {
	key := gateKey(path)
	writeGates.Lock()
	defer writeGates.Unlock()
	s := writeGates.m[key]
	if s == nil {
		s = &sharedGate{g: make(writeGate, 1)}
		writeGates.m[key] = s
	}
	s.refs++
	var once sync.Once
	return s.g, func() {
		once.Do(func() {
			writeGates.Lock()
			defer writeGates.Unlock()
			if s.refs--; s.refs == 0 {
				delete(writeGates.m, key)
			}
		})
	}
}

// gateKey is path made absolute, its symbolic links resolved when it
// exists.
func gateKey(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	return path
}

// enter waits for the gate; release it with the function returned. The
// error of a wait the context ended wraps the context's error.
func (g writeGate) enter(ctx context.Context) (release func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	select {
	case g <- struct{}{}:
		return g.leave, nil
	default:
	}
	select {
	case g <- struct{}{}:
		return g.leave, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for this process's other SQLite writers: %w", ctx.Err())
	}
}

func (g writeGate) leave() { <-g }

// retryWrite is b.retry for operation op, which writes: each attempt runs
// inside the backend's write gate (SQLite; a no-op elsewhere).
func (b *Backend) retryWrite(ctx context.Context, op string, fn func() error) error {
	return b.retry(ctx, b.gated(ctx, op, fn))
}

// gated returns fn run inside the write gate. A wait the context ended is
// an error naming op, wrapping the context's error; nothing was sent.
func (b *Backend) gated(ctx context.Context, op string, fn func() error) func() error {
	if b.gate == nil {
		return fn
	}
	return func() error {
		release, err := b.gate.enter(ctx)
		if err != nil {
			return fmt.Errorf("authdb: %s: %w", op, err)
		}
		defer release()
		defer b.ckpt.wrote()
		return fn()
	}
}
