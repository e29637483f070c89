package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// installScript installs the .deb for real with dpkg, in a chroot whose
// root is a copy-on-write overlay of this machine's (in a mount namespace
// of its own, so nothing reaches the host), and reports what it finds.
const installScript = `set -eu
root=$1 upper=$2 work=$3 deb=$4
mount -t overlay overlay -o "lowerdir=/,upperdir=$upper,workdir=$work" "$root"
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/ldapmux.deb"
inroot() { chroot "$root" "$@"; }
inroot dpkg -i /tmp/ldapmux.deb >/dev/null
echo "user: $(inroot getent passwd ldapmux)"
echo "config: $(inroot stat -c '%U:%G %a' /etc/ldapmux /etc/ldapmux/ldapmux.yaml | tr '\n' ' ')"
printf 'secret\n' > "$root/etc/ldapmux/service-password"
inroot chgrp ldapmux /etc/ldapmux/service-password
chmod 0640 "$root/etc/ldapmux/service-password"
echo "check-config as ldapmux: $(inroot setpriv --reuid=ldapmux --regid=ldapmux --init-groups /usr/bin/ldapmux check-config -config /etc/ldapmux/ldapmux.yaml 2>&1)"
echo "verify: [$(systemd-analyze verify --root="$root" "$root/usr/lib/systemd/system/ldapmux.service" 2>&1)]"
echo '# a local edit' >> "$root/etc/ldapmux/ldapmux.yaml"
inroot dpkg -i /tmp/ldapmux.deb >/dev/null </dev/null
echo "upgrade kept the edit: $(grep -c '^# a local edit$' "$root/etc/ldapmux/ldapmux.yaml")"
inroot dpkg --purge ldapmux >/dev/null
echo "purged: $(test -e "$root/usr/bin/ldapmux" || test -e "$root/etc/ldapmux/ldapmux.yaml" || echo yes)"
`

// rpmInstallScript does the same with the .rpm and rpm (Debian's, with a
// fresh database: dependencies such as shadow-utils are Fedora's names).
const rpmInstallScript = `set -eu
root=$1 upper=$2 work=$3 rpm=$4
mount -t overlay overlay -o "lowerdir=/,upperdir=$upper,workdir=$work" "$root"
mount -t proc proc "$root/proc"
cp "$rpm" "$root/tmp/ldapmux.rpm"
inroot() { chroot "$root" "$@"; }
inroot rpm --initdb
inroot rpm -i --nodeps /tmp/ldapmux.rpm 2>/dev/null
echo "user: $(inroot getent passwd ldapmux)"
echo "config: $(inroot stat -c '%U:%G %a' /etc/ldapmux /etc/ldapmux/ldapmux.yaml | tr '\n' ' ')"
printf 'secret\n' > "$root/etc/ldapmux/service-password"
chmod 0644 "$root/etc/ldapmux/service-password"
echo "check-config as ldapmux: $(inroot setpriv --reuid=ldapmux --regid=ldapmux --init-groups /usr/bin/ldapmux check-config -config /etc/ldapmux/ldapmux.yaml 2>&1)"
inroot rpm -e ldapmux 2>/dev/null
echo "erased: $(test -e "$root/usr/bin/ldapmux" || echo yes)"
`

// TestDebInstallsForReal installs, reinstalls over an edited configuration
// and purges the .deb with dpkg in an overlay of this machine's root: the
// postinst creates the user, the configuration is readable by it (and
// by nobody else), the unit verifies, a local edit survives.
func TestDebInstallsForReal(t *testing.T) {
	dist := snapshot(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount namespace, overlay, chroot)")
	}
	for _, tool := range []string{"unshare", "dpkg", "setpriv", "systemd-analyze"} {
		needCommand(t, tool)
	}
	if _, ok := elfMachine[runtime.GOARCH]; !ok {
		t.Skipf("no release for %s", runtime.GOARCH)
	}
	out := inOverlay(t, installScript, filepath.Join(dist, debName(t, runtime.GOARCH)))
	for _, want := range []string{
		"user: ldapmux:x:",
		":/var/lib/ldapmux:/usr/sbin/nologin",
		"config: root:ldapmux 750 root:ldapmux 640 ",
		"check-config as ldapmux: /etc/ldapmux/ldapmux.yaml: valid",
		"verify: []",
		"upgrade kept the edit: 1",
		"purged: yes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install lacks %q", want)
		}
	}
}

func TestRPMInstallsForReal(t *testing.T) {
	dist := snapshot(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount namespace, overlay, chroot)")
	}
	for _, tool := range []string{"unshare", "rpm", "setpriv"} {
		needCommand(t, tool)
	}
	rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if rpmArch == "" {
		t.Skipf("no release for %s", runtime.GOARCH)
	}
	out := inOverlay(t, rpmInstallScript, filepath.Join(dist, "ldapmux-"+version(t)+"-1."+rpmArch+".rpm"))
	for _, want := range []string{
		"user: ldapmux:x:",
		"config: root:ldapmux 750 root:ldapmux 640 ",
		"check-config as ldapmux: /etc/ldapmux/ldapmux.yaml: valid",
		"erased: yes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install lacks %q", want)
		}
	}
}

// inOverlay runs script in a mount namespace of its own with the arguments
// ROOT UPPER WORK PACKAGE and returns its output.
func inOverlay(t *testing.T, script, pkg string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"root", "upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
		filepath.Join(dir, "root"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), pkg).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "user:") && strings.Contains(string(out), "mount") {
		t.Skipf("no overlay mount here: %v\n%s", err, out)
	}
	if err != nil {
		t.Fatalf("install script: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	return string(out)
}
