package buildinfo

import (
	"strings"
	"testing"
)

func TestLinkerValuesWin(t *testing.T) {
	oldV, oldR := Version, Revision
	t.Cleanup(func() { Version, Revision = oldV, oldR })
	Version, Revision = "v1.2.3", "0123456789abcdef"
	info := Get()
	if info.Version != "1.2.3" || info.Revision != "0123456789abcdef" {
		t.Fatalf("Get() = %+v", info)
	}
	if s := info.String(); !strings.HasPrefix(s, "ldapmux 1.2.3 (0123456789ab") {
		t.Fatalf("String() = %q", s)
	}
}

func TestDefaultsWithoutLinkerValues(t *testing.T) {
	oldV, oldR := Version, Revision
	t.Cleanup(func() { Version, Revision = oldV, oldR })
	Version, Revision = "", ""
	info := Get()
	if info.Version == "" || info.Revision == "" || !strings.HasPrefix(info.GoVersion, "go") {
		t.Fatalf("Get() = %+v", info)
	}
}
