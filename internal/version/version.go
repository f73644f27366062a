// Package version says which build of bidder is running, from what the Go
// toolchain stamps into every binary (runtime/debug.ReadBuildInfo): the
// module version, the commit and its time, whether the tree was modified,
// and the Go version. Nothing has to be passed at build time; -ldflags
// "-X main.version=v1.2.3" still names a release.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is one build's identity.
type Info struct {
	Version    string // v1.2.3, or "dev" for a build from a checkout
	Commit     string // vcs.revision, "" when not built from a VCS checkout
	CommitTime string // vcs.time (RFC 3339): when the commit was made
	Modified   bool   // built with uncommitted changes
	GoVersion  string
	Platform   string // GOOS/GOARCH
}

// Read returns this binary's Info. override, when set (-ldflags -X), is
// the version; otherwise the module version, which is "(devel)" for a
// build from a checkout and the tag for `go install ...@v1.2.3`.
func Read(override string) Info {
	bi, _ := debug.ReadBuildInfo()
	return FromBuildInfo(bi, override)
}

// FromBuildInfo is Read for a given build info (nil: none available).
func FromBuildInfo(bi *debug.BuildInfo, override string) Info {
	i := Info{Version: override, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if i.Version == "" {
			i.Version = "dev"
		}
		return i
	}
	if bi.GoVersion != "" {
		i.GoVersion = bi.GoVersion
	}
	if i.Version == "" {
		i.Version = bi.Main.Version
	}
	if i.Version == "" || i.Version == "(devel)" {
		i.Version = "dev"
	}
	goos, goarch := runtime.GOOS, runtime.GOARCH
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Commit = s.Value
		case "vcs.time":
			i.CommitTime = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	i.Platform = goos + "/" + goarch
	return i
}

// Short is the version with a short commit: "v1.2.3", "dev (3f9c2e1)",
// "dev (3f9c2e1, modified)"; for log lines and the status page.
func (i Info) Short() string {
	if i.Commit == "" {
		return i.Version
	}
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if i.Modified {
		c += ", modified"
	}
	return fmt.Sprintf("%s (%s)", i.Version, c)
}

// String is what `bidder version` and `bidder --version` print.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bidder %s\n", i.Version)
	commit, when := i.Commit, i.CommitTime
	if commit == "" {
		commit = "unknown (not built from a git checkout)"
	} else if i.Modified {
		commit += " (with uncommitted changes)"
	}
	fmt.Fprintf(&b, "commit:      %s\n", commit)
	if when != "" {
		fmt.Fprintf(&b, "commit time: %s\n", when)
	}
	fmt.Fprintf(&b, "go:          %s %s\n", i.GoVersion, i.Platform)
	return b.String()
}
