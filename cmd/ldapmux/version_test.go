package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ldapmux/ldapmux/internal/buildinfo"
)

func TestVersionCommand(t *testing.T) {
	want := buildinfo.Get().String() + "\n"
	for _, arg := range []string{"version", "-version", "--version"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{arg}, &stdout, &stderr); code != 0 || stdout.String() != want {
			t.Errorf("ldapmux %s: exit %d, output %q, want %q (stderr %q)", arg, code, stdout.String(), want, stderr.String())
		}
	}
}

// TestHelpExitsZero: -h of every command prints its flags and exits 0.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"serve", "reload", "status", "check-config", "demo", "bench"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{cmd, "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-") {
			t.Errorf("ldapmux %s -h: exit %d, output %q", cmd, code, stderr.String())
		}
	}
}

// goTool is the go command of the toolchain running the tests.
func goTool(t *testing.T) string {
	t.Helper()
	path := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("go command not found at %s: %v", path, err)
	}
	return path
}

// TestBinaryLinksNoTestCode guards that the production binary does not
// link package testing or the test helpers (through the demo, say).
func TestBinaryLinksNoTestCode(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed only %d packages: %v", len(deps), deps)
	}
	for _, p := range deps {
		if p == "testing" || strings.HasPrefix(p, "testing/") ||
			strings.HasPrefix(p, "github.com/ldapmux/ldapmux/internal/") && strings.HasSuffix(p, "test") ||
			p == "github.com/ldapmux/ldapmux/internal/fakeldap" || p == "github.com/ldapmux/ldapmux/internal/testcert" {
			t.Errorf("cmd/ldapmux links %s", p)
		}
	}
}

// TestReleaseVersion builds the binary the way release builds do (version
// and revision set by the linker) and runs `ldapmux version`.
func TestReleaseVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ldapmux")
	const pkg = "github.com/ldapmux/ldapmux/internal/buildinfo"
	build := exec.Command(goTool(t), "build", "-o", bin, "-ldflags", "-X "+pkg+".Version=9.8.7 -X "+pkg+".Revision=0123456789abcdef", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ldapmux 9.8.7 (0123456789ab, go") {
		t.Fatalf("ldapmux version: %v, %q", err, out)
	}
}
