package backend_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/authdb/authdb/backend"
)

// uniqueScheme returns a scheme no other test run registered (the registry
// is global and tests may run with -count > 1).
func uniqueScheme(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, schemeSeq.Add(1))
}

var schemeSeq atomic.Int64

func nopOpener(context.Context, string, ...backend.Option) (backend.Backend, error) {
	return nil, errors.New("nop opener")
}

func TestRegisterPanicsOnDuplicate(t *testing.T) {
	dup := uniqueScheme("regtest-dup")
	backend.Register(dup, nopOpener)
	for _, scheme := range []string{dup, strings.ToUpper(dup)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("second Register(%q) did not panic", scheme)
				}
			}()
			backend.Register(scheme, nopOpener)
		}()
	}
	for _, tc := range []struct {
		scheme string
		opener backend.Opener
	}{{"", nopOpener}, {"regtest-nil", nil}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q, nil=%v) did not panic", tc.scheme, tc.opener == nil)
				}
			}()
			backend.Register(tc.scheme, tc.opener)
		}()
	}
}

func TestOpenDispatchesByScheme(t *testing.T) {
	var gotURL string
	scheme := uniqueScheme("regtest-open")
	backend.Register(scheme, func(_ context.Context, rawURL string, _ ...backend.Option) (backend.Backend, error) {
		gotURL = rawURL
		return nil, nil
	})
	if !slices.Contains(backend.Schemes(), scheme) {
		t.Fatalf("Schemes() = %v, want %s in it", backend.Schemes(), scheme)
	}
	if !slices.IsSorted(backend.Schemes()) {
		t.Errorf("Schemes() = %v, not sorted", backend.Schemes())
	}
	u := strings.ToUpper(scheme) + "://host/db?x=1"
	if _, err := backend.Open(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if gotURL != u {
		t.Errorf("opener got %q, want the whole URL %q", gotURL, u)
	}
}

func TestOpenUnknownSchemeListsKnown(t *testing.T) {
	known := uniqueScheme("regtest-known")
	backend.Register(known, nopOpener)
	for _, u := range []string{"nosuch://user:secret@host/db", "user:secret@host/db", ""} {
		_, err := backend.Open(context.Background(), u)
		if !errors.Is(err, backend.ErrInvalidInput) {
			t.Fatalf("Open(%q) = %v, want ErrInvalidInput", u, err)
		}
		if !strings.Contains(err.Error(), known) {
			t.Errorf("Open(%q) error %q does not list the known schemes", u, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error %q shows the password", u, err)
		}
	}
	_, err := backend.Open(context.Background(), "nosuch://h")
	if !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("error %q does not name the unknown scheme", err)
	}
}

func TestScheme(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"memory://", "memory"},
		{"POSTGRES://u@h/db", "postgres"},
		{"sqlite://:memory:", "sqlite"},
		{"://x", ""},
		{"no-scheme", ""},
	} {
		if got := backend.Scheme(tc.in); got != tc.want {
			t.Errorf("Scheme(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://user:s3cret@host:5432/db?sslmode=disable", "postgres://user:xxxxx@host:5432/db?sslmode=disable"},
		{"mysql://root:p@ss:w@rd@host:3306/db", "mysql://root:xxxxx@host:3306/db"},
		{"mysql://root@host:3306/db", "mysql://root@host:3306/db"},
		{"postgres://host/db?password=x@y", "postgres://host/db?password=xxxxx"},
		{"postgres://host/db?sslmode=disable&password=hunter2", "postgres://host/db?sslmode=disable&password=xxxxx"},
		// Unencoded '?', '#', '@', '/' and ':' in the password (issue 10).
		{"postgres://postgres:s3cretpw?x@127.0.0.1:5450/adv?sslmode=disable", "postgres://postgres:xxxxx@127.0.0.1:5450/adv?sslmode=disable"},
		{"postgres://postgres:s3#cr@t?/:pw@127.0.0.1:5450/adv", "postgres://postgres:xxxxx@127.0.0.1:5450/adv"},
		{"mysql://root:a%3Fb%40c@h:3306/db", "mysql://root:xxxxx@h:3306/db"},
		{"postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write", "postgres://u:xxxxx@h1:5432,h2:5433/db?target_session_attrs=read-write"},
		{"postgres://u:p@[::1]:5432/db", "postgres://u:xxxxx@[::1]:5432/db"},
		{"postgres://u:p@/db?host=/run/postgresql", "postgres://u:xxxxx@/db?host=/run/postgresql"},
		{"sqlite:///tmp/a.db", "sqlite:///tmp/a.db"},
		{"sqlite://:memory:", "sqlite://:memory:"},
		{"memory://", "memory://"},
		{"not a url", "not a url"},
		{"root:pw@tcp(host:3306)/db", "root:xxxxx@tcp(host:3306)/db"},
		{"user:secret@host/db", "user:xxxxx@host/db"},
		{"mysql://root:pa/ss@host/db", "mysql://root:xxxxx@host/db"},
		{"sqlite:///tmp/a@b.db", "sqlite:///tmp/a@b.db"},
		// A password with '@' and '#' ending in an '@' no host follows: the
		// '@' before "0" looks like the end of the user information, the
		// last one may be it (found by FuzzParseURL).
		{"mysql://user:@0#0@ ", "mysql://user:xxxxx@ "},
		{"postgres://u:p@ss#x@ /db", "postgres://u:xxxxx@ /db"},
	} {
		got := backend.Redact(tc.in)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := backend.Redact("postgres://u:hunter2@h/db"); strings.Contains(got, "hunter2") {
		t.Errorf("Redact kept the password: %q", got)
	}
}
