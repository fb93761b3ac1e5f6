package conformance_test

import (
	"testing"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
	"github.com/authdb/authdb/conformance"
)

// TestMemory runs the suite on the reference backend, which proves the suite
// itself: every check in it passes on a correct backend.
func TestMemory(t *testing.T) {
	conformance.Run(t, func(t *testing.T, opts ...backend.Option) backend.Backend {
		return memory.New(opts...)
	})
}
