package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokenserver:", err)
		os.Exit(2)
	}
	if err := serve(opts, logger); err != nil {
		fmt.Fprintln(os.Stderr, "tokenserver:", err)
		os.Exit(1)
	}
}

// options are the command line's settings.
type options struct {
	addr  string
	db    string
	grace time.Duration // the store's rotation grace window (StoreOptions)
	dev   bool
	// randomKey: --dev without a key, so the tokens die with the process.
	randomKey bool
	cfg       Config // Issuer, Clients, Keys, PollInterval; Store and Logger are set by serve
}

// keyEnv is the environment variable that may hold the token keys.
const keyEnv = "TOKENSERVER_KEY"

// parseFlags reads the command line. getenv is os.Getenv (a parameter for
// the tests).
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	clients := clientFlag{}
	fs := flag.NewFlagSet("tokenserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen `address`")
	fs.StringVar(&o.db, "db", "memory://", "authdb database `URL` (memory://, sqlite://file.db, postgres://..., mysql://...)")
	fs.StringVar(&o.cfg.Issuer, "issuer", "", "the server's public `URL` (https://host[:port]; http only on loopback); required unless --dev (default then http://ADDR)")
	keyFile := fs.String("key-file", "", "file with the token keys (`PATH`; else $"+keyEnv+"): base64 keys of at least 32 bytes, separated by white space; the first signs, all verify")
	fs.Var(clients, "client", "register a public client `ID=REDIRECT_URI`; repeat for more URIs or clients; ID= for a device-only client (--dev: demo=http://127.0.0.1:9999/callback)")
	fs.DurationVar(&o.grace, "refresh-grace", 5*time.Second, "how long a rotated refresh token still gets its successor (concurrent refreshes); 0 turns it off")
	fs.DurationVar(&o.cfg.PollInterval, "poll-interval", 5*time.Second, "the device flow's polling interval (whole seconds, at least 1s)")
	fs.BoolVar(&o.dev, "dev", false, "development mode: a throw-away random key if none is given (tokens die with the process), default issuer and client")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.grace < 0 {
		return options{}, errors.New("--refresh-grace must not be negative")
	}
	if o.dev && o.cfg.Issuer == "" {
		o.cfg.Issuer = "http://" + o.addr
	}
	if o.dev && len(clients) == 0 {
		clients.Set("demo=http://127.0.0.1:9999/callback")
	}
	if o.cfg.Issuer == "" {
		return options{}, errors.New("--issuer is required (or --dev)")
	}
	if len(clients) == 0 {
		return options{}, errors.New("at least one --client ID=REDIRECT_URI is required (or --dev)")
	}
	o.cfg.Clients = clients
	o.randomKey = o.dev && *keyFile == "" && getenv(keyEnv) == ""
	var err error
	if o.cfg.Keys, err = loadKeys(*keyFile, getenv(keyEnv), o.dev); err != nil {
		return options{}, err
	}
	return o, nil
}

// loadKeys returns the token keys from the file path, else from env (the
// value of TOKENSERVER_KEY). With neither, --dev makes a throw-away random
// key and anything else is an error: a key made up at each start would
// invalidate every refresh token at every restart, while the store still
// holds them as live.
//
// The text is base64 keys (standard or URL alphabet, padding optional) of at
// least 32 bytes each, separated by white space or commas; lines starting
// with # are comments. Make one with 'openssl rand -base64 32'. The first key
// signs and all verify: to rotate, put a new key first, restart, and remove
// the old one once the tokens it signed are expired (RefreshTokenLifetime).
func loadKeys(path, env string, dev bool) ([][]byte, error) {
	text, from := env, "$"+keyEnv
	switch {
	case path != "" && env != "":
		return nil, fmt.Errorf("give the keys in --key-file or $%s, not both", keyEnv)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("key file: %w", err)
		}
		text, from = string(b), path
	case env == "" && dev:
		k := make([]byte, 32)
		rand.Read(k)
		return [][]byte{k}, nil
	case env == "":
		return nil, fmt.Errorf("a token key is required: --key-file PATH or $%s (or --dev for a throw-away key)", keyEnv)
	}
	var ks [][]byte
	for line := range strings.Lines(text) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
			f = strings.NewReplacer("+", "-", "/", "_", "=", "").Replace(f)
			k, err := base64.RawURLEncoding.DecodeString(f)
			if err != nil || len(k) < minKeyLen {
				// The message names the key's place, never its text.
				return nil, fmt.Errorf("%s: key %d is not base64 of at least %d bytes", from, len(ks)+1, minKeyLen)
			}
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%s holds no key", from)
	}
	return ks, nil
}

// clientFlag collects --client ID=REDIRECT_URI: repeating an ID adds a
// redirect URI, ID= alone registers a device-only client.
type clientFlag map[string]Client

func (c clientFlag) String() string {
	var s []string
	for id, cl := range c {
		s = append(s, id+"="+strings.Join(cl.RedirectURIs, ","))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

func (c clientFlag) Set(v string) error {
	id, uri, ok := strings.Cut(v, "=")
	if !ok || id == "" {
		return errors.New("want ID=REDIRECT_URI")
	}
	cl := c[id]
	if uri != "" {
		// RFC 6749 §3.1.2: absolute, without a fragment; compared exactly.
		u, err := url.Parse(uri)
		if err != nil || !u.IsAbs() || u.Fragment != "" {
			return fmt.Errorf("redirect URI %q: want an absolute URI without a fragment", uri)
		}
		cl.RedirectURIs = append(cl.RedirectURIs, uri)
	}
	c[id] = cl
	return nil
}

// newHTTPServer is an http.Server with the limits a server facing the
// Internet needs (net/http has none by default): a client gets 5 s for its
// request's headers and 10 s for the whole request (the body is at most
// maxBody bytes, see Server.ServeHTTP), the handler and the reply get 30 s,
// an idle keep-alive connection is closed after 60 s, and headers are at most
// 32 KiB. Without ReadTimeout a client trickling a body a byte at a time
// keeps its connection, and a goroutine, forever.
func newHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

// serve runs the server until SIGINT or SIGTERM.
func serve(o options, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := authdb.Open(ctx, o.db, append(StoreOptions(o.grace), backend.WithLogger(logger))...)
	if err != nil {
		return err
	}
	defer store.Close()
	tel, err := newTelemetry(ctx, os.Getenv, nil) // /metrics, and a span per request (telemetry.go)
	if err != nil {
		return err
	}
	defer tel.shutdown(context.Background())
	store = tel.store(store)
	o.cfg.Store, o.cfg.Logger = store, logger
	srv, err := New(o.cfg)
	if err != nil {
		return err
	}
	if o.randomKey {
		logger.Warn("--dev: tokens are signed with a throw-away key and die with this process")
	}
	// The token server serves everything; other handlers (a /metrics
	// endpoint, say) are added to this mux.
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	hs := newHTTPServer(o.addr, tel.handler(srv, mux))
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	logger.Info("token server listening", "addr", ln.Addr().String(), "issuer", srv.cfg.Issuer,
		"db", backend.Redact(o.db), "clients", clientFlag(o.cfg.Clients).String(), "refresh_grace", o.grace)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
