package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

const versionUsage = `Usage: authdb version

Prints the module version of this binary and the VCS revision it was built
from (runtime/debug.ReadBuildInfo). A binary built from a clone says
"(devel)"; one installed with 'go install ...@vX.Y.Z' says vX.Y.Z.
`

// runVersion prints "authdb VERSION (revision REV[, modified], GOVERSION)".
func runVersion(_ context.Context, a *app, args []string) error {
	fs := a.newFlagSet("version", versionUsage)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, versionLine())
	return nil
}

// versionLine describes the build: module version, VCS revision and time
// when the build recorded them (go build without -buildvcs=false, in a
// checkout), Go version.
func versionLine() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "authdb (no build information)"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, when, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	vcs := "revision unknown (built outside a git checkout or with -buildvcs=false)"
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		vcs = "revision " + rev
		if when != "" {
			vcs += " of " + when
		}
		vcs += modified
	}
	return fmt.Sprintf("authdb %s (%s, %s)", version, vcs, info.GoVersion)
}
