package memory_test

import (
	"testing"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
	"github.com/authdb/authdb/conformance"
)

// TestConformance runs the whole conformance suite on the memory backend, the
// reference backend: this run also proves the suite itself (every check in
// it passes on a correct backend).
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T, opts ...backend.Option) backend.Backend {
		return memory.New(opts...)
	})
}
