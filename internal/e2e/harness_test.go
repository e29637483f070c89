// Package e2e tests ldapmux end to end: real slapd replicas behind a real
// proxy, driven by go-ldap, by OpenLDAP's command-line clients, by
// python-ldap and ldap3, by Java's JNDI, by Perl's Net::LDAP and by nslcd
// and SSSD (NSS and PAM).
package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// proxyConfig renders a configuration for the cluster; extra is appended
// YAML (e.g. pool settings) and may be empty.
func proxyConfig(c *slapdtest.Cluster, extra string) string {
	var b strings.Builder
	b.WriteString("listen:\n  - address: 127.0.0.1:0\nservers:\n")
	for _, r := range c.Replicas {
		fmt.Fprintf(&b, "  - name: ds%d\n    address: %s\n", r.ID, r.Addr)
	}
	fmt.Fprintf(&b, "service-account:\n  bind-dn: %s\n  password: %s\n", slapdtest.ServiceDN, slapdtest.ServicePassword)
	b.WriteString(extra)
	return b.String()
}

// startProxy runs ldapmux in front of the cluster and returns its address.
func startProxy(t *testing.T, c *slapdtest.Cluster, extra string) (*app.App, string) {
	t.Helper()
	return startProxyYAML(t, proxyConfig(c, extra))
}

// startProxyYAML runs ldapmux with a complete configuration.
func startProxyYAML(t *testing.T, yaml string) (*app.App, string) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a := runApp(t, cfg, testLogger(t))
	return a, a.Addrs()[0]
}

// runApp starts ldapmux with cfg and shuts it down at the end of the test.
func runApp(t *testing.T, cfg *config.Config, log *slog.Logger) *app.App {
	t.Helper()
	a, err := app.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return a
}

// testLogger logs to the test output when LDAPMUX_TEST_LOG is set.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("LDAPMUX_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// dial connects a go-ldap client to addr.
func dial(t testing.TB, addr string) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL("ldap://"+addr, ldap.DialWithDialer(dialer()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	conn.SetTimeout(20 * time.Second)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// bindAs dials addr and binds with a simple bind.
func bindAs(t testing.TB, addr, dn, password string) *ldap.Conn {
	t.Helper()
	conn := dial(t, addr)
	if err := conn.Bind(dn, password); err != nil {
		t.Fatalf("bind as %s: %v", dn, err)
	}
	return conn
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// opCount reads one operation counter of a replica's cn=monitor.
func opCount(t testing.TB, r *slapdtest.Replica, op string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts, err := r.OperationCounts(ctx)
	if err != nil {
		t.Fatalf("monitor of replica %d: %v", r.ID, err)
	}
	return counts[op]
}

// searchDNs runs a search and returns the entry DNs.
func searchDNs(conn *ldap.Conn, base, filter string, attrs ...string) ([]*ldap.Entry, error) {
	res, err := conn.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	if err != nil {
		return nil, err
	}
	return res.Entries, nil
}

func dialer() *net.Dialer { return &net.Dialer{Timeout: 5 * time.Second} }

// assertStayedAvailable fails if a server changed state since the proxy
// started or is not available now.
func assertStayedAvailable(t *testing.T, a *app.App) {
	t.Helper()
	for _, tr := range a.Status().Transitions {
		t.Errorf("server %s went from %s to %s (%s: %s)", tr.Server, tr.From, tr.To, tr.Check, tr.Reason)
	}
	for _, s := range a.Registry().Snapshot().Servers {
		if s.Health.State != backend.Available {
			t.Errorf("server %s is %s: %s", s.Name, s.Health.State, s.Health.Reason)
		}
	}
}
