package sqlbackend_test

import (
	"context"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
)

// TestStatementsPerOperation counts, on MariaDB, the statements each
// operation sends (the session's Questions counter, on a one-connection
// pool): single-row reads and conditional writes take one.
func TestStatementsPerOperation(t *testing.T) {
	e := engines[2]
	now := time.Date(2025, time.June, 15, 12, 0, 0, 0, time.UTC)
	b := open(t, newURL(t, e)+"?max_open_conns=1", backend.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	questions := func() int {
		t.Helper()
		var name string
		var n int
		if err := b.DB().QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Questions'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	count := func(op string, want int, fn func() error) {
		t.Helper()
		before := questions()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		// The SHOW STATUS itself counts once.
		if got := questions() - before - 1; got != want {
			t.Errorf("%s: %d statements, want %d", op, got, want)
		}
	}
	var uc, dc, id, code string
	count("InsertDeviceFlow", 1, func() (err error) { uc, dc, err = b.InsertDeviceFlow(ctx, "c", "s"); return })
	count("DeviceFlowValidateUserCode", 1, func() error { _, err := b.DeviceFlowValidateUserCode(ctx, uc, time.Hour); return err })
	count("DeviceFlowInsertIDToken", 1, func() error { return b.DeviceFlowInsertIDToken(ctx, uc, map[string]any{"a": 1}, time.Hour) })
	count("GetDeviceFlow", 1, func() error { _, err := b.GetDeviceFlow(ctx, dc); return err })
	count("ConsumeDeviceFlow", 2, func() error { _, err := b.ConsumeDeviceFlow(ctx, dc, time.Hour); return err })
	count("ConsumeDeviceFlow (used)", 1, func() error {
		if _, err := b.ConsumeDeviceFlow(ctx, dc, time.Hour); err == nil {
			t.Error("second ConsumeDeviceFlow succeeded")
		}
		return nil
	})
	count("UpdateDeviceFlowStatus", 1, func() error { return b.UpdateDeviceFlowStatus(ctx, dc, backend.StatusError) })
	count("InsertAuthorizationFlow", 1, func() (err error) {
		id, err = b.InsertAuthorizationFlow(ctx, "c", "s", "x", "S256", "https://x")
		return
	})
	count("AuthorizationFlowInsertIDToken", 2, func() (err error) {
		code, _, err = b.AuthorizationFlowInsertIDToken(ctx, id, map[string]any{"a": 1}, time.Hour)
		return
	})
	count("GetAuthorizationFlow", 1, func() error { _, err := b.GetAuthorizationFlow(ctx, code, time.Hour); return err })
	count("ConsumeAuthorizationFlow", 2, func() error { _, err := b.ConsumeAuthorizationFlow(ctx, code, time.Hour); return err })
	count("UpdateAuthorizationFlowStatus", 1, func() error { return b.UpdateAuthorizationFlowStatus(ctx, code, backend.StatusDone) })
	jti, next := conformance.UUIDv7At(now), conformance.UUIDv7At(now.Add(time.Second))
	count("InsertRefreshToken", 1, func() error { return b.InsertRefreshToken(ctx, jti, "u", "s") })
	count("GetRefreshToken", 1, func() error { _, err := b.GetRefreshToken(ctx, jti); return err })
	count("GetUserRefreshTokens", 1, func() error { _, err := b.GetUserRefreshTokens(ctx, "u"); return err })
	count("RotateRefreshToken", 4, func() error { _, err := b.RotateRefreshToken(ctx, jti, next); return err })
	count("RevokeRefreshToken", 1, func() error { return b.RevokeRefreshToken(ctx, next) })
	count("RevokeUserRefreshTokens", 1, func() error { _, err := b.RevokeUserRefreshTokens(ctx, "u"); return err })
	count("CleanExpiredRefreshTokens", 1, func() error { _, err := b.CleanExpiredRefreshTokens(ctx, time.Hour); return err })
	count("CleanExpiredDeviceFlows", 1, func() error { _, err := b.CleanExpiredDeviceFlows(ctx, time.Hour); return err })
}
