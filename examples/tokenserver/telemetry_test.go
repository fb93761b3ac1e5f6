package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/authdb/authdb/backend/memory"
)

// TestTelemetry: each request is a server span with the store's calls as
// its children, and /metrics serves the store's and the server's metrics
// in the Prometheus text format.
func TestTelemetry(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tel, err := newTelemetry(t.Context(), func(string) string { return "" },
		sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.shutdown(context.Background()) })
	store := tel.store(memory.New(StoreOptions(testGrace)...))
	t.Cleanup(func() { store.Close() })
	var srv *Server
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tel.handler(srv, srv).ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	srv, err = New(Config{Store: store, Issuer: ts.URL, Clients: map[string]Client{testClientID: {RedirectURIs: []string{testRedirect}}},
		Keys: [][]byte{testKey}, PollInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}

	post := func(path string, form url.Values) map[string]any {
		t.Helper()
		resp, err := http.PostForm(ts.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return out
	}
	da := post("/device_authorization", url.Values{"client_id": {testClientID}, "scope": {"profile"}})
	dc, _ := da["device_code"].(string)
	if dc == "" {
		t.Fatalf("device authorization: %v", da)
	}
	if out := post("/token", url.Values{"client_id": {testClientID}, "device_code": {dc},
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}}); out["error"] != "authorization_pending" {
		t.Fatalf("token: %v, want authorization_pending", out)
	}

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = s
	}
	for parent, child := range map[string]string{"POST /device_authorization": "InsertDeviceFlow", "POST /token": "ConsumeDeviceFlow"} {
		p, c := spans[parent], spans[child]
		if p == nil || c == nil {
			t.Fatalf("spans %v: want %q and %q", spanNames(spans), parent, child)
		}
		if c.Parent().SpanID() != p.SpanContext().SpanID() || c.SpanContext().TraceID() != p.SpanContext().TraceID() {
			t.Errorf("%s is not a child of %s", child, parent)
		}
	}

	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`authdb_flow_redemptions_total{authdb_flow_kind="device",authdb_outcome="authorization_pending"`,
		`db_client_operation_duration_seconds_bucket{`, `db_operation_name="InsertDeviceFlow"`, `db_system_name="memory"`,
		`http_server_request_duration_seconds`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if testing.Verbose() {
		t.Logf("/metrics:\n%s", body)
	}
}

func spanNames(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
