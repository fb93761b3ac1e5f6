package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen `address`")
	db := flag.String("db", "memory://", "authdb database `URL` (memory://, sqlite://file.db, postgres://..., mysql://...)")
	clientID := flag.String("client-id", "demo", "the registered public client's `id`")
	redirectURI := flag.String("redirect-uri", "http://127.0.0.1:9999/callback", "the client's redirect `URI`")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := serve(*addr, *db, *clientID, *redirectURI, logger); err != nil {
		fmt.Fprintln(os.Stderr, "tokenserver:", err)
		os.Exit(1)
	}
}

// serve runs the server until SIGINT or SIGTERM.
func serve(addr, dbURL, clientID, redirectURI string, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := authdb.Open(ctx, dbURL, backend.WithLogger(logger))
	if err != nil {
		return err
	}
	defer store.Close()
	srv, err := New(Config{
		Store:   store,
		Clients: map[string]Client{clientID: {RedirectURIs: []string{redirectURI}}},
		Logger:  logger,
	})
	if err != nil {
		return err
	}
	hs := &http.Server{Addr: addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	logger.Info("token server listening", "addr", "http://"+addr, "db", backend.Redact(dbURL), "client_id", clientID)
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
