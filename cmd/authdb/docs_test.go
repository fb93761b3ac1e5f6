package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authdb/authdb/internal/testdb"
)

// repoRoot is the module root, from this package's folder.
const repoRoot = "../.."

// docCommand is one command shown in a document: a line of a sh block, or a
// "$ " line of a text block (a transcript) with the lines printed after it.
type docCommand struct {
	file, line string
	output     []string // transcript lines after the command, up to the next "$ "
}

// docCommands reads the commands of README.md and docs/*.md.
func docCommands(t *testing.T) []docCommand {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(repoRoot, "README.md")}, files...)
	var cmds []docCommand
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(repoRoot, f)
		lang, in := "", false
		var cont string
		for _, l := range strings.Split(string(data), "\n") {
			trimmed := strings.TrimSpace(l)
			if strings.HasPrefix(trimmed, "```") {
				lang, in = strings.TrimPrefix(trimmed, "```"), !in
				continue
			}
			if !in {
				continue
			}
			switch {
			case lang == "sh":
				c := trimmed
				if i := strings.Index(c, "  #"); i >= 0 {
					c = strings.TrimSpace(c[:i]) // a comment after the command
				}
				if c == "" || strings.HasPrefix(c, "#") {
					continue
				}
				if strings.HasSuffix(c, `\`) {
					cont += strings.TrimSuffix(c, `\`) + " "
					continue
				}
				cmds = append(cmds, docCommand{file: name, line: cont + c})
				cont = ""
			case strings.HasPrefix(l, "$ "):
				cmds = append(cmds, docCommand{file: name, line: strings.TrimPrefix(l, "$ ")})
			case len(cmds) > 0 && cmds[len(cmds)-1].file == name && lang != "sh":
				last := &cmds[len(cmds)-1]
				last.output = append(last.output, l)
			}
		}
	}
	return cmds
}

// shellFields splits a command line as sh would for these simple lines:
// spaces separate words, single quotes group.
func shellFields(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			inQuote, have = !inQuote, true
		case r == ' ' && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsCommands: every command shown in README.md and docs/*.md is run
// here, or is checked here to be what .ci/run runs, so the documents cannot
// drift from the code. authdb commands run for real, in the order shown, on
// one database per document and database name (a sqlite file, or a fresh
// database on the test servers for mysql:// and postgres:// URLs on the
// default ports); their exit status must be the one the transcript shows
// ("; echo $?", an error line, else 0), and each also runs with --help
// (the command and its flags exist). A command of a kind this test does
// not know fails it: add a check.
func TestDocsCommands(t *testing.T) {
	ci := readFile(t, ".ci/run")
	makefile := readFile(t, "Makefile")
	uuidRE := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-`)
	type key struct{ file, url string }
	dbs := map[key]string{}
	dirs := map[string]string{}
	for _, c := range docCommands(t) {
		began := time.Now()
		f := shellFields(c.line)
		for len(f) > 1 && envAssign.MatchString(f[0]) {
			f = f[1:] // VAR=value before the command
		}
		if len(f) == 0 {
			continue
		}
		what := c.file + ": " + c.line
		switch {
		case f[0] == "authdb":
			if strings.ContainsAny(c.line, "[<") {
				continue // a synopsis: authdb [--db URL] [-v] <command> [flags]
			}
			args, wantCode := f[1:], -1
			if n := len(args); n >= 2 && args[n-2] == ";" || strings.HasSuffix(c.line, "; echo $?") {
				args = shellFields(strings.TrimSuffix(c.line, "; echo $?"))[1:]
				for _, o := range c.output {
					if code, err := strconv.Atoi(strings.TrimSpace(o)); err == nil {
						wantCode = code
					}
				}
			}
			if args[len(args)-1] == "partitions;" { // "authdb partitions; echo $?"
				args[len(args)-1] = "partitions"
			}
			errorShown := len(c.output) > 0 && errorLine.MatchString(c.output[0])
			if r := cli(t, nil, append(append([]string{}, args...), "--help")...); r.code != 0 && !errorShown {
				t.Errorf("%s: with --help: exit %d, stderr %q", what, r.code, r.stderr)
				continue
			}
			if uuidRE.MatchString(c.line) {
				continue // names a token of the sample's store: --help above checks it
			}
			if wantCode < 0 {
				wantCode = 0
				if errorShown {
					wantCode = -2 // an error line: any failure
				}
			}
			// The database: --db's URL mapped to a test database, else the
			// default file in the document's folder.
			for i := 0; i+1 < len(args); i++ {
				if args[i] != "--db" {
					continue
				}
				u := args[i+1]
				var e testdb.Engine
				switch {
				case strings.HasPrefix(u, "mysql://root@127.0.0.1:3306/"):
					e = testdb.MySQL
				case strings.HasPrefix(u, "postgres://postgres@127.0.0.1:5432/"):
					e = testdb.Postgres
				default:
					continue // an example of a bad URL: used as written
				}
				k := key{c.file, u}
				if dbs[k] == "" {
					dbs[k] = testdb.NewDatabase(t, e)
				}
				args[i+1] = dbs[k]
			}
			if dirs[c.file] == "" {
				dirs[c.file] = t.TempDir()
			}
			r := runIn(t, dirs[c.file], args...)
			if wantCode == -2 && r.code == 0 || wantCode >= 0 && r.code != wantCode {
				t.Errorf("%s: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", what, r.code, wantCode, r.stdout, r.stderr)
			}
		case f[0] == "make":
			target := f[1]
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).MatchString(makefile) {
				t.Errorf("%s: no target %s in the Makefile", what, target)
			}
			switch {
			case strings.HasPrefix(target, "bench"):
				// Minutes long, run by hand (CI runs bench-scale at toy
				// sizes): the flags shown must parse.
				flags := []string{}
				for _, a := range f[2:] {
					for _, name := range []string{"BENCH_FLAGS=", "SCALE_FLAGS="} {
						if v, ok := strings.CutPrefix(a, name); ok {
							flags = strings.Fields(v)
						}
					}
				}
				benchFlags(t, what, flags)
			case strings.Contains(ci, "\nmake "+target+"\n") || strings.Contains(ci, "\nmake "+target+" "):
				// CI runs it.
			default:
				t.Errorf("%s: neither run by .ci/run nor checked here", what)
			}
		case f[0] == "go" && len(f) > 1 && f[1] == "test":
			goTestCommand(t, what, f, ci)
		case c.line == "go install ./cmd/authdb", c.line == "go run ./cmd/authdb ...":
			// TestMain builds ./cmd/authdb as go install does.
		case strings.HasPrefix(c.line, "CGO_ENABLED=0 go build"):
			if !strings.Contains(ci, "CGO_ENABLED=0 go build ./... && CGO_ENABLED=0 go vet ./...") {
				t.Errorf("%s: .ci/run does not build without cgo", what)
			} // TestWithoutCgo builds ./cmd/authdb so
		case f[0] == "go" && f[1] == "run" && strings.HasPrefix(f[2], "./examples/"):
			goRunExample(t, what, f[2:])
		case f[0] == "export":
			// The test servers' variables: testdb reads them (internal/testdb tests).
		case c.line == "go mod edit -replace github.com/authdb/authdb=../authdb":
			useAsDependency(t)
		case c.line == "go mod tidy":
			// Part of useAsDependency.
		default:
			t.Errorf("%s: a command TestDocsCommands does not know: add a check", what)
		}
		if d := time.Since(began); d > time.Second {
			t.Logf("%s: %s", what, d.Round(time.Millisecond))
		}
	}
}

// envAssign is a VAR=value word before a command.
var envAssign = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)

// errorLine is the start of the CLI's error messages: "authdb migrate: ",
// "authdb tokens list: ", "authdb: ".
var errorLine = regexp.MustCompile(`^authdb( [a-z]+)*: `)

// runIn runs the CLI in dir (cli runs it in a fresh folder).
func runIn(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envURL+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// goTool runs the go command in the module root.
func goTool(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// benchFlags: internal/bench defines every flag shown (read from its
// source: building its test binary takes longer than the rest of this test).
func benchFlags(t *testing.T, what string, flags []string) {
	t.Helper()
	srcs, _ := filepath.Glob(filepath.Join(repoRoot, "internal", "bench", "*_test.go"))
	var all strings.Builder
	for _, s := range srcs {
		b, _ := os.ReadFile(s)
		all.Write(b)
	}
	for _, f := range flags {
		name, ok := strings.CutPrefix(f, "-")
		if !ok {
			continue // a value
		}
		if !regexp.MustCompile(`flag\.\w+\("` + regexp.QuoteMeta(name) + `"`).MatchString(all.String()) {
			t.Errorf("%s: internal/bench has no flag -%s", what, name)
		}
	}
}

// goTestCommand: the package exists and has what -run, -bench or -fuzz
// names; a fuzz target or the 1M listing is one .ci/run runs.
func goTestCommand(t *testing.T, what string, f []string, ci string) {
	t.Helper()
	var pkg, pattern string
	for i, a := range f {
		switch {
		case strings.HasPrefix(a, "./"):
			pkg = a
		case (a == "-fuzz" || a == "-bench" || a == "-run") && i+1 < len(f) && f[i+1] != "^$":
			pattern = f[i+1]
		}
	}
	if pkg == "" || pattern == "" {
		t.Errorf("%s: no package or no test named", what)
		return
	}
	srcs, _ := filepath.Glob(filepath.Join(repoRoot, pkg, "*_test.go"))
	var all strings.Builder
	for _, s := range srcs {
		b, _ := os.ReadFile(s)
		all.Write(b)
	}
	fn := ""
	for _, alt := range strings.Split(pattern, "|") {
		fn = strings.Trim(strings.SplitN(alt, "/", 2)[0], "^$")
		name := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(fn, "Test"), "Benchmark"), "Fuzz")
		if !regexp.MustCompile(`func (Test|Benchmark|Fuzz)?` + regexp.QuoteMeta(name) + `\(`).MatchString(all.String()) {
			t.Errorf("%s: %s has no %s", what, pkg, fn)
		}
	}
	if strings.HasPrefix(fn, "Fuzz") && !strings.Contains(ci, "fuzz "+pkg+" "+fn) {
		t.Errorf("%s: .ci/run does not run the fuzz target %s", what, fn)
	}
	if fn == "TestTokensListMemory" && !strings.Contains(ci, "TestTokensListMemory") {
		t.Errorf("%s: .ci/run does not run it", what)
	}
}

// goRunExample: an example the docs run has its own test (make test runs
// it) that uses the flags shown.
func goRunExample(t *testing.T, what string, args []string) {
	t.Helper()
	dir := filepath.Join(repoRoot, args[0])
	srcs, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var all strings.Builder
	hasTest := false
	for _, s := range srcs {
		b, _ := os.ReadFile(s)
		all.Write(b)
		hasTest = hasTest || strings.HasSuffix(s, "_test.go")
	}
	if !hasTest {
		t.Errorf("%s: %s has no test", what, args[0])
	}
	for _, a := range args[1:] {
		if name, ok := strings.CutPrefix(a, "--"); ok && !strings.Contains(all.String(), `"`+name+`"`) {
			t.Errorf("%s: %s has no flag %s", what, args[0], a)
		}
	}
}

// useAsDependency: the README's way to use authdb from another module before
// a release: a replace directive to a clone beside it, go mod tidy, build.
func useAsDependency(t *testing.T) {
	t.Helper()
	abs, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(filepath.Dir(dir), "authdb")); err != nil {
		t.Fatal(err)
	}
	main := `package main

import (
	"context"
	"fmt"

	"github.com/authdb/authdb"
)

func main() {
	b, err := authdb.Open(context.Background(), "memory://")
	if err != nil {
		panic(err)
	}
	defer b.Close()
	fmt.Println("ok")
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	// Offline: the module cache has every dependency; the checksums are
	// authdb's own (no checksum database to ask here).
	sum, err := os.ReadFile(filepath.Join(abs, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOSUMDB=off"}
	for _, args := range [][]string{
		{"mod", "init", "example.com/app"},
		{"mod", "edit", "-replace", "github.com/authdb/authdb=../authdb"},
		{"mod", "tidy", "-e"}, // -e: offline, the test-only modules of dependencies are not in the cache
	} {
		if out, err := goTool(t, dir, env, args...); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every package the program needs resolves, authdb's from the clone
	// (go list: a full build of a new module path takes half a minute).
	out, err := goTool(t, dir, env, "list", "-e", "-deps", "-f", "{{.ImportPath}} {{.Dir}} {{with .Error}}ERROR {{.}}{{end}}", ".")
	if err != nil || strings.Contains(out, "ERROR") || !strings.Contains(out, "github.com/authdb/authdb "+filepath.Join(filepath.Dir(dir), "authdb")) {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
}
