package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestQuickstart(t *testing.T) {
	for _, dbURL := range []string{"memory://", "sqlite://" + filepath.Join(t.TempDir(), "qs.db")} {
		var out bytes.Buffer
		if err := run(context.Background(), &out, dbURL); err != nil {
			t.Fatalf("%s: %v", dbURL, err)
		}
		for _, want := range []string{"user code: ", "device flow DONE for alice", "(old one REVOKED)"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: output lacks %q:\n%s", dbURL, want, out.String())
			}
		}
	}
}
