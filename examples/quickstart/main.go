// Command quickstart is the shortest complete use of authdb: open a store by
// URL, run a device flow to its end, issue a refresh token and rotate it.
//
//	go run ./examples/quickstart                        # in memory
//	go run ./examples/quickstart --db sqlite://qs.db    # or any authdb URL
//
// For every step, with what the store holds in between, run 'make demo'
// (the authdb CLI's demo command).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
)

func main() {
	dbURL := flag.String("db", "memory://", "authdb database `URL`")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *dbURL); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer, dbURL string) error {
	// 1. Open a backend by URL; SQL backends create their schema on open.
	store, err := authdb.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	const validity = 10 * time.Minute

	// 2. A device asks for a code (RFC 8628) and shows the user code.
	userCode, deviceCode, err := store.InsertDeviceFlow(ctx, "my-cli", "openid")
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "user code:", userCode)

	// 3. The user logs in and types the code; the ID token is stored.
	if err := store.DeviceFlowInsertIDToken(ctx, userCode, map[string]any{"sub": "alice"}, validity); err != nil {
		return err
	}

	// 4. The device polls the token endpoint: the flow is consumed, once.
	flow, err := store.ConsumeDeviceFlow(ctx, deviceCode, validity)
	if err != nil {
		return err
	}
	sub := flow.IDToken["sub"].(string)
	fmt.Fprintln(w, "device flow", flow.Status, "for", sub)

	// 5. Issue a refresh token (its JTI is a UUIDv7), then rotate it.
	jti, err := backend.NewUUIDv7()
	if err != nil {
		return err
	}
	if err := store.InsertRefreshToken(ctx, jti, sub, flow.Scope); err != nil {
		return err
	}
	next, err := backend.NewUUIDv7()
	if err != nil {
		return err
	}
	old, err := store.RotateRefreshToken(ctx, jti, next)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "rotated", old.JTI, "->", next, "(old one", old.Status+")")
	return nil
}
