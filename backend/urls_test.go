package backend_test

import (
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/authdb/authdb/backend"
)

// TestPasswordsAnyCharacter: for passwords made of every character people
// paste (URL delimiters unencoded, percent signs, spaces, non-ASCII),
// ParseURL recovers the user, password, host, database and query exactly,
// and Redact's output never contains the password, as written or
// percent-encoded.
func TestPasswordsAnyCharacter(t *testing.T) {
	const alphabet = "?#@/:%&=+;, aZ9é数"
	r := rand.New(rand.NewPCG(1, 2))
	pws := []string{"s3cretpw@127.0.0.1:5450/adv?sslmode", "p?ss", "p#ss", "p@ss", "@@", "::", "//", "%", "%zz", "50%off", "a b"}
	for range 500 {
		rs := []rune(alphabet)
		n := 3 + r.IntN(12)
		var b strings.Builder
		for range n {
			b.WriteRune(rs[r.IntN(len(rs))])
		}
		pws = append(pws, b.String())
	}
	for _, pw := range pws {
		for _, tmpl := range []string{
			"postgres://alice:PW@127.0.0.1:5450/adv?sslmode=disable",
			"mysql://alice:PW@db.example:3306/auth",
			"postgres://alice:PW@h1:5432,h2:5433/auth?target_session_attrs=read-write",
		} {
			raw := strings.Replace(tmpl, "PW", pw, 1)
			u, err := backend.ParseURL(raw)
			if err != nil {
				if strings.Contains(err.Error(), pw) {
					t.Errorf("ParseURL error %q contains the password", err)
				}
				t.Errorf("ParseURL(password %q): %v", pw, err)
				continue
			}
			got, _ := u.User.Password()
			want := pw // as written, or decoded when it is valid percent-encoding
			if d, err := url.PathUnescape(pw); err == nil {
				want = d
			}
			if got != want {
				t.Errorf("ParseURL(password %q): password %q, want %q", pw, got, want)
			}
			if u.User.Username() != "alice" || !strings.HasPrefix(tmpl, u.Scheme+"://") {
				t.Errorf("ParseURL(password %q): user %q scheme %q", pw, u.User.Username(), u.Scheme)
			}
			if !strings.Contains(tmpl, "@"+u.Host+"/") || !strings.HasSuffix(tmpl, u.Path+func() string {
				if u.RawQuery == "" {
					return ""
				}
				return "?" + u.RawQuery
			}()) {
				t.Errorf("ParseURL(password %q): host %q path %q query %q", pw, u.Host, u.Path, u.RawQuery)
			}
			red := backend.Redact(raw)
			if len(pw) >= 3 && strings.Contains(red, pw) {
				t.Errorf("Redact(%q) = %q keeps the password", raw, red)
			}
			if want := strings.Replace(tmpl, "PW", "xxxxx", 1); red != want {
				t.Errorf("Redact(%q) = %q, want %q", raw, red, want)
			}
		}
	}
}
