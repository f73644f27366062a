package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/bidder/bidder", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs.revision", Value: "3f9c2e1a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4"},
			{Key: "vcs.time", Value: "2026-11-30T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	i := FromBuildInfo(bi, "")
	want := "bidder dev\n" +
		"commit:      3f9c2e1a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4 (with uncommitted changes)\n" +
		"commit time: 2026-11-30T12:00:00Z\n" +
		"go:          go1.26.8 linux/arm64\n"
	if got := i.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := i.Short(); got != "dev (3f9c2e1a7b8c, modified)" {
		t.Fatal(got)
	}

	bi.Main.Version = "v1.4.0"
	bi.Settings = nil
	if i := FromBuildInfo(bi, ""); i.Version != "v1.4.0" || i.Short() != "v1.4.0" || !strings.Contains(i.String(), "commit:      unknown") {
		t.Fatalf("%+v\n%s", i, i.String())
	}
	if i := FromBuildInfo(bi, "v9.9.9"); i.Version != "v9.9.9" {
		t.Fatalf("the -ldflags version must win: %+v", i)
	}
	if i := FromBuildInfo(nil, ""); i.Version != "dev" || i.GoVersion != runtime.Version() {
		t.Fatalf("no build info: %+v", i)
	}
}
