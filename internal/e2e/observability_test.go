package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/buildinfo"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
	"github.com/ldapmux/ldapmux/internal/status"
)

// adminExtra turns the admin listener on, on a free loopback port.
const adminExtra = "admin:\n  address: 127.0.0.1:0\n"

// lockedLog collects log output from concurrent writers.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startProxyFile runs ldapmux from a configuration file (so that it can be
// reloaded), logging at debug level to logs (and to the test with
// LDAPMUX_TEST_LOG). It returns the app and the file's path.
func startProxyFile(t *testing.T, yaml string, logs io.Writer) (*app.App, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ldapmux.yaml")
	writeConfig(t, path, yaml)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var w io.Writer = io.Discard
	if logs != nil {
		w = logs
	}
	if os.Getenv("LDAPMUX_TEST_LOG") != "" {
		w = io.MultiWriter(w, tWriter{t})
	}
	a := runApp(t, cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	a.SetConfigFile(path, nil)
	return a, path
}

func writeConfig(t *testing.T, path, yaml string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// httpGet fetches an admin endpoint and returns the status code and body.
func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// metric reads one sample from /metrics; series is the exact name and
// labels as exposed, e.g. `ldapmux_client_connections` or
// `ldapmux_server_score{server="ds1"}`. It returns -1 when absent.
func metric(t testing.TB, a *app.App, series string) float64 {
	t.Helper()
	_, body := httpGet(t, "http://"+a.AdminAddr()+"/metrics")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// statusOf fetches /api/status.
func statusOf(t testing.TB, a *app.App) *status.Status {
	t.Helper()
	code, body := httpGet(t, "http://"+a.AdminAddr()+"/api/status")
	if code != http.StatusOK {
		t.Fatalf("/api/status: %d %s", code, body)
	}
	var st status.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func serverStatus(st *status.Status, name string) *status.Server {
	for i := range st.Servers {
		if st.Servers[i].Name == name {
			return &st.Servers[i]
		}
	}
	return nil
}

func searchBase(conn *ldap.Conn, dn string) error {
	_, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"uid"}, nil))
	return err
}

// TestMetricsAfterKnownTraffic sends 100 anonymous searches through the
// proxy and reads the counters of the server that answered them (the
// primary, by failover) from /metrics and /api/status; they went on the
// unbound connections kept for anonymous clients.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 5})
	a, _ := startProxy(t, cluster, adminExtra)
	conn := dial(t, a.Addrs()[0])
	for i := range 100 {
		if err := searchBase(conn, slapdtest.UserDN(i%5+1)); err != nil {
			t.Fatal(err)
		}
	}
	completed := `ldapmux_server_operations_completed_total{operation="search",result="success",server="ds1"}`
	build := buildinfo.Get()
	eventually(t, 10*time.Second, "100 searches counted", func() bool { return metric(t, a, completed) == 100 })
	want := map[string]float64{
		`ldapmux_server_operations_forwarded_total{operation="search",server="ds1"}`:  100,
		`ldapmux_server_operations_forwarded_total{operation="search",server="ds2"}`:  0,
		`ldapmux_server_response_time_seconds_count{operation="search",server="ds1"}`: 100,
		`ldapmux_operations_total{operation="search",result="success"}`:               100,
		`ldapmux_algorithm_selections_total{algorithm="failover",server="ds1"}`:       100,
		`ldapmux_server_state{server="ds1",state="available"}`:                        1,
		`ldapmux_server_state{server="ds2",state="unavailable"}`:                      0,
		`ldapmux_server_outstanding_operations{server="ds1"}`:                         0,
		`ldapmux_client_connections`:                                                  1,
		`ldapmux_client_connections_accepted_total`:                                   1,
		`ldapmux_pool_connections_failed_total{kind="operation",server="ds1"}`:        0,
		`ldapmux_ready`: 1,
		fmt.Sprintf(`ldapmux_build_info{goversion=%q,revision=%q,version=%q}`, build.GoVersion, build.Revision, build.Version): 1,
	}
	for series, v := range want {
		if got := metric(t, a, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	for _, series := range []string{`ldapmux_pool_open_connections{kind="anonymous",server="ds1"}`,
		`ldapmux_pool_connections_opened_total{kind="anonymous",server="ds1"}`, `ldapmux_client_received_bytes_total`,
		`ldapmux_client_sent_bytes_total`, `ldapmux_server_score{server="ds2"}`,
		`ldapmux_health_check_runs_total{check="root-dse",result="available",server="ds2"}`,
		`ldapmux_health_check_duration_seconds_count{check="root-dse",server="ds1"}`} {
		if got := metric(t, a, series); got < 1 {
			t.Errorf("%s = %v, want at least 1", series, got)
		}
	}
	st := statusOf(t, a)
	if ds1 := serverStatus(st, "ds1"); ds1 == nil || ds1.Completed != 100 || ds1.Forwarded != 100 || ds1.State != "available" {
		t.Errorf("status of ds1: %+v", ds1)
	}
	if ds2 := serverStatus(st, "ds2"); ds2 == nil || ds2.Completed != 0 {
		t.Errorf("status of ds2: %+v", ds2)
	}
	if st.Build != (status.Build{Version: build.Version, Revision: build.Revision, GoVersion: build.GoVersion}) {
		t.Errorf("status build %+v, want %+v", st.Build, build)
	}
}

// TestReadyzFlips stops every server: /readyz turns 503 (and says why), then
// 200 again once one is back.
func TestReadyzFlips(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 2})
	a, _ := startProxy(t, cluster, adminExtra+"health-check-frequency: 100ms\n")
	readyz := "http://" + a.AdminAddr() + "/readyz"
	eventually(t, 10*time.Second, "ready", func() bool { code, _ := httpGet(t, readyz); return code == 200 })
	if code, body := httpGet(t, "http://"+a.AdminAddr()+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	for _, r := range cluster.Replicas {
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	var body string
	eventually(t, 20*time.Second, "/readyz 503", func() bool {
		var code int
		code, body = httpGet(t, readyz)
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "route failover: no usable server") {
		t.Errorf("/readyz body: %q", body)
	}
	if v := metric(t, a, "ldapmux_ready"); v != 0 {
		t.Errorf("ldapmux_ready = %v", v)
	}
	restart(t, cluster.Replicas[1])
	eventually(t, 20*time.Second, "/readyz 200 again", func() bool { code, _ := httpGet(t, readyz); return code == 200 })
}

// TestMonitorSubtree reads cn=monitor through the client listener: the
// proxy answers it for admin DNs only.
func TestMonitorSubtree(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 2})
	a, addr := startProxy(t, cluster, "monitor:\n  admin-dns: ['"+slapdtest.WriterDN+"']\n")
	admin := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	eventually(t, 10*time.Second, "both servers checked", func() bool {
		snap := a.Registry().Snapshot()
		return snap.Servers[0].Health.Check != "" && snap.Servers[1].Health.Check != ""
	})
	res, err := admin.Search(ldap.NewSearchRequest("cn=monitor", ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	byDN := map[string]*ldap.Entry{}
	for _, e := range res.Entries {
		byDN[e.DN] = e
	}
	ds2 := byDN["cn=LDAP External Server ds2,cn=monitor"]
	if len(res.Entries) != 4 || byDN["cn=monitor"] == nil || ds2 == nil || byDN["cn=Load-Balancing Algorithm failover,cn=monitor"] == nil {
		t.Fatalf("entries: %v", keysOf(byDN))
	}
	if ds2.GetAttributeValue("health-check-state") != "available" || ds2.GetAttributeValue("server-address") != cluster.Replicas[1].Addr {
		t.Errorf("ds2 entry: state %q address %q", ds2.GetAttributeValue("health-check-state"), ds2.GetAttributeValue("server-address"))
	}
	if got := byDN["cn=monitor"].GetAttributeValue("current-connections"); got != "1" {
		t.Errorf("current-connections = %q", got)
	}
	res, err = admin.Search(ldap.NewSearchRequest("cn=monitor", ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=ldapmux-server-monitor-entry)(server-name=ds1))", []string{"operations-completed", "health-check-score"}, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("health-check-score") == "" {
		t.Fatalf("filtered search: %v %+v", err, res)
	}
	for _, who := range []*ldap.Conn{dial(t, addr), bindAs(t, addr, slapdtest.AppDN, slapdtest.AppPassword)} {
		_, err := who.Search(ldap.NewSearchRequest("cn=monitor", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
			t.Errorf("non-admin search of cn=monitor: %v", err)
		}
	}
}

func keysOf(m map[string]*ldap.Entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestNoSecretsInLogs runs binds, a failed bind, a password change, a
// reload and a failover with the access log on and the log at debug level,
// and looks for every password in all of it.
func TestNoSecretsInLogs(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 3})
	accessFile := filepath.Join(t.TempDir(), "access.log")
	yaml := proxyConfig(cluster, failoverPool+"log:\n  level: debug\n  access-log: true\n")
	var logs lockedLog
	a, path := startProxyFile(t, yaml, &logs)
	addr := a.Addrs()[0]

	user := bindAs(t, addr, slapdtest.UserDN(1), slapdtest.UserPassword(1))
	if err := searchBase(user, slapdtest.UserDN(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := user.PasswordModify(ldap.NewPasswordModifyRequest("", slapdtest.UserPassword(1), "brand-new-secret-1")); err != nil {
		t.Fatal(err)
	}
	if err := dial(t, addr).Bind(slapdtest.UserDN(2), "wrong-secret-guess"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("bind with a wrong password: %v", err)
	}
	bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)

	writeConfig(t, path, yaml+"  access-log-file: "+accessFile+"\n")
	if err := a.ReloadFile(path); err != nil {
		t.Fatal(err)
	}
	bindAs(t, addr, slapdtest.UserDN(3), slapdtest.UserPassword(3))
	if err := cluster.Replicas[0].Kill(); err != nil {
		t.Fatal(err)
	}
	other := bindAs(t, addr, slapdtest.UserDN(2), slapdtest.UserPassword(2))
	if err := searchBase(other, slapdtest.UserDN(2)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "access lines in the file", func() bool {
		data, _ := os.ReadFile(accessFile)
		return strings.Count(string(data), "msg=access") >= 3
	})
	access, _ := os.ReadFile(accessFile)
	all := logs.String() + string(access)
	for _, secret := range []string{slapdtest.ServicePassword, slapdtest.UserPassword(1), slapdtest.UserPassword(2),
		slapdtest.UserPassword(3), slapdtest.WriterPassword, "brand-new-secret-1", "wrong-secret-guess"} {
		if strings.Contains(all, secret) {
			t.Errorf("a log holds the password %q", secret)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		access, _ := os.ReadFile(accessFile)
		missing := missingAccessLines(logs.String()+string(access), string(access))
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access log lacks lines like:\n%s\nlog:\n%s\naccess file:\n%s", strings.Join(missing, "\n"), logs.String(), access)
		}
	}
}

// missingAccessLines returns the expected access lines that all (every
// log) and file (the access log file, written after the reload) lack.
func missingAccessLines(all, file string) []string {
	var missing []string
	for _, re := range []string{
		`msg=access conn=\d+ msgid=\d+ client=127\.0\.0\.1 bind-dn="" op=bind dn="uid=user\.1,ou=people,dc=example,dc=com" result=0 result-name=success elapsed-ms=[\d.]+ server=ds1 algorithm=failover attempts=1 failover=false`,
		`msg=access .* bind-dn="uid=user\.1,ou=people,dc=example,dc=com" op=search dn="uid=user\.1,ou=people,dc=example,dc=com" result=0 .* server=ds1`,
		`msg=access .* op=extended dn="" oid=1\.3\.6\.1\.4\.1\.4203\.1\.11\.1 result=0`,
		`msg=access .* op=bind dn="uid=user\.2,ou=people,dc=example,dc=com" result=49 result-name=invalidCredentials`,
	} {
		if !regexp.MustCompile(re).MatchString(all) {
			missing = append(missing, re)
		}
	}
	for _, re := range []string{
		`msg=access .* op=bind dn="uid=user\.2,ou=people,dc=example,dc=com" result=0 .* server=ds2 `,
		`msg=access .* bind-dn="uid=user\.2,ou=people,dc=example,dc=com" op=search .* server=ds2`,
	} {
		if !regexp.MustCompile(re).MatchString(file) {
			missing = append(missing, "in the file: "+re)
		}
	}
	return missing
}

// TestDrainReportsNotReady shuts down with an operation in flight on a hung
// server: /readyz answers 503 while it drains, and the operation still
// completes once the server answers, within the grace period.
func TestDrainReportsNotReady(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 2})
	a, addr := startProxy(t, cluster, adminExtra+"pool:\n  operation-timeout: 20s\n")
	conn := dial(t, addr)
	if err := searchBase(conn, slapdtest.UserDN(1)); err != nil {
		t.Fatal(err)
	}
	// the client has its answer before the proxy counts the operation done
	eventually(t, 10*time.Second, "the first search over", func() bool { return a.Status().Clients.Inflight == 0 })
	replica := cluster.Replicas[0]
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	searched := make(chan error, 1)
	go func() { searched <- searchBase(conn, slapdtest.UserDN(2)) }()
	eventually(t, 10*time.Second, "the search in flight", func() bool { return a.Status().Clients.Inflight == 1 })
	stopped := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		close(stopped)
	}()
	eventually(t, 10*time.Second, "/readyz 503 while draining", func() bool {
		code, body := httpGet(t, "http://"+a.AdminAddr()+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down")
	})
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := <-searched; err != nil {
		t.Errorf("the search in flight during the drain failed: %v", err)
	}
	<-stopped
}
