package backend

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

func TestIsSentinel(t *testing.T) {
	for _, s := range sentinels {
		if !IsSentinel(fmt.Errorf("op: %w", s)) {
			t.Errorf("IsSentinel(wrapped %v) = false", s)
		}
	}
	if IsSentinel(errors.New("driver: bad connection")) || IsSentinel(nil) {
		t.Error("IsSentinel is true for a non-sentinel error")
	}
}

// TestSentinelsListsEveryErr keeps sentinels complete: every exported Err
// variable of errors.go must be in it.
func TestSentinelsListsEveryErr(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for _, id := range vs.Names {
				if strings.HasPrefix(id.Name, "Err") {
					names = append(names, id.Name)
				}
			}
		}
		return true
	})
	if len(names) != len(sentinels) {
		t.Errorf("errors.go declares %d Err variables %v, sentinels lists %d", len(names), names, len(sentinels))
	}
}
