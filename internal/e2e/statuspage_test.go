package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/buildinfo"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// chromiumPath finds Debian's chromium. Outside CI a missing browser skips
// the test; in CI (CI=true) it fails it.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: run `make test` (scripts/install-deps.sh installs Debian's chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium, or run `make test`): skipping the browser test")
	return ""
}

// headless runs chromium on url with the page's timers given budget of
// virtual time, and returns its standard output.
func headless(t *testing.T, bin, url string, budget time.Duration, extra ...string) string {
	t.Helper()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,900", "--hide-scrollbars",
		fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds())}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append(args, extra...), url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// serverState reads the state a server card shows in a dumped DOM.
func serverState(dom, name string) string {
	m := regexp.MustCompile(`<article class="server" data-server="` + regexp.QuoteMeta(name) + `" data-state="(\w+)"`).FindStringSubmatch(dom)
	if m == nil {
		return ""
	}
	return m[1]
}

// statusPageConfig places the two replicas in two locations and spreads
// reads over both.
func statusPageConfig(c *slapdtest.Cluster) string {
	return fmt.Sprintf(`listen:
  - address: 127.0.0.1:0
servers:
  - {name: ds1, address: %s, location: paris}
  - {name: ds2, address: %s, location: lyon}
service-account:
  bind-dn: %s
  password: %s
algorithms:
  reads: {type: fewest-operations, servers: [ds1, ds2]}
  writes: {type: failover, servers: [ds1, ds2]}
routes:
  - match: {operations: [write]}
    algorithm: writes
  - algorithm: reads
use-location: false
health-check-frequency: 250ms
%s%s`, c.Replicas[0].Addr, c.Replicas[1].Addr, slapdtest.ServiceDN, slapdtest.ServicePassword, failoverPool, adminExtra)
}

// TestStatusPageInBrowser loads the status page in headless chromium: it
// shows each server's state, and shows the change when a server is killed.
// With LDAPMUX_SCREENSHOT=docs/status-page.png it also saves a screenshot
// (the path is relative to the module root).
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromiumPath(t)
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 20})
	a, _ := startProxyFile(t, statusPageConfig(cluster), nil)
	url := "http://" + a.AdminAddr() + "/"
	load := startReadLoad(t, a.Addrs()[0], 6)
	load.waitOps(t, 200)
	waitSamples(t, a, 3)

	dom := headless(t, bin, url, 3*time.Second, "--dump-dom")
	for _, name := range []string{"ds1", "ds2"} {
		if st := serverState(dom, name); st != "available" {
			t.Errorf("before the kill, the page shows %s as %q, want available", name, st)
		}
	}
	version := `<span id="version" class="muted version" title="revision ` + buildinfo.Get().Revision
	for _, want := range []string{`data-ready="true"`, `data-location="paris"`, `data-location="lyon"`, ">reads<", ">fewest-operations<", version} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %s:\n%s", want, dom)
		}
	}

	if err := cluster.Replicas[1].Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "ds2 unavailable", func() bool {
		return a.Registry().Snapshot().Servers[1].Health.State == backend.Unavailable
	})
	dom = headless(t, bin, url, 3*time.Second, "--dump-dom")
	if st := serverState(dom, "ds2"); st != "unavailable" {
		t.Errorf("after the kill, the page shows ds2 as %q, want unavailable", st)
	}
	if st := serverState(dom, "ds1"); st != "available" {
		t.Errorf("after the kill, the page shows ds1 as %q, want available", st)
	}
	if !regexp.MustCompile(`<td>ds2</td><td><span class="pill" data-state="available">available</span>.*?<span class="pill" data-state="unavailable">unavailable</span>`).MatchString(dom) {
		t.Errorf("the transitions table lacks ds2 becoming unavailable")
	}
	screenshot(t, bin, a, url)
	if errs := load.errors(1); len(errs) > 0 {
		t.Errorf("%d reads failed, first: %v", len(errs), errs[0])
	}
}

// waitSamples waits until the throughput history holds n samples.
func waitSamples(t *testing.T, a *app.App, n int) {
	t.Helper()
	eventually(t, time.Duration(n+10)*time.Second, fmt.Sprintf("%d throughput samples", n), func() bool {
		return len(a.Status().History) >= n
	})
}

// screenshot saves the page as an image when LDAPMUX_SCREENSHOT names a
// file, after enough history for the charts to show the failover.
func screenshot(t *testing.T, bin string, a *app.App, url string) {
	file := os.Getenv("LDAPMUX_SCREENSHOT")
	if file == "" {
		return
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(moduleRoot(t), file)
	}
	waitSamples(t, a, len(a.Status().History)+12)
	headless(t, bin, url, 3*time.Second, "--screenshot="+file)
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", file, err)
	}
	t.Logf("status page screenshot: %s", file)
}

// moduleRoot is the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// TestStatusPageDrawsLoneSample: one second with answers between seconds
// without any (what a stall looks like) is a single sample with gaps on
// both sides; the response-time chart must draw it (as a dot) rather than
// leave an empty, rescaled axis.
func TestStatusPageDrawsLoneSample(t *testing.T) {
	bin := chromiumPath(t)
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 2})
	a, _ := startProxy(t, cluster, adminExtra)
	waitSamples(t, a, 2)
	conn := dial(t, a.Addrs()[0])
	if err := searchBase(conn, slapdtest.UserDN(1)); err != nil {
		t.Fatal(err)
	}
	busy := func() (n int) {
		for _, s := range a.Status().History {
			if s.Servers["ds1"].OpsPerSec > 0 {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, "a sample with the search", func() bool { return busy() > 0 })
	if n := busy(); n != 1 {
		t.Fatalf("%d samples with operations, want 1: %+v", n, a.Status().History)
	}
	dom := headless(t, bin, "http://"+a.AdminAddr()+"/", 3*time.Second, "--dump-dom")
	if !regexp.MustCompile(`<canvas id="latency"[^>]*data-lone-samples="1"`).MatchString(dom) {
		m := regexp.MustCompile(`<canvas id="latency"[^>]*>`).FindString(dom)
		t.Errorf("the response-time chart did not draw the lone sample: %s", m)
	}
	if !regexp.MustCompile(`<canvas id="throughput"[^>]*data-lone-samples="0"`).MatchString(dom) {
		t.Errorf("the throughput chart, whose gaps are zeros, should need no dot")
	}
}
