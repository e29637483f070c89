// Package buildinfo says which ldapmux this is: its version, the source
// revision it was built from and the Go toolchain that built it.
//
// Release builds set Version and Revision with the linker:
//
//	go build -ldflags "-X github.com/ldapmux/ldapmux/internal/buildinfo.Version=1.2.3 \
//	    -X github.com/ldapmux/ldapmux/internal/buildinfo.Revision=abcdef0"
//
// Without them, the module version and VCS stamp Go records in the binary
// are used ("devel" and the checkout's commit for a plain go build).
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker in release builds; empty otherwise.
var (
	Version  string
	Revision string
)

// Info describes one build.
type Info struct {
	Version   string // semantic version without a leading "v", or "devel"
	Revision  string // VCS commit, "unknown" when not recorded
	Modified  bool   // built from a checkout with uncommitted changes
	GoVersion string
}

// Get returns this binary's build information.
func Get() Info {
	info := Info{Version: Version, Revision: Revision, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Revision == "" {
					info.Revision = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	info.Version = strings.TrimPrefix(info.Version, "v")
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Revision == "" {
		info.Revision = "unknown"
	}
	return info
}

// String is the one-line form `ldapmux version` prints.
func (i Info) String() string {
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if i.Modified {
		rev += "-dirty"
	}
	return "ldapmux " + i.Version + " (" + rev + ", " + i.GoVersion + ")"
}
