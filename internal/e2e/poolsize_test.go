package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestPoolFollowsTheLoad puts concurrent searches (of bound and anonymous
// clients) and binds through ldapmux to a real slapd: the operation,
// anonymous and bind connections grow past their minimum (never past their
// maximum) while the load lasts, and shrink back once it has been idle for
// the idle-check interval.
func TestPoolFollowsTheLoad(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 50})
	a, addr := startProxy(t, cluster, adminExtra+"monitor:\n  admin-dns: ['"+slapdtest.WriterDN+"']\n"+`pool:
  connections-per-server: 1
  max-connections-per-server: 6
  grow-at-operations-per-connection: 1
  bind-connections-per-server: 1
  max-bind-connections-per-server: 3
  bound-connections-per-server: 0
  idle-check-interval: 1s
`)
	pool := a.Registry().Snapshot().Servers[0].Pool()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- loadUntilDone(ctx, addr, w)
		}()
	}
	eventually(t, 30*time.Second, "operation and bind connections grown", func() bool {
		st := pool.Stats()
		return st.OpenOps >= 3 && st.OpenAnon >= 3 && st.OpenBinds >= 2
	})
	grown := pool.Stats()
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := pool.Stats(); st.OpenOps+st.DialingOps > 6 || st.OpenAnon+st.DialingAnon > 6 || st.OpenBinds > 3 ||
		st.Opened[backend.OpConn] > 6+st.Recycled[backend.OpConn]+st.Shrunk[backend.OpConn] ||
		st.Opened[backend.AnonConn] > 6+st.Recycled[backend.AnonConn]+st.Shrunk[backend.AnonConn] {
		t.Fatalf("past the maximum: %+v", st)
	}
	for _, kind := range []string{"operation", "anonymous"} {
		if got := metric(t, a, `ldapmux_pool_connections_grown_total{kind="`+kind+`",server="ds1"}`); got < 2 {
			t.Errorf("%s connections grown = %v, want at least 2", kind, got)
		}
	}
	if got := metric(t, a, `ldapmux_pool_max_connections{kind="operation",server="ds1"}`); got != 6 {
		t.Errorf("max operation connections = %v, want 6", got)
	}

	eventually(t, 30*time.Second, "the pool back at its minimum", func() bool {
		st := pool.Stats()
		return st.OpenOps == 1 && st.OpenAnon == 1 && st.OpenBinds == 1
	})
	st := pool.Stats()
	if st.Shrunk[backend.OpConn] < int64(grown.OpenOps-1) || st.Shrunk[backend.AnonConn] < int64(grown.OpenAnon-1) ||
		st.Shrunk[backend.BindConn] < int64(grown.OpenBinds-1) {
		t.Errorf("shrunk counters %v, after growing to %d operation and %d bind connections", st.Shrunk, grown.OpenOps, grown.OpenBinds)
	}
	if s := serverStatus(statusOf(t, a), "ds1"); s == nil || s.Pool.OpenOps != 1 || s.Pool.MaxOps != 6 || s.Pool.Shrunk < 2 {
		t.Errorf("status of the pool: %+v", s)
	}
	conn := dial(t, addr) // the minimum still serves
	if err := expectUID(conn, 7); err != nil {
		t.Fatal(err)
	}
	admin := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	res, err := admin.Search(ldap.NewSearchRequest("cn=LDAP External Server ds1,cn=monitor", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"pool-max-operation-connections", "pool-max-bind-connections", "pool-connections-shrunk"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("cn=monitor entry of ds1: %v", err)
	}
	e := res.Entries[0]
	if e.GetAttributeValue("pool-max-operation-connections") != "6" || e.GetAttributeValue("pool-max-bind-connections") != "3" ||
		e.GetAttributeValue("pool-connections-shrunk") == "0" {
		t.Errorf("cn=monitor pool figures: max %q / %q, shrunk %q", e.GetAttributeValue("pool-max-operation-connections"),
			e.GetAttributeValue("pool-max-bind-connections"), e.GetAttributeValue("pool-connections-shrunk"))
	}
}

// loadUntilDone binds (odd workers) or searches (even ones: anonymously,
// or bound as a user when w is a multiple of 4) as fast as it can until
// ctx ends.
func loadUntilDone(ctx context.Context, addr string, w int) error {
	conn, err := ldap.DialURL("ldap://"+addr, ldap.DialWithDialer(dialer()))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetTimeout(20 * time.Second)
	if w%4 == 0 {
		if err := conn.Bind(slapdtest.UserDN(w+1), slapdtest.UserPassword(w+1)); err != nil {
			return err
		}
	}
	for i := 0; ctx.Err() == nil; i++ {
		n := 1 + (w*7+i)%50
		if w%2 == 1 {
			err = conn.Bind(slapdtest.UserDN(n), slapdtest.UserPassword(n))
		} else {
			err = expectUID(conn, n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
