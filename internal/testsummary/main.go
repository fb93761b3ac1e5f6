// Command testsummary reads `go test -json` on stdin, prints what plain
// `go test` would (the package lines, and the whole output of every test that
// fails, race reports included; build errors), and ends with one line: how
// many tests ran, and, when some were skipped, which engines were missing,
// why, and how to enable them. Its exit status is 1 when any test or package
// failed. make test pipes into it:
//
//	go test -race -count=1 -json ./... | go run ./internal/testsummary
//
// A skip for a missing server is recognised by the message of package
// internal/testdb: "testdb: no ENGINE server (WHY): HOW".
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

func main() {
	failed, err := summarise(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output events
}

// skipRE matches internal/testdb's skip message.
var skipRE = regexp.MustCompile(`testdb: no (\w+) server \((.*)\): (.*)$`)

type engineSkips struct {
	n        int
	why, how string
}

// summarise copies the interesting part of the stream r to w, then the
// summary line; it reports whether anything failed.
func summarise(r io.Reader, w io.Writer) (failed bool, err error) {
	type key struct{ pkg, test string }
	outputs := map[key][]string{}
	var passed, failedN, skipped int
	engines := map[string]*engineSkips{}
	var otherSkips []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if json.Unmarshal(line, &ev) != nil || ev.Action == "" {
			fmt.Fprintf(w, "%s\n", line) // not JSON: go's own errors
			continue
		}
		k := key{ev.Package, ev.Test}
		switch ev.Action {
		case "build-output":
			fmt.Fprint(w, ev.Output)
		case "build-fail":
			failed = true
		case "output":
			if ev.Test == "" {
				if ev.Output != "PASS\n" {
					fmt.Fprint(w, ev.Output)
				}
				continue
			}
			outputs[k] = append(outputs[k], ev.Output)
		case "pass":
			if ev.Test != "" {
				passed++
			}
			delete(outputs, k)
		case "fail":
			failed = true
			if ev.Test == "" {
				// A package that fails with tests still open (a timeout, a
				// panic): their output says why.
				for ok, o := range outputs {
					if ok.pkg == ev.Package {
						fmt.Fprint(w, strings.Join(o, ""))
						delete(outputs, ok)
					}
				}
				continue
			}
			failedN++
			for _, o := range outputs[k] {
				if !strings.HasPrefix(strings.TrimSpace(o), "=== ") {
					fmt.Fprint(w, o)
				}
			}
			delete(outputs, k)
		case "skip":
			if ev.Test == "" {
				continue
			}
			skipped++
			found := false
			for _, o := range outputs[k] {
				if m := skipRE.FindStringSubmatch(strings.TrimSpace(o)); m != nil {
					s := engines[m[1]]
					if s == nil {
						s = &engineSkips{why: m[2], how: m[3]}
						engines[m[1]] = s
					}
					s.n++
					found = true
					break
				}
			}
			if !found {
				otherSkips = append(otherSkips, ev.Package+" "+ev.Test)
			}
			delete(outputs, k)
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	ran := passed + failedN
	line := fmt.Sprintf("make test: %d tests ran (%d passed, %d failed), %d skipped", ran, passed, failedN, skipped)
	var parts []string
	names := make([]string, 0, len(engines))
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := engines[n]
		parts = append(parts, fmt.Sprintf("%s: %d (%s; to run them: %s)", n, s.n, s.why, s.how))
	}
	if len(otherSkips) > 0 {
		ex := otherSkips
		if len(ex) > 3 {
			ex = ex[:3]
		}
		parts = append(parts, fmt.Sprintf("%d not for a server (e.g. %s; see go test -v for why)", len(otherSkips), strings.Join(ex, ", ")))
	}
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, "; ")
	}
	fmt.Fprintln(w, line)
	return failed, nil
}
