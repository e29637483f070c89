package release

import (
	"compress/gzip"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

type ociDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
}

// ociImage unpacks an OCI archive and returns its image configuration and
// the root file system its layers make.
func ociImage(t *testing.T, archive string) (imageConfig, string) {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	extractTar(t, f, dir)

	blob := func(d ociDescriptor) string {
		algo, hex, _ := strings.Cut(d.Digest, ":")
		return filepath.Join(dir, "blobs", algo, hex)
	}
	readJSON := func(path string, v any) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var index struct{ Manifests []ociDescriptor }
	readJSON(filepath.Join(dir, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json: %d manifests, want 1", len(index.Manifests))
	}
	var manifest struct {
		Config ociDescriptor
		Layers []ociDescriptor
	}
	readJSON(blob(index.Manifests[0]), &manifest)
	var cfg imageConfig
	readJSON(blob(manifest.Config), &cfg)

	rootfs := filepath.Join(dir, "rootfs")
	for _, layer := range manifest.Layers {
		lf, err := os.Open(blob(layer))
		if err != nil {
			t.Fatal(err)
		}
		gz, err := gzip.NewReader(lf)
		if err != nil {
			t.Fatalf("layer %s: %v", layer.Digest, err)
		}
		extractTar(t, gz, rootfs)
		lf.Close()
	}
	return cfg, rootfs
}

type imageConfig struct {
	Architecture string
	OS           string
	Config       struct {
		User         string
		ExposedPorts map[string]struct{}
		Entrypoint   []string
		Cmd          []string
		Labels       map[string]string
	} `json:"config"`
}

func TestImageIsNonRootStaticWithCACertificates(t *testing.T) {
	dist := snapshot(t)
	if build.noImage {
		missing(t, "buildah", exec.ErrNotFound)
	}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			cfg, rootfs := ociImage(t, filepath.Join(dist, "ldapmux_"+version(t)+"_linux_"+arch+".oci.tar"))
			c := cfg.Config
			if cfg.Architecture != arch || cfg.OS != "linux" {
				t.Errorf("image is %s/%s, want linux/%s", cfg.OS, cfg.Architecture, arch)
			}
			if c.User != "65532:65532" {
				t.Errorf("image user %q, want 65532:65532 (numeric, non-root)", c.User)
			}
			for _, p := range []string{"389/tcp", "8389/tcp"} {
				if _, ok := c.ExposedPorts[p]; !ok {
					t.Errorf("image does not expose %s (%v)", p, c.ExposedPorts)
				}
			}
			if strings.Join(append(c.Entrypoint, c.Cmd...), " ") != "/usr/bin/ldapmux serve -config /etc/ldapmux/ldapmux.yaml" {
				t.Errorf("image runs %v %v", c.Entrypoint, c.Cmd)
			}
			if c.Labels["org.opencontainers.image.version"] != version(t) {
				t.Errorf("image version label %q", c.Labels["org.opencontainers.image.version"])
			}

			passwd, err := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
			if err != nil || !strings.Contains(string(passwd), ":x:65532:65532:") {
				t.Errorf("etc/passwd has no entry for 65532: %v\n%s", err, passwd)
			}
			pem, err := os.ReadFile(filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt"))
			if err != nil {
				t.Fatalf("CA certificates: %v", err)
			}
			if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(pem) || strings.Count(string(pem), "BEGIN CERTIFICATE") < 50 {
				t.Errorf("CA bundle holds %d certificates", strings.Count(string(pem), "BEGIN CERTIFICATE"))
			}
			bin := filepath.Join(rootfs, "usr/bin/ldapmux")
			checkStaticBinary(t, bin, arch)
			if arch == runtime.GOARCH {
				checkImageRuns(t, rootfs)
				if os.Geteuid() == 0 {
					checkImageServes(t, rootfs)
				}
			}
		})
	}
}

// checkImageRuns runs the image's binary on the image's configuration: as
// root, inside the image's file system as its user 65532 (what a container
// runtime does); otherwise from outside, on the same files.
func checkImageRuns(t *testing.T, rootfs string) {
	t.Helper()
	bin, config := "/usr/bin/ldapmux", "/etc/ldapmux/ldapmux.yaml"
	cmd := exec.Command(bin, "check-config", "-config", config)
	cmd.Env = []string{"LDAPMUX_SERVICE_PASSWORD=secret"}
	if os.Geteuid() == 0 {
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
	} else {
		cmd.Path = filepath.Join(rootfs, bin)
		cmd.Args[3] = filepath.Join(rootfs, config)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid") {
		t.Errorf("%s check-config in the image: %v\n%s", bin, err, out)
	}
}

// checkImageServes runs `ldapmux serve` inside the image's file system as
// its user 65532, with nothing from the host, and checks that it answers
// /healthz and stops cleanly on SIGTERM. The configuration is the image's
// with loopback addresses: the host does not let an unprivileged process
// bind port 389 as a container's network namespace does.
func checkImageServes(t *testing.T, rootfs string) {
	t.Helper()
	var (
		cmd  *exec.Cmd
		done chan error
		out  *strings.Builder
	)
	// The admin port is picked free, then bound by the proxy: another
	// process may take it in between, so a start that finds it taken is
	// tried again on another port.
	for attempt := 1; ; attempt++ {
		var taken bool
		cmd, done, out, taken = serveInImage(t, rootfs)
		if !taken {
			break
		}
		if attempt == 5 {
			t.Fatalf("ldapmux serve in the image found its admin port taken 5 times\n%s", out.String())
		}
	}
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("ldapmux serve after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("ldapmux serve did not stop within 20s of SIGTERM\n%s", out.String())
	}
}

// serveInImage starts `ldapmux serve` in the image's file system as user
// 65532 and waits until it answers /healthz. It reports taken, with the
// process ended, when the admin port it picked was taken meanwhile.
func serveInImage(t *testing.T, rootfs string) (cmd *exec.Cmd, done chan error, out *strings.Builder, taken bool) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("listen: [{address: \"127.0.0.1:0\"}]\nservers: [{name: ds, address: \"127.0.0.1:1\"}]\n"+
		"service-account: {bind-dn: \"cn=ldapmux\", password-env: LDAPMUX_SERVICE_PASSWORD}\nadmin: {address: %q}\n", admin)
	if err := os.WriteFile(filepath.Join(rootfs, "tmp/serve.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("/usr/bin/ldapmux", "serve", "-config", "/tmp/serve.yaml")
	cmd.Env = []string{"LDAPMUX_SERVICE_PASSWORD=secret"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
	out = new(strings.Builder)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				cmd.Process.Kill()
				<-done
				t.Fatalf("/healthz: %s", resp.Status)
			}
			return cmd, done, out, false
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("ldapmux serve in the image did not answer /healthz within 15s: %v\n%s", err, out.String())
		}
		select {
		case err := <-done:
			if strings.Contains(out.String(), "address already in use") {
				return cmd, done, out, true
			}
			t.Fatalf("ldapmux serve in the image exited: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
