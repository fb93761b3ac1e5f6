package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

const tokensUsage = `Usage:
  authdb [--db URL] tokens list [--sub S] [--json]
  authdb [--db URL] tokens revoke (--jti J | --sub S)

list    lists refresh tokens: with --sub, that subject's live (not revoked)
        tokens; without, every token of every subject, revoked ones included.
revoke  revokes one token (--jti) or every token of a subject (--sub), and
        prints what changed.

Run 'authdb tokens list --help' or 'authdb tokens revoke --help' for flags.
`

const tokensListUsage = `Usage: authdb [--db URL] tokens list [--sub S] [--json]

Lists refresh tokens, oldest first: with --sub, that subject's live (not
revoked) tokens; without, every token of every subject, revoked ones included
(the administrator's view). CREATED is the time in the JTI (a UUIDv7).
With --json: a JSON array of {"jti","sub","scope","status","created"}.
`

const tokensRevokeUsage = `Usage: authdb [--db URL] tokens revoke (--jti J | --sub S)

Revokes one refresh token by its JTI, or every token of a subject; exactly one
of --jti and --sub. Revoking a revoked token changes nothing and is not an
error; an unknown JTI is. Prints what changed.
`

func runTokens(ctx context.Context, a *app, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, tokensUsage)
		return &exitError{code: exitUsage}
	}
	switch args[0] {
	case "list":
		a.cmd = "tokens list"
		return runTokensList(ctx, a, args[1:])
	case "revoke":
		a.cmd = "tokens revoke"
		return runTokensRevoke(ctx, a, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(a.stdout, tokensUsage)
		return errHelpShown
	}
	return usageErrorf("unknown subcommand %q (want list or revoke)", args[0])
}

// tokenJSON is a refresh token in the output of 'tokens list --json'.
type tokenJSON struct {
	JTI     string    `json:"jti"`
	Sub     string    `json:"sub"`
	Scope   string    `json:"scope"`
	Status  string    `json:"status"`
	Created time.Time `json:"created"`
}

func runTokensList(ctx context.Context, a *app, args []string) error {
	fs := a.newFlagSet("tokens list", tokensListUsage)
	sub := fs.String("sub", "", "only this `subject`'s live tokens")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := a.open(ctx, backend.WithoutMigration())
	if err != nil {
		return err
	}
	defer b.Close()
	toks, err := b.GetUserRefreshTokens(ctx, *sub)
	if err != nil {
		return schemaHint(fmt.Errorf("%s: list refresh tokens: %w", target(a.dbURL), err))
	}
	if *asJSON {
		out := make([]tokenJSON, len(toks))
		for i, t := range toks {
			out[i] = tokenJSON{t.JTI.String(), t.Sub, t.Scope, string(t.Status), backend.UUIDv7Time(t.JTI)}
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printTokens(a.stdout, toks)
	return nil
}

// printTokens prints tokens as a table, or a line saying there are none.
func printTokens(w io.Writer, toks []backend.RefreshToken) {
	if len(toks) == 0 {
		fmt.Fprintln(w, "no refresh tokens")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JTI\tCREATED\tSTATUS\tSUB\tSCOPE")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.JTI, backend.UUIDv7Time(t.JTI).Format(time.RFC3339),
			t.Status, t.Sub, t.Scope)
	}
	tw.Flush()
}

func runTokensRevoke(ctx context.Context, a *app, args []string) error {
	fs := a.newFlagSet("tokens revoke", tokensRevokeUsage)
	jtiFlag := fs.String("jti", "", "revoke the token with this `JTI` (a UUID)")
	sub := fs.String("sub", "", "revoke every token of this `subject`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*jtiFlag == "") == (*sub == "") {
		return usageErrorf("give exactly one of --jti and --sub")
	}
	var jti uuid.UUID
	if *jtiFlag != "" {
		var err error
		if jti, err = uuid.Parse(*jtiFlag); err != nil {
			return usageErrorf("--jti %q is not a UUID", *jtiFlag)
		}
	}
	b, err := a.open(ctx, backend.WithoutMigration())
	if err != nil {
		return err
	}
	defer b.Close()
	where := target(a.dbURL)

	if *sub != "" {
		n, err := b.RevokeUserRefreshTokens(ctx, *sub)
		if err != nil {
			return schemaHint(fmt.Errorf("%s: revoke tokens of %q: %w", where, *sub, err))
		}
		fmt.Fprintf(a.stdout, "revoked %d refresh token(s) of %q\n", n, *sub)
		return nil
	}
	before, err := b.GetRefreshToken(ctx, jti)
	if errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("no refresh token %s on %s", jti, where)
	}
	if err != nil {
		return schemaHint(fmt.Errorf("%s: get refresh token %s: %w", where, jti, err))
	}
	if err := b.RevokeRefreshToken(ctx, jti); err != nil {
		return fmt.Errorf("%s: revoke refresh token %s: %w", where, jti, err)
	}
	if before.Status == backend.TokenRevoked {
		fmt.Fprintf(a.stdout, "refresh token %s of %q was already revoked; nothing changed\n", jti, before.Sub)
		return nil
	}
	fmt.Fprintf(a.stdout, "revoked refresh token %s of %q (was %s)\n", jti, before.Sub, before.Status)
	return nil
}
