// Command authdb is the operator tool of authdb: it creates or upgrades the
// schema, cleans up expired flows and refresh tokens, maintains the monthly
// partitions of RefreshTokens on MySQL/MariaDB, lists and revokes refresh
// tokens, and runs a demonstration of the flows.
//
// Usage:
//
//	authdb [--db URL] [-v] <command> [flags]
//
// The database is --db (accepted before or after the command), else the
// AUTHDB_URL environment variable, else sqlite://authdb.db in the current
// folder. URLs are those of authdb.Open: memory://, sqlite://file.db,
// sqlite:///abs/file.db, postgres://user:pass@host:5432/db?sslmode=disable,
// mysql://user:pass@host:3306/db.
//
// Commands: migrate, cleanup, partitions, tokens list, tokens revoke, demo.
// Every command has --help.
//
// Only migrate and demo create or upgrade the schema; the other commands open
// the database as it is (backend.WithoutMigration), so an operator tool never
// changes a schema behind the operator's back.
//
// Exit status: 0 on success (and for --help), 1 when a command fails, 2 for a
// usage error or when the engine does not support the command (partitions on
// SQLite or PostgreSQL). Results go to stdout; errors, warnings and progress
// go to stderr. No message ever contains the database password.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2 // bad flags or arguments
	exitUnsupported = 2 // the engine cannot do what was asked
)

// envURL is the environment variable read when --db is not given.
const envURL = "AUTHDB_URL"

// defaultURL is the database used when neither --db nor AUTHDB_URL is set.
const defaultURL = "sqlite://authdb.db"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app is the state shared by every command: output streams, the database URL
// and the logger.
type app struct {
	stdout, stderr io.Writer
	dbURL          string // from --db (global or per command); "" until resolved
	cmd            string // the running command, for messages ("tokens list")
	verbose        bool
	version        bool // --version
	logger         *slog.Logger
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, a *app, args []string) error
}

func commands() []command {
	return []command{
		{"migrate", "create or upgrade the schema (and the MySQL partitions)", runMigrate},
		{"cleanup", "delete expired flows and, when asked, old refresh tokens", runCleanup},
		{"partitions", "show, plan and apply the monthly partitions of RefreshTokens (MySQL/MariaDB)", runPartitions},
		{"tokens", "list or revoke refresh tokens (tokens list, tokens revoke)", runTokens},
		{"demo", "run a device flow, a PKCE flow, a rotation and a replay, printing each step", runDemo},
		{"version", "print the module version and the VCS revision of this binary", runVersion},
	}
}

// exitError carries an exit status with an error. A nil err means the
// message was already printed.
type exitError struct {
	code  int
	err   error
	usage bool // a usage error: point to --help
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a usage error (exit status 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...), usage: true}
}

// errHelpShown is returned when --help printed the usage: exit status 0.
var errHelpShown = errors.New("help shown")

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("authdb", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.globalFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.mainUsage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "authdb: %v\nRun 'authdb --help' for usage.\n", err)
		return exitUsage
	}
	rest := fs.Args()
	if a.version {
		a.cmd = "version"
		return a.exitStatus(runVersion(ctx, a, nil))
	}
	if len(rest) == 0 {
		a.mainUsage(stderr)
		return exitUsage
	}
	name, cmdArgs := rest[0], rest[1:]
	if name == "help" {
		if len(cmdArgs) == 0 {
			a.mainUsage(stdout)
			return exitOK
		}
		name, cmdArgs = cmdArgs[0], append(cmdArgs[1:], "--help")
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		a.cmd = c.name
		err := c.run(ctx, a, cmdArgs)
		return a.exitStatus(err)
	}
	if s := suggest(name); s != "" {
		fmt.Fprintf(stderr, "authdb: unknown command %q; did you mean %q?\nRun 'authdb --help' for usage.\n", name, s)
		return exitUsage
	}
	fmt.Fprintf(stderr, "authdb: unknown command %q\nRun 'authdb --help' for usage.\n", name)
	return exitUsage
}

// exitStatus prints err (on one line, to stderr) and maps it to an exit status.
func (a *app) exitStatus(err error) int {
	cmd := a.cmd
	if err == nil || errors.Is(err, errHelpShown) {
		return exitOK
	}
	code, usage := exitFailure, false
	var ee *exitError
	if errors.As(err, &ee) {
		code, usage = ee.code, ee.usage
		if ee.err == nil {
			return code
		}
	}
	fmt.Fprintf(a.stderr, "authdb %s: %s\n", cmd, a.errLine(err))
	if usage {
		fmt.Fprintf(a.stderr, "Run 'authdb %s --help' for usage.\n", cmd)
	}
	return code
}

// globalFlags defines the flags accepted before the command.
func (a *app) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.dbURL, "db", "", "database `URL` (default $"+envURL+", else "+defaultURL+")")
	fs.BoolVar(&a.verbose, "v", false, "verbose: log debug messages to stderr")
	fs.BoolVar(&a.version, "version", false, "print the version and exit")
}

func (a *app) mainUsage(w io.Writer) {
	fmt.Fprint(w, `authdb is the operator tool of authdb, the storage of an OAuth2/OIDC token
service (device flows, authorization-code flows with PKCE, refresh tokens).

Usage:
  authdb [--db URL] [-v] <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Global flags (also accepted after the command):
  --db URL   the database (default $AUTHDB_URL, else sqlite://authdb.db):
             memory://, sqlite://file.db, sqlite:///abs/file.db,
             postgres://user:pass@host:5432/db?sslmode=disable,
             mysql://user:pass@host:3306/db
  -v         log debug messages to stderr
  --version  print the version (also: authdb version)

Run 'authdb <command> --help' for a command's flags.
Exit status: 0 success, 1 failure, 2 usage error or unsupported by the engine.
`)
}

// newFlagSet makes a command's flag set: it also accepts the global flags,
// prints nothing by itself, and shows usage (description, then flags) on
// --help.
func (a *app) newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("authdb "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Func("db", "database `URL` (default $"+envURL+", else "+defaultURL+")", func(s string) error {
		a.dbURL = s
		return nil
	})
	fs.Var((*boolFlag)(&a.verbose), "v", "verbose: log debug messages to stderr")
	fs.Usage = func() {
		w := a.stdout
		fmt.Fprint(w, strings.TrimLeft(usage, "\n"))
		fmt.Fprintln(w, "\nFlags:")
		printFlags(w, fs)
	}
	return fs
}

// boolFlag is a boolean flag that keeps the value given: -v, -v=true,
// -v=false (the global -v may be turned off after the command).
type boolFlag bool

func (b *boolFlag) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolFlag) IsBoolFlag() bool { return true }
func (b *boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*b = boolFlag(v)
	return nil
}

// printFlags prints fs's flags as the usage line writes them (--db URL;
// one dash for the one-letter -v), where the flag package's PrintDefaults
// writes -db, with their defaults.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if d := f.DefValue; d != "" && d != "false" && d != "0" && f.Name != "db" {
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
}

// suggest returns the command closest to a mistyped name (at most two
// edits away, or a prefix of one), or "".
func suggest(name string) string {
	best, bestD := "", 3
	for _, c := range commands() {
		if strings.HasPrefix(c.name, name) && len(name) >= 2 {
			return c.name
		}
		if d := editDistance(name, c.name); d < bestD {
			best, bestD = c.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// parse parses a command's flags; no command takes positional arguments.
// --help prints the usage to stdout and returns errHelpShown; a bad flag or
// an argument is a usage error, reported on stderr in one line without the
// usage (the flag package would print it on every parse error, to stdout
// here).
func parse(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage()
		return errHelpShown
	case err != nil:
		return &exitError{code: exitUsage, err: err, usage: true}
	case fs.NArg() > 0:
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// setupLogger makes the logger handed to the backend: warnings (and, with -v,
// debug messages) as text on stderr.
func (a *app) setupLogger() *slog.Logger {
	if a.logger == nil {
		level := slog.LevelWarn
		if a.verbose {
			level = slog.LevelDebug
		}
		a.logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	}
	return a.logger
}

// errLine renders err for the CLI's one-line messages: on one line and
// without the "authdb: " markers of the wrapped library errors (the CLI
// prints its own prefix). It scrubs nothing: authdb's errors never contain
// the password (backend.Redact, backend.ParseURL), and replacing it wherever
// it occurs would mangle the message ("postgres://postgres:postgres@...").
//
// The CLI names the target once, at the front ("postgres 127.0.0.1:5432/db:
// ..."), so the library's own " on postgres://127.0.0.1:5432" is dropped.
func (a *app) errLine(err error) string {
	line := strings.ReplaceAll(oneLine(err.Error()), "authdb: ", "")
	return libWhere.ReplaceAllString(line, "")
}

// libWhere matches the library's " on scheme://host:port" in its errors.
var libWhere = regexp.MustCompile(` on (?:sqlite|postgres|postgresql|mysql)://[^\s:]*(?::\d+)?`)

// oneLine joins a multi-line message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
