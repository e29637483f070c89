package release

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const modulePath = "github.com/ldapmux/ldapmux"

// arches are the architectures of a release.
var arches = []string{"amd64", "arm64"}

var (
	tmpRoot string // removed when the tests end

	buildOnce sync.Once
	build     struct {
		dist    string
		noImage bool
		err     error
	}
)

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "ldapmux-release-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// version is the release version, from the VERSION file.
func version(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// missing skips the test when a tool it needs is not installed, unless CI is
// set: there scripts/install-deps.sh --with-release must have installed it.
func missing(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: %v (CI: scripts/install-deps.sh --with-release and scripts/tools.sh install it)", what, err)
	}
	t.Skipf("%s: %v", what, err)
}

// needCommand skips (or fails under CI) without the named command.
func needCommand(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, name, err)
	}
	return path
}

// tool returns the path of a pinned Go tool, installing it with
// scripts/tools.sh when needed.
func tool(t testing.TB, name string) string {
	t.Helper()
	out, err := runIn(repoRoot(t), nil, "scripts/tools.sh", name)
	if err != nil {
		missing(t, name, fmt.Errorf("scripts/tools.sh %s: %v\n%s", name, err, out))
	}
	return filepath.Join(strings.TrimSpace(lastLine(out)), name)
}

// snapshot runs scripts/release.sh once per test binary and returns its
// output directory; without buildah (outside CI) the image is left out.
func snapshot(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		build.dist = filepath.Join(tmpRoot, "dist")
		args := []string{}
		if _, err := exec.LookPath("buildah"); err != nil && os.Getenv("CI") == "" {
			build.noImage = true
			args = append(args, "--no-image")
		}
		out, err := runIn(repoRoot(t), []string{"DIST=" + build.dist}, "scripts/release.sh", args...)
		if err != nil {
			build.err = fmt.Errorf("scripts/release.sh: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.dist
}

// runIn runs a command in dir with extra environment variables and returns
// its combined output.
func runIn(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// run runs a command and fails the test unless it succeeds.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := runIn("", nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// elfMachine is the ELF machine of each release architecture.
var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkStaticBinary checks that path is a stripped, statically linked
// Linux executable for arch.
func checkStaticBinary(t *testing.T, path, arch string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != elfMachine[arch] {
		t.Errorf("%s: machine %v, want %v", path, f.Machine, elfMachine[arch])
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: has a program interpreter: dynamically linked", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: links shared libraries %v", path, libs)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: has a symbol table: not stripped", path)
	}
}

// checkStamp checks, from the build information Go records, that the
// binary was built static and trimmed, and that the linker stamped the
// commit it was built from (-trimpath leaves -ldflags out of that record).
func checkStamp(t *testing.T, path string) {
	t.Helper()
	out := run(t, "go", "version", "-m", path)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("go version -m %s lacks %q:\n%s", path, want, out)
		}
	}
	deps, err := runIn(repoRoot(t), nil, "go", "list", "-deps", "./cmd/ldapmux")
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, deps)
	}
	if !strings.Contains(deps, modulePath+"/internal/buildinfo\n") {
		t.Logf("ldapmux does not link internal/buildinfo: no stamp to look for")
		return
	}
	rev, err := runIn(repoRoot(t), nil, "git", "rev-parse", "--short=12", "HEAD")
	if err != nil {
		t.Logf("no git revision to look for: %v", err)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(strings.TrimSpace(rev))) {
		t.Errorf("%s does not hold its revision %s", path, strings.TrimSpace(rev))
	}
}

// checkVersionCommand runs `ldapmux version` where the binary has that
// command and checks that it prints the release version.
func checkVersionCommand(t *testing.T, path string) {
	t.Helper()
	help := run(t, path, "help")
	if !strings.Contains(help, "\n  version") {
		t.Logf("%s has no version command; the version was checked with go version -m", path)
		return
	}
	out := run(t, path, "version")
	if !strings.Contains(out, version(t)) {
		t.Errorf("ldapmux version = %q, want it to contain %s", out, version(t))
	}
}
