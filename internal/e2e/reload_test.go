package e2e

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// clusterConfig renders a configuration for some replicas of the cluster
// (by ID), reading with fewest-operations so that every server has
// operations in flight.
func clusterConfig(c *slapdtest.Cluster, extra string, ids ...int) string {
	var b strings.Builder
	b.WriteString("listen:\n  - address: 127.0.0.1:0\nservers:\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "  - name: ds%d\n    address: %s\n", id, c.Replica(id).Addr)
	}
	fmt.Fprintf(&b, "service-account:\n  bind-dn: %s\n  password: %s\n", slapdtest.ServiceDN, slapdtest.ServicePassword)
	b.WriteString("load-balancing:\n  algorithm: fewest-operations\nhealth-check-frequency: 200ms\n")
	b.WriteString(failoverPool + adminExtra + extra)
	return b.String()
}

func serverNames(a *app.App) []string {
	var out []string
	for _, s := range a.Servers() {
		out = append(out, s.Name)
	}
	return out
}

// TestReloadUnderLoad replaces a server by another under a steady read load
// (one removed, one added), then adds the first back: no operation fails,
// no client connection drops, the removed server's pool closes once idle
// and the added one takes its share.
func TestReloadUnderLoad(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 3})
	var logs lockedLog
	a, path := startProxyFile(t, clusterConfig(cluster, "", 1, 2), &logs)
	load := startReadLoad(t, a.Addrs()[0], 8)
	writes := startWriteLoad(t, a.Addrs()[0])
	load.waitOps(t, 200)
	clients := a.Status().Clients.Accepted

	writeConfig(t, path, clusterConfig(cluster, "", 2, 3))
	start := time.Now()
	if err := a.ReloadFile(path); err != nil {
		t.Fatal(err)
	}
	t.Logf("reload (ds1 out, ds3 in) took %s", time.Since(start).Round(time.Millisecond))
	if got := serverNames(a); !slices.Equal(got, []string{"ds2", "ds3"}) {
		t.Fatalf("servers after reload: %v", got)
	}
	removed := slotNamed(a, "ds1")
	eventually(t, 20*time.Second, "ds1's pool closed and ds3 serving", func() bool {
		st := a.Status()
		return removed.Pool().Stats().OpenOps == 0 && serverStatus(st, "ds3").Completed >= 100
	})
	load.waitOps(t, 200)
	if ds1 := serverStatus(a.Status(), "ds1"); ds1 != nil {
		t.Errorf("ds1 still reported: %+v", ds1)
	}

	writeConfig(t, path, clusterConfig(cluster, "", 1, 2, 3))
	if err := a.ReloadFile(path); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "ds1 serving again", func() bool { return serverStatus(a.Status(), "ds1").Completed >= 100 })
	load.halt()
	added, werr := writes.halt()
	if errs := load.errors(0); len(errs) > 0 {
		t.Fatalf("%d of %d reads failed across reloads, first: %v", len(errs), load.ok.Load()+load.failed.Load(), errs[0])
	}
	if werr != nil || added == 0 {
		t.Fatalf("writes across reloads: %d added, then %v", added, werr)
	}
	st := a.Status()
	if st.Clients.Accepted != clients || st.Reload.Count != 2 || !st.Reload.OK {
		t.Errorf("accepted %d clients (want %d, none reconnected); reload %+v", st.Clients.Accepted, clients, st.Reload)
	}
	if n := len(a.Registry().Snapshot().Servers); n != 3 {
		t.Errorf("%d registry slots, want 3 (ds1's slot reused)", n)
	}
	t.Logf("%d reads and %d writes, none failed, across two reloads", load.ok.Load(), added)
}

// writeLoad adds entries one after the other until halted.
type writeLoad struct {
	stop chan struct{}
	done chan struct{}
	n    int
	err  error
}

func startWriteLoad(t *testing.T, addr string) *writeLoad {
	conn := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	w := &writeLoad{stop: make(chan struct{}), done: make(chan struct{})}
	prefix := fmt.Sprintf("cn=reload-%d-", time.Now().UnixNano())
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			if w.err = conn.Add(roleEntry(prefix + fmt.Sprint(w.n) + "," + slapdtest.ScratchDN)); w.err != nil {
				return
			}
			w.n++
		}
	}()
	t.Cleanup(func() { w.halt() })
	return w
}

// halt stops the writer and returns how many entries it added and its error.
func (w *writeLoad) halt() (int, error) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.n, w.err
}

// slotNamed finds a server by name among the registry's slots.
func slotNamed(a *app.App, name string) *backend.Server {
	for _, v := range a.Registry().Snapshot().Servers {
		if v.Name == name {
			return v.Server
		}
	}
	return nil
}

// TestReloadRefusesBrokenConfig reloads a configuration with problems, from
// the API and from the file: it is refused with its problems logged and
// reported, and the running configuration keeps serving.
func TestReloadRefusesBrokenConfig(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 2})
	var logs lockedLog
	good := clusterConfig(cluster, "", 1, 2)
	a, path := startProxyFile(t, good, &logs)
	conn := dial(t, a.Addrs()[0])

	writeConfig(t, path, strings.Replace(good, cluster.Replica(2).Addr, "127.0.0.1", 1)+"use-locatoin: true\n")
	if err := a.ReloadFile(path); err == nil {
		t.Fatal("a configuration with problems was applied")
	}
	resp, err := http.Post("http://"+a.AdminAddr()+"/api/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "missing port") {
		t.Errorf("POST /api/reload: %d %s", resp.StatusCode, body)
	}
	if got := serverNames(a); !slices.Equal(got, []string{"ds1", "ds2"}) {
		t.Errorf("servers after a refused reload: %v", got)
	}
	for _, want := range []string{"reload refused; the running configuration stays", "servers[1].address", "missing port"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	st := statusOf(t, a)
	if st.Reload.OK || st.Reload.Failed != 2 || !strings.Contains(st.Reload.Error, "missing port") {
		t.Errorf("reload status: %+v", st.Reload)
	}
	if v := metric(t, a, `ldapmux_config_reloads_total{result="failure"}`); v != 2 {
		t.Errorf("failed reloads counted: %v", v)
	}
	if err := searchBase(conn, slapdtest.UserDN(1)); err != nil {
		t.Fatalf("search after refused reloads: %v", err)
	}

	writeConfig(t, path, clusterConfig(cluster, "", 2))
	resp, err = http.Post("http://"+a.AdminAddr()+"/api/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"ok": true`) {
		t.Fatalf("POST /api/reload of a good file: %d %s", resp.StatusCode, body)
	}
	if got := serverNames(a); !slices.Equal(got, []string{"ds2"}) {
		t.Errorf("servers after reload: %v", got)
	}
	if err := searchBase(conn, slapdtest.UserDN(1)); err != nil {
		t.Fatalf("search after reload on the same connection: %v", err)
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReloadAppliesClientLimits turns require-secure-bind on by reload: a
// client connected before the reload gets confidentialityRequired on its
// next password bind, and slapd never sees the password.
func TestReloadAppliesClientLimits(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 2})
	var logs lockedLog
	a, path := startProxyFile(t, clusterConfig(cluster, "", 1), &logs)
	conn := bindAs(t, a.Addrs()[0], slapdtest.UserDN(1), slapdtest.UserPassword(1))

	writeConfig(t, path, clusterConfig(cluster, "require-secure-bind: true\n", 1))
	if err := a.ReloadFile(path); err != nil {
		t.Fatal(err)
	}
	binds := opCount(t, cluster.Replicas[0], "bind")
	err := conn.Bind(slapdtest.UserDN(2), slapdtest.UserPassword(2))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultConfidentialityRequired) {
		t.Fatalf("password bind after the reload: want confidentialityRequired, got %v", err)
	}
	// opCount binds once itself: one more than before means ours never reached slapd.
	if got := opCount(t, cluster.Replicas[0], "bind"); got != binds+1 {
		t.Fatalf("slapd counted %d binds, want %d: the password was forwarded", got, binds+1)
	}
}
