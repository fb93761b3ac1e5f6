package main

import (
	"bytes"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env0(string) string { return "" }

// 2. A key is required outside --dev, from --key-file or TOKENSERVER_KEY.
func TestFlagsKeys(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(testKey)
	k2 := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 40))
	file := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(file, []byte("# new key first\n"+k2+"\n"+k1+"\n"), 0o600)
	base := []string{"--issuer", "https://auth.example", "--client", "cli=https://app.example/cb"}
	getenv := func(v string) func(string) string {
		return func(name string) string {
			if name == keyEnv {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		name    string
		args    []string
		getenv  func(string) string
		wantErr string
		keys    int
	}{
		{"no key", base, env0, "token key is required", 0},
		{"env", base, getenv(k1), "", 1},
		{"env, two keys", base, getenv(k2 + "," + k1), "", 2},
		{"file", append([]string{"--key-file", file}, base...), env0, "", 2},
		{"file and env", append([]string{"--key-file", file}, base...), getenv(k1), "not both", 0},
		{"short key", base, getenv(base64.StdEncoding.EncodeToString([]byte("short"))), "at least 32 bytes", 0},
		{"missing file", append([]string{"--key-file", file + ".nope"}, base...), env0, "key file", 0},
		{"dev", []string{"--dev"}, env0, "", 1},
		{"no issuer", []string{"--client", "cli=https://app.example/cb"}, getenv(k1), "--issuer is required", 0},
		{"no client", []string{"--issuer", "https://auth.example"}, getenv(k1), "--client", 0},
		{"bad client", append([]string{"--client", "cli"}, base...), getenv(k1), "ID=REDIRECT_URI", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseFlags(c.args, c.getenv, io.Discard)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), k1) {
					t.Fatalf("the error shows a key: %v", err)
				}
				return
			}
			if err != nil || len(o.cfg.Keys) != c.keys {
				t.Fatalf("err %v, %d keys; want %d", err, len(o.cfg.Keys), c.keys)
			}
		})
	}
	o, err := parseFlags([]string{"--dev", "--addr", "127.0.0.1:1234"}, env0, io.Discard)
	if err != nil || o.cfg.Issuer != "http://127.0.0.1:1234" || len(o.cfg.Clients["demo"].RedirectURIs) != 1 || !o.randomKey || o.grace != 5*time.Second {
		t.Fatalf("--dev defaults: %+v, %v", o, err)
	}
	o, err = parseFlags(append(base, "--client", "cli=https://app.example/cb2", "--client", "tv=", "--refresh-grace", "0"), getenv(k1), io.Discard)
	if err != nil || len(o.cfg.Clients["cli"].RedirectURIs) != 2 || len(o.cfg.Clients["tv"].RedirectURIs) != 0 || o.grace != 0 {
		t.Fatalf("clients %v grace %v, %v", o.cfg.Clients, o.grace, err)
	}
}

func TestParseIssuer(t *testing.T) {
	for raw, want := range map[string]string{
		"https://auth.example":      "https://auth.example",
		"https://auth.example/":     "https://auth.example",
		"http://127.0.0.1:8080":     "http://127.0.0.1:8080",
		"http://localhost:1":        "http://localhost:1",
		"http://auth.example":       "",
		"http://127.evil.example":   "",
		"http://[::1]:8080":         "http://[::1]:8080",
		"https://auth.example/path": "",
		"https://auth.example?x=1":  "",
		"auth.example":              "",
	} {
		got, err := ParseIssuer(raw)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("ParseIssuer(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

// 2. Refresh tokens survive a restart with the same key; key rotation: a
// server whose keys are [new, old] accepts tokens of the old key and signs
// with the new one.
func TestRestartAndKeyRotation(t *testing.T) {
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "authdb.db")
	newKey := bytes.Repeat([]byte{7}, 32)
	first := newEnv(t, dbURL, nil)
	tok := first.codeLogin("nina")
	first.store.Close()

	// "Restarted" with the same key: the token refreshes.
	restarted := newEnv(t, dbURL, nil)
	tok, err := restarted.refresh(restarted.conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after a restart: %v", err)
	}
	restarted.store.Close()

	rotated := newEnv(t, dbURL, func(c *Config) { c.Keys = [][]byte{newKey, testKey} })
	tok, err = rotated.refresh(rotated.conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh of an old-key token after the rotation: %v", err)
	}
	rotated.store.Close()

	// The old key is dropped: tokens it signed are refused, the new key's work.
	newOnly := newEnv(t, dbURL, func(c *Config) { c.Keys = [][]byte{newKey} })
	if _, ok := newOnly.srv.parseRefreshToken(tok.RefreshToken, testClientID); !ok {
		t.Fatal("the token signed after the rotation does not verify with the new key alone")
	}
	oldOnly := newEnv(t, "memory://", nil)
	if _, ok := oldOnly.srv.parseRefreshToken(tok.RefreshToken, testClientID); ok {
		t.Fatal("the token signed after the rotation verifies with the old key")
	}
	if _, err := newOnly.refresh(newOnly.conf, tok.RefreshToken); err != nil {
		t.Fatalf("refresh with the new key alone: %v", err)
	}
}

// 7. Timeouts and body limits: the server's settings, a connection that
// trickles its request is closed by ReadTimeout, and a body over maxBody is
// refused.
func TestHTTPServerLimits(t *testing.T) {
	e := newEnv(t, "memory://", nil)
	hs := newHTTPServer("127.0.0.1:0", e.srv)
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.WriteTimeout <= 0 || hs.IdleTimeout <= 0 || hs.MaxHeaderBytes <= 0 {
		t.Fatalf("newHTTPServer leaves a limit unset: %+v", hs)
	}
	hs.ReadTimeout = 300 * time.Millisecond // the behaviour, quickly
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ngrant_type=")
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.ReadAll(conn) // returns when the server closes the connection
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a trickling request kept its connection for %v", d)
	}

	big := "client_id=cli&grant_type=refresh_token&refresh_token=" + strings.Repeat("a", maxBody)
	resp, err := http.Post("http://"+ln.Addr().String()+"/token", "application/x-www-form-urlencoded", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, resp, body, http.StatusRequestEntityTooLarge, "invalid_request")
}
