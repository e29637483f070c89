package release

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// extractTarGz unpacks a .tar.gz into dir and returns the names it held.
func extractTarGz(t *testing.T, archive, dir string) []string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", archive, err)
	}
	return extractTar(t, gz, dir)
}

// extractTar unpacks regular files, directories and symbolic links of a tar
// stream into dir (names are cleaned and kept below dir).
func extractTar(t *testing.T, r io.Reader, dir string) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean("/" + h.Name)[1:]
		names = append(names, name)
		dst := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			w.Close()
		case tar.TypeSymlink:
			os.Remove(dst)
			if err := os.Symlink(h.Linkname, dst); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestArchivesHoldStaticBinaryAndDocs(t *testing.T) {
	dist := snapshot(t)
	v := version(t)
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			name := "ldapmux_" + v + "_linux_" + arch
			dir := t.TempDir()
			names := extractTarGz(t, filepath.Join(dist, name+".tar.gz"), dir)
			sort.Strings(names)
			want := []string{"CHANGELOG.md", "LICENSE", "NOTICE", "README.md", "config/example.yaml",
				"config/ldapmux.yaml", "ldapmux", "systemd/ldapmux.service"}
			for _, w := range want {
				if !contains(names, name+"/"+w) {
					t.Errorf("%s.tar.gz lacks %s (has %v)", name, w, names)
				}
			}
			bin := filepath.Join(dir, name, "ldapmux")
			checkStaticBinary(t, bin, arch)
			checkStamp(t, bin)
			if arch == runtime.GOARCH {
				checkVersionCommand(t, bin)
				// The bundled configuration is valid once its password file exists.
				cfgDir := filepath.Join(dir, name, "config")
				if err := os.WriteFile(filepath.Join(cfgDir, "service-password"), []byte("secret\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				out := run(t, bin, "check-config", "-config", filepath.Join(cfgDir, "ldapmux.yaml"))
				if !strings.Contains(out, "valid") {
					t.Errorf("check-config: %s", out)
				}
			}
		})
	}
}

func TestChecksumsCoverEveryArtifact(t *testing.T) {
	dist := snapshot(t)
	f, err := os.Open(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS: malformed line %q", sc.Text())
		}
		data, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("SHA256SUMS: %s does not match", name)
		}
		listed[name] = true
	}
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "SHA256SUMS" {
			continue
		}
		if !listed[e.Name()] {
			t.Errorf("SHA256SUMS does not list %s", e.Name())
		}
		for _, ext := range []string{".tar.gz", ".deb", ".rpm", ".cdx.json", ".oci.tar"} {
			if strings.HasSuffix(e.Name(), ext) {
				kinds[ext]++
			}
		}
	}
	want := map[string]int{".tar.gz": 2, ".deb": 2, ".rpm": 2, ".cdx.json": 2, ".oci.tar": 2}
	if build.noImage {
		want[".oci.tar"] = 0
	}
	for ext, n := range want {
		if kinds[ext] != n {
			t.Errorf("dist has %d %s files, want %d", kinds[ext], ext, n)
		}
	}
}

func TestSBOMListsTheModules(t *testing.T) {
	dist := snapshot(t)
	for _, arch := range arches {
		data, err := os.ReadFile(filepath.Join(dist, "ldapmux_"+version(t)+"_linux_"+arch+".cdx.json"))
		if err != nil {
			t.Fatal(err)
		}
		var bom struct {
			BOMFormat string `json:"bomFormat"`
			Metadata  struct {
				Component struct{ Name, Version string } `json:"component"`
			} `json:"metadata"`
			Components []struct{ Name, Version, Purl string } `json:"components"`
		}
		if err := json.Unmarshal(data, &bom); err != nil {
			t.Fatalf("SBOM %s: %v", arch, err)
		}
		if bom.BOMFormat != "CycloneDX" || bom.Metadata.Component.Name != modulePath ||
			bom.Metadata.Component.Version != "v"+version(t) {
			t.Errorf("SBOM %s: format %q, component %+v", arch, bom.BOMFormat, bom.Metadata.Component)
		}
		var names []string
		for _, c := range bom.Components {
			names = append(names, c.Name)
		}
		for _, want := range []string{"github.com/go-ldap/ldap/v3", "github.com/prometheus/client_golang", "go.yaml.in/yaml/v3"} {
			if !contains(names, want) {
				t.Errorf("SBOM %s lacks %s (has %v)", arch, want, names)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
