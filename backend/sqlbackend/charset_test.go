package sqlbackend_test

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/internal/testserver"
)

// hostileMariaDBs are private MariaDB servers with the settings that used to
// defeat revocation: the compiled-in default character set latin1 (and a
// server that ignores the client's character set in the handshake), and
// an empty sql_mode.
var hostileMariaDBs = []struct {
	name string
	cfg  testserver.Config
}{
	{"latin1-server", testserver.Config{Args: []string{
		"--character-set-server=latin1", "--collation-server=latin1_swedish_ci",
		"--skip-character-set-client-handshake"}}},
	{"sql_mode-empty", testserver.Config{Args: []string{"--sql-mode="}}},
}

var mysqlEngine = engines[2]

// TestHostileCharsets runs, on DiracX-DDL databases created in latin1,
// utf8mb3 and utf8mb4 on each hostile server: josé's revocation and a
// replay of josé's token revoke exactly josé's tokens (not jose's, not
// "josé " or "JOSÉ"'s); user😀 and user😁 are never conflated (on latin1 and
// utf8mb3 both are ErrInvalidInput naming sub at insert, on utf8mb4 both
// are stored exactly); values are stored as the column's exact bytes; and
// every session runs with authdb's strict sql_mode.
func TestHostileCharsets(t *testing.T) {
	for _, srv := range hostileMariaDBs {
		t.Run(srv.name, func(t *testing.T) {
			s := testserver.Shared(t, testserver.MariaDB, srv.cfg)
			for _, cs := range []string{"latin1", "utf8mb3", "utf8mb4"} {
				t.Run(cs, func(t *testing.T) {
					u := s.NewDatabase(t, "CHARACTER SET "+cs)
					loadDDL(t, rawDB(t, mysqlEngine, u), mysqlEngine.ddl)
					checkCharset(t, u, cs)
				})
			}
		})
	}
}

func checkCharset(t *testing.T, u, cs string) {
	clock := conformance.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	b := open(t, u, backend.WithClock(clock.Now))
	ctx := t.Context()
	db := b.DB()

	var mode, column string
	if err := db.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(mode, "STRICT_ALL_TABLES") {
		t.Errorf("session sql_mode %q is not strict", mode)
	}
	err := db.QueryRowContext(ctx, "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'RefreshTokens' AND COLUMN_NAME = 'Sub'").Scan(&column)
	if err != nil || strings.Replace(column, "utf8mb3", "utf8", 1) != strings.Replace(cs, "utf8mb3", "utf8", 1) {
		t.Fatalf("RefreshTokens.Sub has character set %q (%v), want %s", column, err, cs)
	}

	newJTI := func() uuid.UUID { clock.Advance(time.Millisecond); return conformance.UUIDv7At(clock.Now()) }
	insert := func(sub string) uuid.UUID {
		t.Helper()
		jti := newJTI()
		if err := b.InsertRefreshToken(ctx, jti, sub, "openid"); err != nil {
			t.Fatalf("InsertRefreshToken(%q): %v", sub, err)
		}
		return jti
	}
	status := func(jti uuid.UUID) backend.TokenStatus {
		t.Helper()
		tok, err := b.GetRefreshToken(ctx, jti)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Status
	}
	// Neighbours of josé that a collation or a wrong byte comparison conflates.
	others := map[string]uuid.UUID{}
	for _, sub := range []string{"jose", "josé ", "JOSÉ", "josè", "jos?", "user?"} {
		others[sub] = insert(sub)
	}
	j1, j2 := insert("josé"), insert("josé")

	// Stored as the column's own bytes of josé.
	var stored string
	if err := db.QueryRowContext(ctx, "SELECT HEX(`Sub`) FROM `RefreshTokens` WHERE `JTI` = ?", strings.ReplaceAll(j1.String(), "-", "")).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	want := strings.ToUpper(hex.EncodeToString([]byte("josé")))
	if cs == "latin1" {
		want = "6A6F73E9"
	}
	if stored != want {
		t.Errorf("stored Sub of josé = %s, want %s", stored, want)
	}
	if got, err := b.GetUserRefreshTokens(ctx, "josé"); err != nil || len(got) != 2 {
		t.Errorf("GetUserRefreshTokens(josé) = %d tokens (%v), want 2", len(got), err)
	}
	if n, err := b.RevokeUserRefreshTokens(ctx, "josé"); err != nil || n != 2 {
		t.Errorf("RevokeUserRefreshTokens(josé) = %d (%v), want 2", n, err)
	}
	for _, jti := range []uuid.UUID{j1, j2} {
		if st := status(jti); st != backend.TokenRevoked {
			t.Errorf("josé's token %s is %s after the revocation", jti, st)
		}
	}
	// A replay of josé's token revokes josé's new token and nobody else's.
	j3 := insert("josé")
	j4 := newJTI()
	if _, err := b.RotateRefreshToken(ctx, j3, j4); err != nil {
		t.Fatalf("rotate josé: %v", err)
	}
	if _, err := b.RotateRefreshToken(ctx, j3, newJTI()); !errors.Is(err, backend.ErrTokenReused) {
		t.Fatalf("replay of josé's token: %v, want ErrTokenReused", err)
	}
	if st := status(j4); st != backend.TokenRevoked {
		t.Errorf("josé's rotated token is %s after the replay, want REVOKED", st)
	}
	for sub, jti := range others {
		if st := status(jti); st != backend.TokenCreated {
			t.Errorf("%q's token is %s after josé's revocation and replay", sub, st)
		}
	}

	// Four-byte characters: refused where the column cannot hold them,
	// stored exactly where it can; never conflated.
	jti := newJTI()
	err = b.InsertRefreshToken(ctx, jti, "user😀", "openid")
	if cs != "utf8mb4" {
		if !errors.Is(err, backend.ErrInvalidInput) || !strings.Contains(err.Error(), "sub") {
			t.Fatalf("InsertRefreshToken(user😀) on %s = %v, want ErrInvalidInput naming sub", cs, err)
		}
		if _, err := b.GetRefreshToken(ctx, jti); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("the refused token was written: %v", err)
		}
		if n, err := b.RevokeUserRefreshTokens(ctx, "user😀"); err != nil || n != 0 {
			t.Errorf("RevokeUserRefreshTokens(user😀) = %d (%v), want 0", n, err)
		}
		if got, err := b.GetUserRefreshTokens(ctx, "user😁"); err != nil || len(got) != 0 {
			t.Errorf("GetUserRefreshTokens(user😁) = %v (%v), want none", got, err)
		}
		_, _, err = b.InsertDeviceFlow(ctx, "client😀", "")
		if !errors.Is(err, backend.ErrInvalidInput) || !strings.Contains(err.Error(), "client_id") {
			t.Errorf("InsertDeviceFlow(client😀) on %s = %v, want ErrInvalidInput naming client_id", cs, err)
		}
	} else {
		if err != nil {
			t.Fatalf("InsertRefreshToken(user😀): %v", err)
		}
		other := insert("user😁")
		if n, err := b.RevokeUserRefreshTokens(ctx, "user😀"); err != nil || n != 1 {
			t.Errorf("RevokeUserRefreshTokens(user😀) = %d (%v), want 1", n, err)
		}
		if st := status(other); st != backend.TokenCreated {
			t.Errorf("user😁's token is %s after user😀's revocation", st)
		}
	}
	if st := status(others["user?"]); st != backend.TokenCreated {
		t.Errorf("user?'s token is %s", st)
	}
	// Characters latin1 holds beyond ASCII round-trip on every charset.
	_, dc, err := b.InsertDeviceFlow(ctx, "clïent€", "scöpe")
	if err != nil {
		t.Fatalf("InsertDeviceFlow(clïent€): %v", err)
	}
	if f, err := b.GetDeviceFlow(ctx, dc); err != nil || f.ClientID != "clïent€" || f.Scope != "scöpe" {
		t.Errorf("GetDeviceFlow = %q %q (%v)", f.ClientID, f.Scope, err)
	}
}

// TestUnsupportedCharsetRefused: a DiracX database in a character set
// authdb cannot work exactly on is refused at Open, naming the table, its
// character set and the statement that converts it.
func TestUnsupportedCharsetRefused(t *testing.T) {
	s := testserver.Shared(t, testserver.MariaDB, hostileMariaDBs[0].cfg)
	u := s.NewDatabase(t, "CHARACTER SET cp1251")
	loadDDL(t, rawDB(t, mysqlEngine, u), mysqlEngine.ddl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := sqlbackend.Open(ctx, u)
	if err == nil {
		b.Close()
		t.Fatal("Open succeeded on cp1251 tables")
	}
	msg := err.Error()
	named := ""
	for _, table := range tables {
		if strings.Contains(msg, "table "+table+" ") {
			named = table
		}
	}
	if named == "" || !strings.Contains(msg, "cp1251") ||
		!strings.Contains(msg, "ALTER TABLE `"+named+"` CONVERT TO CHARACTER SET utf8mb4") {
		t.Fatalf("Open error %q does not name the table, cp1251 and the ALTER TABLE statement", msg)
	}
	t.Logf("refused: %v", err)
}

// TestLatin1Representable compares the backend's idea of MySQL's latin1
// with the server's: every character from U+0001 to U+2FFF converted to
// latin1 and back comes back itself exactly when the backend says latin1
// holds it.
func TestLatin1Representable(t *testing.T) {
	s := testserver.Shared(t, testserver.MariaDB, hostileMariaDBs[1].cfg)
	db := s.AdminDB(t)
	var runes []rune
	for r := rune(1); r < 0x3000; r++ {
		if r < 0xD800 || r > 0xDFFF {
			runes = append(runes, r)
		}
	}
	var back string
	err := db.QueryRowContext(t.Context(), "SELECT CONVERT(CONVERT(? USING latin1) USING utf8mb4)", string(runes)).Scan(&back)
	if err != nil {
		t.Fatal(err)
	}
	got := []rune(back)
	if len(got) != len(runes) {
		t.Fatalf("%d characters came back, want %d", len(got), len(runes))
	}
	for i, r := range runes {
		server := got[i] == r
		if sqlbackend.Latin1Holds(r) != server {
			t.Errorf("U+%04X: backend says latin1 holds it: %v, the server: %v", r, sqlbackend.Latin1Holds(r), server)
		}
	}
}
