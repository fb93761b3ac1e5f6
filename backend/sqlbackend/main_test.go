package sqlbackend_test

import (
	"os"
	"testing"

	"github.com/authdb/authdb/internal/testserver"
)

// TestMain stops the private servers the tests shared (testserver.Shared)
// and removes their data directories once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	testserver.StopShared()
	os.Exit(code)
}
