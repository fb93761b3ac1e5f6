package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
)

// TestNoPlainCodeStored runs full device and authorization flows, then reads
// every column of every row of the three tables as text and fails if a
// plain device or authorization code appears anywhere: only their sha256
// hex may be stored. On SQLite it also scans the database and WAL files'
// bytes.
func TestNoPlainCodeStored(t *testing.T) {
	for _, engine := range sqlEngines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine)
			b := e.open(t)
			ctx := t.Context()

			var secrets []string // plain codes
			var hashes []string  // what must be stored instead
			for i := range 3 {
				uc, dc, err := b.InsertDeviceFlow(ctx, "client", "openid")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.DeviceFlowValidateUserCode(ctx, uc, validity); err != nil {
					t.Fatal(err)
				}
				if err := b.DeviceFlowInsertIDToken(ctx, uc, map[string]any{"sub": "alice"}, validity); err != nil {
					t.Fatal(err)
				}
				if i > 0 { // one flow stays READY, the others are redeemed
					if _, err := b.ConsumeDeviceFlow(ctx, dc, validity); err != nil {
						t.Fatal(err)
					}
				}
				id, err := b.InsertAuthorizationFlow(ctx, "client", "openid", "challenge", "S256", "https://app.example/cb")
				if err != nil {
					t.Fatal(err)
				}
				code, _, err := b.AuthorizationFlowInsertIDToken(ctx, id, map[string]any{"sub": "alice"}, validity)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.GetAuthorizationFlow(ctx, code, validity); err != nil {
					t.Fatal(err)
				}
				if i > 0 {
					if _, err := b.ConsumeAuthorizationFlow(ctx, code, validity); err != nil {
						t.Fatal(err)
					}
				}
				jti := e.newJTI()
				if err := b.InsertRefreshToken(ctx, jti, "alice", "openid"); err != nil {
					t.Fatal(err)
				}
				if _, err := b.RotateRefreshToken(ctx, jti, e.newJTI()); err != nil {
					t.Fatal(err)
				}
				secrets = append(secrets, dc, code)
				hashes = append(hashes, backend.HashCode(dc), backend.HashCode(code))
			}

			var cells []string
			for _, table := range []string{"DeviceFlows", "AuthorizationFlows", "RefreshTokens"} {
				cells = append(cells, tableText(t, e, table)...)
			}
			all := strings.Join(cells, "\x00")
			for _, s := range secrets {
				if strings.Contains(all, s) {
					t.Errorf("a plain code is stored: %q", s)
				}
			}
			// The positive control: the scan does see the stored hashes.
			for _, h := range hashes {
				if !strings.Contains(all, h) {
					t.Errorf("the scan did not find the stored hash %s: it reads nothing useful", h)
				}
			}
			if engine == "sqlite" {
				b.Close() // checkpoint nothing away: scan whatever is on disk
				dir := filepath.Dir(strings.TrimPrefix(e.url, "sqlite://"))
				files, _ := filepath.Glob(filepath.Join(dir, "authdb.db*"))
				for _, f := range files {
					data, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					for _, s := range secrets {
						if bytes.Contains(data, []byte(s)) {
							t.Errorf("%s holds a plain code", filepath.Base(f))
						}
					}
				}
			}
			t.Logf("%s: %d cells scanned, none holds one of the %d plain codes", engine, len(cells), len(secrets))
		})
	}
}

// tableText returns every cell of table as text (raw SQL).
func tableText(t *testing.T, e *env, table string) []string {
	t.Helper()
	rows, err := e.raw.QueryContext(t.Context(), e.q(`SELECT * FROM "`+table+`"`))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		raw := make([]sql.RawBytes, len(cols))
		dest := make([]any, len(cols))
		for i := range raw {
			dest[i] = &raw[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		for _, c := range raw {
			out = append(out, string(c))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPasswordNeverInErrors opens MariaDB as a user with a password, with a
// wrong password, and checks that neither password is in the error or in
// anything logged; then the same for unreachable hosts and malformed URLs
// on both servers (PostgreSQL here trusts local users, so a wrong password
// cannot be refused by it).
func TestPasswordNeverInErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	secret := "S3cr3t-" + randHex(t)
	wrong := "Wr0ng-" + randHex(t)

	t.Run("mysql wrong password", func(t *testing.T) {
		e := newEnv(t, "mysql")
		k := newKiller(t, e)
		user := "authdb_pw_" + randHex(t)[:8]
		for _, host := range []string{"%", "localhost", "127.0.0.1"} {
			mustExec(t, k.db, fmt.Sprintf("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'", user, host, secret))
			mustExec(t, k.db, fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%s'", e.dbName, user, host))
		}
		t.Cleanup(func() {
			for _, host := range []string{"%", "localhost", "127.0.0.1"} {
				k.db.ExecContext(context.Background(), fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", user, host))
			}
		})
		hostPort := hostOf(t, e.url)
		good := fmt.Sprintf("mysql://%s:%s@%s/%s", user, secret, hostPort, e.dbName)
		bad := fmt.Sprintf("mysql://%s:%s@%s/%s", user, wrong, hostPort, e.dbName)

		b, logs := openLogged(ctx, good)
		if b == nil {
			t.Fatalf("the right password is refused: %s", logs)
		}
		b.Close()
		_, msg := openLogged(ctx, bad)
		if !strings.Contains(msg, "1045") && !strings.Contains(strings.ToLower(msg), "access denied") {
			t.Errorf("wrong password: error %q does not say access was denied", msg)
		}
		wantNoSecret(t, msg, secret, wrong)
		if !strings.Contains(msg, hostPort) {
			t.Errorf("error %q does not name the host %s", msg, hostPort)
		}
	})

	for _, c := range []struct{ name, url string }{
		{"postgres unreachable", "postgres://alice:" + wrong + "@127.0.0.1:1/db?sslmode=disable"},
		{"mysql unreachable", "mysql://alice:" + wrong + "@127.0.0.1:1/db"},
		{"postgres bad port", "postgres://alice:" + wrong + "@127.0.0.1:99999x/db"},
		{"mysql bad port", "mysql://alice:" + wrong + "@127.0.0.1:x/db"},
		{"postgres unknown parameter", "postgres://alice:" + wrong + "@127.0.0.1:5432/db?nope=1"},
		{"mysql unknown parameter", "mysql://alice:" + wrong + "@127.0.0.1:3306/db?nope=1"},
		{"postgres bad escape", "postgres://alice:" + wrong + "%zz@127.0.0.1:5432/db"},
		{"mysql no database", "mysql://alice:" + wrong + "@127.0.0.1:3306"},
		{"unknown scheme", "nosuch://alice:" + wrong + "@127.0.0.1/db"},
	} {
		t.Run(c.name, func(t *testing.T) {
			octx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			b, msg := openLogged(octx, c.url)
			if b != nil {
				b.Close()
				t.Fatalf("open %s succeeded", c.name)
			}
			wantNoSecret(t, msg, wrong)
		})
	}
}

// openLogged opens url with a logger that records everything, and returns
// the backend (nil on error) and the error's text followed by the log.
func openLogged(ctx context.Context, url string) (backend.Backend, string) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := authdb.Open(ctx, url, backend.WithLogger(logger))
	if err != nil {
		return nil, err.Error() + "\n" + buf.String()
	}
	return b, buf.String()
}

func wantNoSecret(t *testing.T, msg string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("the password %q appears in %q", s, msg)
		}
	}
	if msg == "" {
		t.Errorf("no error text at all")
	}
}

func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	rest := rawURL[strings.Index(rawURL, "://")+3:]
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	return rest[:strings.IndexByte(rest, '/')]
}

func randHex(t *testing.T) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// TestRandomnessComesFromCryptoRand parses every non-test Go file of the
// module and fails if one imports math/rand or math/rand/v2: every random
// value (user codes, device and authorization codes, UUIDv7 bits, and any
// other) must come from crypto/rand.
func TestRandomnessComesFromCryptoRand(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "math/rand" || p == "math/rand/v2" {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s imports %s: use crypto/rand", rel, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("only %d Go files found under %s: the scan looked in the wrong place", files, root)
	}
}

// moduleRoot is the directory of go.mod above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
