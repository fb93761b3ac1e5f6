package memory

import (
	"strings"
	"testing"

	"github.com/authdb/authdb/backend"
)

func TestKeyOfMatchesHashCode(t *testing.T) {
	for _, code := range []string{"", "abc", strings.Repeat("x", 64), strings.Repeat("y", 65), strings.Repeat("é", 100)} {
		if got, want := keyOf(code).String(), backend.HashCode(code); got != want {
			t.Errorf("keyOf(%d bytes) = %s, want %s", len(code), got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = keyOf("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM") }); n != 0 {
		t.Errorf("keyOf of a 43-byte code allocates %v times", n)
	}
}
