package release

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func debName(t *testing.T, arch string) string {
	return "ldapmux_" + version(t) + "-1_" + arch + ".deb"
}

func TestDebCarriesUnitConfigAndUser(t *testing.T) {
	dist := snapshot(t)
	needCommand(t, "dpkg-deb")
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			deb := filepath.Join(dist, debName(t, arch))
			info := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends")
			for _, want := range []string{"Package: ldapmux", "Version: " + version(t) + "-1", "Architecture: " + arch, "Depends: passwd"} {
				if !strings.Contains(info, want) {
					t.Errorf("control lacks %q:\n%s", want, info)
				}
			}
			conffiles := run(t, "dpkg-deb", "-I", deb, "conffiles")
			if strings.TrimSpace(conffiles) != "/etc/ldapmux/ldapmux.yaml" {
				t.Errorf("conffiles = %q, want /etc/ldapmux/ldapmux.yaml", conffiles)
			}
			postinst := run(t, "dpkg-deb", "-I", deb, "postinst")
			for _, want := range []string{"useradd --system", "ldapmux", "chgrp ldapmux", "daemon-reload"} {
				if !strings.Contains(postinst, want) {
					t.Errorf("postinst lacks %q", want)
				}
			}
			if regexp.MustCompile(`systemctl (enable|start|restart) `).MatchString(postinst) {
				t.Errorf("postinst enables or starts the service:\n%s", postinst)
			}
			listing := run(t, "dpkg-deb", "-c", deb)
			for path, mode := range map[string]string{
				"./usr/bin/ldapmux":                        "-rwxr-xr-x",
				"./usr/lib/systemd/system/ldapmux.service": "-rw-r--r--",
				"./etc/ldapmux/ldapmux.yaml":               "-rw-r-----", // may hold the password
				"./etc/ldapmux/":                           "drwxr-x---",
				"./usr/share/doc/ldapmux/LICENSE":          "-rw-r--r--",
			} {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(mode) + ` root/root .* ` + regexp.QuoteMeta(path) + `$`).MatchString(listing) {
					t.Errorf("deb lacks %s with mode %s:\n%s", path, mode, listing)
				}
			}
		})
	}
}

// TestDebInstallsAndItsUnitVerifies unpacks the .deb of this machine's
// architecture into a directory standing for the root file system, with the
// system's own units beside it, and has systemd check the unit there.
func TestDebInstallsAndItsUnitVerifies(t *testing.T) {
	dist := snapshot(t)
	needCommand(t, "dpkg")
	analyze := needCommand(t, "systemd-analyze")
	if _, ok := elfMachine[runtime.GOARCH]; !ok {
		t.Skipf("no release for %s", runtime.GOARCH)
	}
	root := t.TempDir()
	run(t, "dpkg", "-x", filepath.Join(dist, debName(t, runtime.GOARCH)), root)
	// What the unit refers to outside the package: systemd's targets and kill.
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/"))
	run(t, "cp", "/bin/kill", filepath.Join(root, "usr/bin/kill"))
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(root, "usr/lib/systemd/system/ldapmux.service")
	out, err := runIn("", nil, analyze, "verify", "--root="+root, unit)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = runIn("", nil, analyze, "security", "--offline=yes", "--root="+root, "ldapmux.service")
	m := regexp.MustCompile(`Overall exposure level for ldapmux.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %.1f", score)
	if score > 2.0 {
		t.Errorf("systemd-analyze security: exposure %.1f, want at most 2.0 (OK):\n%s", score, out)
	}

	// The installed binary accepts the installed configuration once the
	// operator has put the service password beside it.
	etc := filepath.Join(root, "etc/ldapmux")
	if err := os.WriteFile(filepath.Join(etc, "service-password"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = run(t, filepath.Join(root, "usr/bin/ldapmux"), "check-config", "-config", filepath.Join(etc, "ldapmux.yaml"))
	if !strings.Contains(out, "valid") {
		t.Errorf("check-config: %s", out)
	}
}

func TestRPMCarriesUnitConfigAndUser(t *testing.T) {
	dist := snapshot(t)
	rpm := needCommand(t, "rpm")
	rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			pkg := filepath.Join(dist, "ldapmux-"+version(t)+"-1."+rpmArch[arch]+".rpm")
			info := run(t, rpm, "-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}\n", pkg)
			if want := "ldapmux " + version(t) + " 1 " + rpmArch[arch] + " Apache-2.0"; strings.TrimSpace(info) != want {
				t.Errorf("rpm header %q, want %q", info, want)
			}
			if cf := run(t, rpm, "-qp", "--configfiles", pkg); strings.TrimSpace(cf) != "/etc/ldapmux/ldapmux.yaml" {
				t.Errorf("config files %q", cf)
			}
			if !strings.Contains(run(t, rpm, "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", pkg), "cn /etc/ldapmux/ldapmux.yaml") {
				t.Errorf("/etc/ldapmux/ldapmux.yaml is not %%config(noreplace)")
			}
			listing := run(t, rpm, "-qlvp", pkg)
			for path, mode := range map[string]string{
				"/usr/bin/ldapmux":                        "-rwxr-xr-x",
				"/usr/lib/systemd/system/ldapmux.service": "-rw-r--r--",
				"/etc/ldapmux/ldapmux.yaml":               "-rw-r-----",
			} {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(mode) + ` .* ` + regexp.QuoteMeta(path) + `$`).MatchString(listing) {
					t.Errorf("rpm lacks %s with mode %s:\n%s", path, mode, listing)
				}
			}
			scripts := run(t, rpm, "-qp", "--scripts", pkg)
			if !strings.Contains(scripts, "useradd --system") || !strings.Contains(scripts, "postinstall scriptlet") {
				t.Errorf("rpm scripts do not create the user:\n%s", scripts)
			}
			if !strings.Contains(run(t, rpm, "-qpR", pkg), "shadow-utils") {
				t.Errorf("rpm does not require shadow-utils (useradd)")
			}
		})
	}
}
