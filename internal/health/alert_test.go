package health

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// startChecker runs checks on one real server in the background.
func startChecker(t *testing.T, addr, bindDN, password string, freq time.Duration, checks ...Check) (*Checker, *backend.Registry) {
	t.Helper()
	srv := &backend.Server{Name: "ds1", Address: addr}
	reg := backend.NewRegistry([]*backend.Server{srv}, nil)
	tgt := NewTarget(srv, bindDN, password)
	c := NewChecker(Config{Frequency: freq, Timeout: 2 * time.Second}, reg, []*Target{tgt}, [][]Check{checks}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, reg
}

func stateOf(reg *backend.Registry) backend.Health { return reg.Snapshot().Servers[0].Health }

// TestAdminAlertPersistentSearch: with checks an hour apart, only the
// persistent search can make the proxy re-read the monitor entry.
func TestAdminAlertPersistentSearch(t *testing.T) {
	srv := newTestServer(t, "cn=monitor")
	alerts := NewAdminAlert("alerts", AlertConfig{})
	c, reg := startChecker(t, srv.addr(), "cn=proxy", "secret", time.Hour, alerts)
	// The server counts a read when the request arrives; the state follows
	// once the checker has the answer, so wait for both.
	waitFor(t, 5*time.Second, "the persistent search", func() bool {
		h := stateOf(reg)
		return srv.watching() == 1 && alerts.Watching() && srv.monitorReads() >= 2 &&
			h.State == A && h.Reason == "no alert (persistent search on cn=alerts)"
	})
	steps := []struct {
		monitor map[string][]string
		state   backend.State
		reason  string
	}{
		{map[string][]string{"degraded-alert-type": {"index-rebuild-required"}}, D, "server reports degraded alert: index-rebuild-required"},
		{map[string][]string{"degraded-alert-type": {"x"}, "unavailable-alert-type": {"backend-disabled"}}, U, "server reports unavailable alert: backend-disabled"},
		{map[string][]string{}, A, "no alert (persistent search on cn=alerts)"},
	}
	for i, s := range steps {
		srv.setMonitor(s.monitor)
		before := time.Now()
		srv.alert("ds-alert-id=" + string(rune('a'+i)) + ",cn=alerts")
		waitFor(t, 5*time.Second, "state "+s.state.String(), func() bool {
			h := stateOf(reg)
			return h.State == s.state && h.Reason == s.reason
		})
		t.Logf("alert %d seen in %s", i, time.Since(before).Round(time.Millisecond))
	}
	if n := alerts.Alerts(); n != 3 {
		t.Errorf("%d alerts delivered, want 3", n)
	}
	if tgt := c.Targets()[0]; tgt.Overlaps() != 0 || tgt.Runs() > 8 {
		t.Errorf("runs %d, overlaps %d: want a few runs, all triggered", tgt.Runs(), tgt.Overlaps())
	}
}

// TestAdminAlertPollOnly: poll-only never opens a persistent search.
func TestAdminAlertPollOnly(t *testing.T) {
	srv := newTestServer(t, "cn=monitor")
	alerts := NewAdminAlert("alerts", AlertConfig{PollOnly: true})
	_, reg := startChecker(t, srv.addr(), "", "", 20*time.Millisecond, alerts)
	srv.setMonitor(map[string][]string{"degraded-alert-type": {"x"}})
	waitFor(t, 5*time.Second, "degraded by polling", func() bool { return stateOf(reg).State == D })
	if srv.watching() != 0 || alerts.Watching() {
		t.Error("poll-only opened a persistent search")
	}
}

// TestAdminAlertPollingSlapd: slapd does not support persistent search, so
// the monitor entry (here a writable entry of the test database) is polled.
func TestAdminAlertPollingSlapd(t *testing.T) {
	const monitorDN = "cn=alert-monitor," + slapdtest.ScratchDN
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 1,
		ExtraLDIF: "dn: " + monitorDN + "\nobjectClass: organizationalRole\ncn: alert-monitor\n"})
	r := cluster.Replicas[0]
	alerts := NewAdminAlert("alerts", AlertConfig{MonitorDN: monitorDN, DegradedAttribute: "description", UnavailableAttribute: "l"})
	_, reg := startChecker(t, r.Addr, slapdtest.ServiceDN, slapdtest.ServicePassword, 50*time.Millisecond, alerts)
	waitFor(t, 10*time.Second, "available by polling", func() bool {
		return stateOf(reg).Reason == "no alert (polling "+monitorDN+")"
	})
	admin, err := r.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Bind(slapdtest.AdminDN, slapdtest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	modify := func(attr string, vals ...string) {
		t.Helper()
		req := ldap.NewModifyRequest(monitorDN, nil)
		req.Replace(attr, vals)
		if err := admin.Modify(req); err != nil {
			t.Fatalf("modify %s: %v", attr, err)
		}
	}
	modify("description", "replication-backlog-exceeded")
	waitFor(t, 5*time.Second, "degraded", func() bool { return stateOf(reg).State == D })
	modify("l", "backend-offline")
	waitFor(t, 5*time.Second, "unavailable", func() bool { return stateOf(reg).State == U })
	modify("l")
	modify("description")
	waitFor(t, 5*time.Second, "available", func() bool { return stateOf(reg).State == A })
	if alerts.Watching() {
		t.Error("watching a persistent search on slapd")
	}
}
