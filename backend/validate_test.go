package backend_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// wantInvalid fails unless err wraps ErrInvalidInput and names field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if !errors.Is(err, backend.ErrInvalidInput) {
		t.Fatalf("error %v, want one wrapping ErrInvalidInput", err)
	}
	if !strings.Contains(err.Error(), field) {
		t.Fatalf("error %q does not name the field %q", err, field)
	}
}

func mustV7(t *testing.T) uuid.UUID {
	t.Helper()
	id, err := backend.NewUUIDv7()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestCheckDeviceFlow(t *testing.T) {
	if err := backend.CheckDeviceFlow("client", ""); err != nil {
		t.Fatalf("CheckDeviceFlow(ok) = %v", err)
	}
	wantInvalid(t, backend.CheckDeviceFlow("", "scope"), "client_id")
	wantInvalid(t, backend.CheckDeviceFlow(strings.Repeat("c", 256), ""), "client_id")
	wantInvalid(t, backend.CheckDeviceFlow("client", strings.Repeat("s", 1025)), "scope")
	wantInvalid(t, backend.CheckDeviceFlow("client\x00", ""), "client_id")
	wantInvalid(t, backend.CheckDeviceFlow("client", "\xff"), "scope")
}

func TestCheckAuthorizationFlow(t *testing.T) {
	ok := func() []string { return []string{"client", "openid", "challenge", "S256", "https://app/cb"} }
	check := func(a []string) error { return backend.CheckAuthorizationFlow(a[0], a[1], a[2], a[3], a[4]) }
	if err := check(ok()); err != nil {
		t.Fatalf("CheckAuthorizationFlow(ok) = %v", err)
	}
	for _, tc := range []struct {
		i     int
		value string
		field string
	}{
		{0, "", "client_id"},
		{0, strings.Repeat("c", 256), "client_id"},
		{1, strings.Repeat("s", 1025), "scope"},
		{2, strings.Repeat("x", 256), "code_challenge"},
		{3, "S256-LONG", "code_challenge_method"},
		{4, strings.Repeat("u", 256), "redirect_uri"},
	} {
		a := ok()
		a[tc.i] = tc.value
		wantInvalid(t, check(a), tc.field)
	}
}

// TestLengthsCountCodePoints: limits count Unicode code points, as VARCHAR does.
func TestLengthsCountCodePoints(t *testing.T) {
	for _, tc := range []struct {
		field string
		max   int
		check func(s string) error
	}{
		{"client_id", 255, func(s string) error { return backend.CheckDeviceFlow(s, "") }},
		{"scope", 1024, func(s string) error { return backend.CheckDeviceFlow("c", s) }},
		{"code_challenge", 255, func(s string) error { return backend.CheckAuthorizationFlow("c", "", s, "", "") }},
		{"code_challenge_method", 8, func(s string) error { return backend.CheckAuthorizationFlow("c", "", "", s, "") }},
		{"redirect_uri", 255, func(s string) error { return backend.CheckAuthorizationFlow("c", "", "", "", s) }},
		{"sub", 256, func(s string) error { return backend.CheckRefreshToken(mustV7(t), s, "") }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			for _, ch := range []string{"a", "é", "€", "𝄞"} { // 1 to 4 bytes each
				if err := tc.check(strings.Repeat(ch, tc.max)); err != nil {
					t.Errorf("%d × %q rejected: %v", tc.max, ch, err)
				}
				wantInvalid(t, tc.check(strings.Repeat(ch, tc.max+1)), tc.field)
			}
		})
	}
}

func TestCheckRefreshToken(t *testing.T) {
	if err := backend.CheckRefreshToken(mustV7(t), "alice", "openid"); err != nil {
		t.Fatalf("CheckRefreshToken(ok) = %v", err)
	}
	wantInvalid(t, backend.CheckRefreshToken(uuid.Nil, "alice", ""), "jti")
	wantInvalid(t, backend.CheckRefreshToken(uuid.New(), "alice", ""), "jti")
	wantInvalid(t, backend.CheckRefreshToken(mustV7(t), "", ""), "sub")
	wantInvalid(t, backend.CheckRefreshToken(mustV7(t), "alice", strings.Repeat("s", 1025)), "scope")
}

func TestCheckJTI(t *testing.T) {
	if err := backend.CheckJTI("new_jti", mustV7(t)); err != nil {
		t.Fatalf("CheckJTI(v7) = %v", err)
	}
	wantInvalid(t, backend.CheckJTI("new_jti", uuid.Nil), "new_jti")
	wantInvalid(t, backend.CheckJTI("new_jti", uuid.New()), "new_jti")
	notRFC := mustV7(t)
	notRFC[8] &^= 0x80 // NCS variant
	wantInvalid(t, backend.CheckJTI("jti", notRFC), "jti")
}

func TestCheckFlowStatus(t *testing.T) {
	for _, s := range []backend.FlowStatus{backend.StatusPending, backend.StatusReady, backend.StatusDone, backend.StatusError} {
		if err := backend.CheckFlowStatus(s); err != nil {
			t.Errorf("CheckFlowStatus(%s) = %v", s, err)
		}
	}
	for _, s := range []backend.FlowStatus{"", "pending", "EXPIRED", "READY "} {
		wantInvalid(t, backend.CheckFlowStatus(s), "status")
	}
	if !backend.TokenCreated.Valid() || !backend.TokenRevoked.Valid() || backend.TokenStatus("EXPIRED").Valid() {
		t.Error("TokenStatus.Valid is wrong")
	}
}

func TestIDTokenEncodeDecode(t *testing.T) {
	in := map[string]any{"sub": "alice", "n": 3, "nested": map[string]any{"groups": []string{"a", "b"}}, "ok": true, "none": nil}
	b, err := backend.EncodeIDToken(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := backend.DecodeIDToken(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"sub": "alice", "n": 3.0, "nested": map[string]any{"groups": []any{"a", "b"}}, "ok": true, "none": nil}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip = %#v, want %#v", got, want)
	}
	empty, err := backend.EncodeIDToken(map[string]any{})
	if err != nil || string(empty) != "{}" {
		t.Errorf("EncodeIDToken({}) = %q, %v", empty, err)
	}
	for _, bad := range []map[string]any{nil, {"c": make(chan int)}, {"nan": math.NaN()}, {"f": func() {}}} {
		_, err := backend.EncodeIDToken(bad)
		wantInvalid(t, err, "id_token")
	}
	for _, raw := range []string{"", "null"} {
		if m, err := backend.DecodeIDToken([]byte(raw)); m != nil || err != nil {
			t.Errorf("DecodeIDToken(%q) = %v, %v; want nil, nil", raw, m, err)
		}
	}
	if _, err := backend.DecodeIDToken([]byte("[1]")); err == nil {
		t.Error("DecodeIDToken(array) = nil error")
	}
}
