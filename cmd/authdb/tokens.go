package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

const tokensUsage = `Usage:
  authdb [--db URL] tokens list [--sub S] [--json]
  authdb [--db URL] tokens revoke (--jti J | --family J | --sub S)

list    lists refresh tokens: with --sub, that subject's live (not revoked)
        tokens; without, every token of every subject, revoked ones included.
revoke  revokes one token (--jti), every token of one login session (the
        family of --family), or every token of a subject (--sub), and
        prints what changed.

Run 'authdb tokens list --help' or 'authdb tokens revoke --help' for flags.
`

const tokensListUsage = `Usage: authdb [--db URL] tokens list [--sub S] [--json]

Lists refresh tokens, oldest first: with --sub, that subject's live (not
revoked) tokens; without, every token of every subject, revoked ones included
(the administrator's view). CREATED is the time in the JTI (a UUIDv7).
FAMILY is the token's login session: the JTI of its first token (a token
rotation gives the new token its predecessor's family; a token written by
DiracX is its own family's first).
With --json: a JSON array of {"jti","sub","scope","status","created",
"family","replaced_by"}; replaced_by (the successor a rotation made) is
left out when there is none.
`

const tokensRevokeUsage = `Usage: authdb [--db URL] tokens revoke (--jti J | --family J | --sub S)

Revokes one refresh token by its JTI; or, with --family, every token of the
family (login session) of the token J, any of its tokens (signs out one
session, the subject's other sessions stay); or every token of a subject.
Exactly one of --jti, --family and --sub. Revoking a revoked token changes
nothing and is not an error; an unknown JTI is. Prints what changed.
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
	Family  string    `json:"family"`
	// ReplacedBy is the successor's JTI; "" (left out) when none.
	ReplacedBy string `json:"replaced_by,omitempty"`
}

// newTokenJSON is t as 'tokens list --json' prints it.
func newTokenJSON(t backend.RefreshToken) tokenJSON {
	j := tokenJSON{JTI: t.JTI.String(), Sub: t.Sub, Scope: t.Scope, Status: string(t.Status),
		Created: backend.UUIDv7Time(t.JTI), Family: backend.FamilyOf(t).String()}
	if t.ReplacedBy != uuid.Nil {
		j.ReplacedBy = t.ReplacedBy.String()
	}
	return j
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
	toks := backend.RefreshTokens(ctx, b, *sub)
	if *asJSON {
		err = printTokensJSON(a.stdout, toks)
	} else {
		err = printTokens(a.stdout, toks)
	}
	if err != nil {
		return schemaHint(fmt.Errorf("%s: %w", target(a.dbURL), err))
	}
	return nil
}

// printTokensJSON streams toks as an indented JSON array, one element at a
// time, so memory does not grow with the number of tokens. An error of the
// listing is returned after what was written (the array then stays open).
func printTokensJSON(w io.Writer, toks iter.Seq2[backend.RefreshToken, error]) error {
	bw := bufio.NewWriter(w)
	n := 0
	for t, err := range toks {
		if err != nil {
			bw.Flush()
			return err
		}
		sep := ",\n  "
		if n == 0 {
			sep = "[\n  "
		}
		n++
		js, err := json.MarshalIndent(newTokenJSON(t), "  ", "  ")
		if err != nil {
			return err
		}
		bw.WriteString(sep)
		bw.Write(js)
	}
	if n == 0 {
		bw.WriteString("[]\n")
	} else {
		bw.WriteString("\n]\n")
	}
	return bw.Flush()
}

// tablePage is how many tokens printTokens reads before it prints the table's
// first rows: their widths set the SUB column's (a longer subject later
// pushes its scope to the right, and memory stays bounded).
const tablePage = 1000

// printTokens prints toks as a table, or a line saying there are none.
func printTokens(w io.Writer, toks iter.Seq2[backend.RefreshToken, error]) error {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	var first []backend.RefreshToken
	subWidth := len("SUB")
	row := func(t backend.RefreshToken) {
		fmt.Fprintf(bw, "%-36s  %-20s  %-7s  %-36s  %-*s  %s\n", t.JTI, backend.UUIDv7Time(t.JTI).Format(time.RFC3339),
			t.Status, backend.FamilyOf(t), subWidth, t.Sub, t.Scope)
	}
	header := func() {
		for _, t := range first {
			subWidth = max(subWidth, utf8.RuneCountInString(t.Sub))
		}
		fmt.Fprintf(bw, "%-36s  %-20s  %-7s  %-36s  %-*s  %s\n", "JTI", "CREATED", "STATUS", "FAMILY", subWidth, "SUB", "SCOPE")
		for _, t := range first {
			row(t)
		}
	}
	n := 0
	for t, err := range toks {
		if err != nil {
			if n > 0 && n < tablePage {
				header()
			}
			return err
		}
		n++
		switch {
		case n < tablePage:
			first = append(first, t)
		case n == tablePage:
			first = append(first, t)
			header()
			first = nil
		default:
			row(t)
		}
	}
	switch {
	case n == 0:
		fmt.Fprintln(bw, "no refresh tokens")
	case n < tablePage:
		header()
	}
	return nil
}

func runTokensRevoke(ctx context.Context, a *app, args []string) error {
	fs := a.newFlagSet("tokens revoke", tokensRevokeUsage)
	jtiFlag := fs.String("jti", "", "revoke the token with this `JTI` (a UUID)")
	familyFlag := fs.String("family", "", "revoke every token of the family (login session) of the token with this `JTI`")
	sub := fs.String("sub", "", "revoke every token of this `subject`")
	if err := parse(fs, args); err != nil {
		return err
	}
	given := 0
	for _, f := range []string{*jtiFlag, *familyFlag, *sub} {
		if f != "" {
			given++
		}
	}
	if given != 1 {
		return usageErrorf("give exactly one of --jti, --family and --sub")
	}
	var jti uuid.UUID
	for name, f := range map[string]string{"--jti": *jtiFlag, "--family": *familyFlag} {
		if f != "" {
			var err error
			if jti, err = uuid.Parse(f); err != nil {
				return usageErrorf("%s %q is not a UUID", name, f)
			}
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
	if *familyFlag != "" {
		n, err := b.RevokeRefreshTokenFamily(ctx, jti)
		if errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("no refresh token %s on %s", jti, where)
		}
		if err != nil {
			return schemaHint(fmt.Errorf("%s: revoke the family of refresh token %s: %w", where, jti, err))
		}
		fmt.Fprintf(a.stdout, "revoked %d refresh token(s) of the family of %s\n", n, jti)
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
