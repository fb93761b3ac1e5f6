package conformance_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
	"github.com/authdb/authdb/conformance"
)

// stale is a misbehaving backend: its reads of a device flow lose the ID
// token (as a stale replica's read would).
type stale struct{ backend.Backend }

func (s stale) GetDeviceFlow(ctx context.Context, deviceCode string) (backend.DeviceFlow, error) {
	f, err := s.Backend.GetDeviceFlow(ctx, deviceCode)
	f.IDToken = nil
	return f, err
}

const envMisbehave = "AUTHDB_TEST_CONFORMANCE_MISBEHAVE"

// TestMisbehavingBackendChild runs the suite's copy checks on the stale
// backend; only as the child of TestMisbehavingBackendFailsNotPanics.
func TestMisbehavingBackendChild(t *testing.T) {
	if os.Getenv(envMisbehave) != "1" {
		t.Skip("child process of TestMisbehavingBackendFailsNotPanics only")
	}
	conformance.Run(t, func(t *testing.T, opts ...backend.Option) backend.Backend {
		return stale{memory.New(opts...)}
	})
}

// TestMisbehavingBackendFailsNotPanics: a backend returning a flow without
// its ID token fails the subtests that read it; the test binary does not
// die of a panic, and the other subtests run and pass.
func TestMisbehavingBackendFailsNotPanics(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMisbehavingBackendChild$/^Copies$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envMisbehave+"=1")
	out, err := cmd.CombinedOutput()
	s := string(out)
	if err == nil {
		t.Fatalf("the suite passed a backend that loses ID tokens:\n%s", s)
	}
	if strings.Contains(s, "panic: ") && !strings.Contains(s, "panic (a backend returned") {
		t.Fatalf("the suite panicked:\n%s", s)
	}
	for _, want := range []string{"--- FAIL: TestMisbehavingBackendChild/Copies/DeviceFlowIDToken", "--- PASS: TestMisbehavingBackendChild/Copies/RefreshTokenList"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
