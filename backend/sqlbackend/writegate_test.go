//go:build cgo

package sqlbackend_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
)

// A writer waiting for the process's other SQLite writers (the write gate)
// gives up when its context ends, before anything was sent: the caller
// learns it failed (the context's error, not ErrOutcomeUnknown) and nothing
// was written. The gate then lets the next writer through.
func TestWriteGateWaitEndsWithContext(t *testing.T) {
	b := open(t, newURL(t, engines[0]))
	release, ok := sqlbackend.HoldWriteGate(b)
	if !ok {
		t.Fatal("a SQLite file backend has no write gate")
	}
	jti := uuid.Must(uuid.NewV7())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := b.InsertRefreshToken(ctx, jti, "sub", "openid")
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backend.ErrOutcomeUnknown) {
		t.Fatalf("insert while the gate is held: %v, want the context's deadline (not an unknown outcome)", err)
	}
	if !strings.Contains(err.Error(), "insert refresh token") {
		t.Errorf("the error %q does not name the operation", err)
	}
	release()
	bg := context.Background()
	if _, err := b.GetRefreshToken(bg, jti); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("the token of the call that gave up: %v, want ErrNotFound", err)
	}
	if err := b.InsertRefreshToken(bg, jti, "sub", "openid"); err != nil {
		t.Fatalf("insert after the gate was released: %v", err)
	}
}

// Many goroutines writing through the gate at once, two per token: each
// token is rotated exactly once, the other call is told it was reused, and
// no call fails otherwise (none waits out its busy budget).
func TestWriteGateConcurrentWriters(t *testing.T) {
	b := open(t, newURL(t, engines[0]))
	ctx := context.Background()
	const n = 64
	olds := make([]uuid.UUID, n)
	for i := range olds {
		olds[i] = uuid.Must(uuid.NewV7())
		// One subject each: a replay revokes its subject's tokens.
		if err := b.InsertRefreshToken(ctx, olds[i], fmt.Sprint("sub", i), "openid"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wins := make([]int, n)
	var mu sync.Mutex
	for g := range 2 * n {
		wg.Go(func() {
			i := g % n
			_, err := b.RotateRefreshToken(ctx, olds[i], uuid.Must(uuid.NewV7()))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins[i]++
			case errors.Is(err, backend.ErrTokenReused):
			default:
				t.Errorf("rotation %d: %v", g, err)
			}
		})
	}
	wg.Wait()
	for i, w := range wins {
		if w != 1 {
			t.Errorf("token %d rotated %d times, want once", i, w)
		}
	}
}

// The backend checkpoints the write-ahead log itself (automatic
// checkpoints are off on its connections): under sustained writes the log
// stays bounded and the pages reach the database file.
func TestCheckpointBoundsWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authdb.db")
	b := open(t, "sqlite://"+path)
	ctx := context.Background()
	const writes = 12000
	var maxWAL int64
	for i := range writes {
		if err := b.InsertRefreshToken(ctx, uuid.Must(uuid.NewV7()), "sub", "openid"); err != nil {
			t.Fatal(err)
		}
		if i%250 == 0 {
			if st, err := os.Stat(path + "-wal"); err == nil {
				maxWAL = max(maxWAL, st.Size())
			}
		}
	}
	// Each insert adds a few pages of 4 KiB to the log (the table and its
	// indexes): unchecked, 12000 of them make a log of about 260 MB.
	const bound = 128 << 20
	if maxWAL > bound {
		t.Errorf("the log reached %d bytes, want at most %d", maxWAL, bound)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < 1<<20 {
		t.Errorf("the database file holds %d bytes after %d inserts: the log was not checkpointed into it", st.Size(), writes)
	}
	t.Logf("largest log seen: %d bytes; database file: %d bytes", maxWAL, st.Size())
}

// A backend on a pool the caller opened (OpenDB) has no gate: the pool's
// settings, automatic checkpoints included, are the caller's.
func TestOpenDBHasNoWriteGate(t *testing.T) {
	name, dsn, err := sqlbackend.DSN(newURL(t, engines[0]))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open(name, dsn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sqlbackend.OpenDB(context.Background(), db, name)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := sqlbackend.HoldWriteGate(b); ok {
		t.Fatal("OpenDB made a write gate")
	}
	if err := b.InsertRefreshToken(context.Background(), uuid.Must(uuid.NewV7()), "sub", "openid"); err != nil {
		t.Fatal(err)
	}
}

// Backends of one process on one SQLite file share its write gate, whatever
// path reaches the file (here a symbolic link): a writer of one
// waits for the other's in Go, not in SQLite's busy handler. A backend on
// another file does not wait. The gate outlives the first backend's Close.
func TestWriteGateSharedByFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shared.db")
	b1 := open(t, "sqlite://"+file)
	if err := os.Symlink(file, filepath.Join(dir, "link.db")); err != nil {
		t.Fatal(err)
	}
	b2 := open(t, "sqlite://"+filepath.Join(dir, "link.db"))
	other := open(t, "sqlite://"+filepath.Join(dir, "other.db"))
	release, ok := sqlbackend.HoldWriteGate(b1)
	if !ok {
		t.Fatal("a SQLite file backend has no write gate")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := b2.InsertRefreshToken(ctx, uuid.Must(uuid.NewV7()), "sub", "openid")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for this process's other SQLite writers") {
		t.Fatalf("insert through a second backend on the file while the first holds the gate: %v, want a wait for the gate ended by the context", err)
	}
	bg := context.Background()
	if err := other.InsertRefreshToken(bg, uuid.Must(uuid.NewV7()), "sub", "openid"); err != nil {
		t.Fatalf("insert into another file while the gate is held: %v", err)
	}
	release()
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	release, _ = sqlbackend.HoldWriteGate(b2)
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	b3 := open(t, "sqlite://"+file)
	if err := b3.InsertRefreshToken(ctx, uuid.Must(uuid.NewV7()), "sub", "openid"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("insert through a backend opened after the first closed, while the second holds the gate: %v, want the gate's wait", err)
	}
	release()
	if err := b3.InsertRefreshToken(bg, uuid.Must(uuid.NewV7()), "sub", "openid"); err != nil {
		t.Fatalf("insert after the gate was released: %v", err)
	}
}
