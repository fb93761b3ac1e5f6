package backend_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

func TestObserverNesting(t *testing.T) {
	var got []string
	outer := &backend.Observer{Retry: func(_ context.Context, c string) { got = append(got, "outer "+c) }}
	inner := &backend.Observer{
		Retry: func(_ context.Context, c string) { got = append(got, "inner "+c) },
		Reuse: func(_ context.Context, e backend.ReuseEvent) { got = append(got, "inner reuse") },
	}
	ctx := backend.ContextWithObserver(backend.ContextWithObserver(context.Background(), outer), inner)
	backend.ReportRetry(ctx, backend.RetryBusy)
	backend.ReportReuse(ctx, nil, backend.ReuseEvent{})
	backend.ReportRetry(context.Background(), backend.RetryBusy) // no observer: nothing
	if want := "inner busy|outer busy|inner reuse"; strings.Join(got, "|") != want {
		t.Fatalf("calls %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestReportReuseLogsWarn(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	jti := uuid.Must(uuid.NewV7())
	backend.ReportReuse(context.Background(), logger, backend.ReuseEvent{Sub: "alice", JTI: jti, Revoked: 3})
	line := buf.String()
	for _, want := range []string{"level=WARN", "sub=alice", "jti=" + jti.String(), "family=" + jti.String(), "revoked=3", "reuse_scope=subject"} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %q", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("want one record, got %q", line)
	}
}
