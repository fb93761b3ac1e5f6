package memory_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
)

func TestOpenURL(t *testing.T) {
	ctx := t.Context()
	for _, u := range []string{"memory://", "MEMORY://", "Memory://"} {
		b, err := backend.Open(ctx, u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if _, ok := b.(*memory.Backend); !ok {
			t.Fatalf("Open(%q) = %T, want *memory.Backend", u, b)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"memory://host", "memory:///path", "memory://?x=1", "memory://#frag", "memory://u:secret@h"} {
		b, err := backend.Open(ctx, u)
		if !errors.Is(err, backend.ErrInvalidInput) {
			t.Errorf("Open(%q) = %v, %v; want ErrInvalidInput", u, b, err)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error %q shows the password", u, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := backend.Open(cancelled, "memory://"); !errors.Is(err, context.Canceled) {
		t.Errorf("Open(cancelled ctx) = %v, want context.Canceled", err)
	}
}

// TestOpenIsolated: each open is a new, empty store with its own options.
func TestOpenIsolated(t *testing.T) {
	ctx := t.Context()
	a, err := backend.Open(ctx, "memory://")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := backend.Open(ctx, "memory://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	jti, err := backend.NewUUIDv7()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.InsertRefreshToken(ctx, jti, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetRefreshToken(ctx, jti); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("token of one memory:// store found in another: %v", err)
	}
}

func TestClosed(t *testing.T) {
	ctx := t.Context()
	b := memory.New()
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); !errors.Is(err, memory.ErrClosed) {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}
	if _, _, err := b.InsertDeviceFlow(ctx, "c", ""); !errors.Is(err, memory.ErrClosed) {
		t.Errorf("InsertDeviceFlow after Close = %v, want ErrClosed", err)
	}
	if _, err := b.GetUserRefreshTokens(ctx, ""); !errors.Is(err, memory.ErrClosed) {
		t.Errorf("GetUserRefreshTokens after Close = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}
