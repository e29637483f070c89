//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/dirtest"
)

// ds389YAML puts ldapmux in front of two replicated 389 Directory Server
// instances with nothing but addresses and a service account (and the
// identity it must be able to proxy as), checking the replication backlog
// ten times a second.
func ds389YAML(c *dirtest.DS389Cluster, serviceDN, password string, backlog bool) string {
	var b strings.Builder
	b.WriteString("listen:\n  - address: 127.0.0.1:0\nservers:\n")
	for _, d := range c.Instances {
		fmt.Fprintf(&b, "  - name: ds%d\n    address: %s\n", d.ID, d.Addr)
	}
	fmt.Fprintf(&b, "service-account:\n  bind-dn: %s\n  password: %s\n  proxy-check-dn: %s\n", serviceDN, password, dirtest.UserDN(1))
	if backlog {
		b.WriteString(backlogYAML)
	}
	return b.String()
}

// TestDS389ThroughProxy compares, operation by operation, 389 Directory
// Server reached directly and through ldapmux.
func TestDS389ThroughProxy(t *testing.T) {
	cluster, a, addr := start389Proxied(t, 2, true)
	direct := cluster.Instance(1).Addr
	t.Run("anonymous", func(t *testing.T) { compare389(t, direct, addr, "", "") })
	t.Run("bound", func(t *testing.T) {
		compare389(t, direct, addr, dirtest.UserDN(2), dirtest.UserPassword(2))
		boundKept389(t, a)
	})
	t.Run("directory manager", func(t *testing.T) { directoryManager389(t, direct, addr) })
	t.Run("whoami", func(t *testing.T) { compareWhoAmI389(t, direct, addr) })
	t.Run("own password", func(t *testing.T) { compareOwnPassword389(t, direct, addr) })
	t.Run("paged", func(t *testing.T) { comparePaged389(t, direct, addr) })
	t.Run("backlog", func(t *testing.T) { backlog389(t, a, cluster) })
}

// boundKept389 checks that 389's answers to binds, which ldapmux asks for
// the password policy control, say nothing that would make a client's
// session its own: the bind connections are kept bound for the clients
// bound as the same DN, and none is leased.
func boundKept389(t *testing.T, a *app.App) {
	t.Helper()
	eventually(t, 10*time.Second, "a bound connection kept", func() bool {
		bound := 0
		for _, s := range a.Registry().Snapshot().Servers {
			bound += s.Pool().Stats().OpenBound
		}
		return bound > 0
	})
	for _, s := range a.Registry().Snapshot().Servers {
		if st := s.Pool().Stats(); st.Leased != 0 {
			t.Errorf("server %s: %d connections leased after plain binds and searches", s.Name, st.Leased)
		}
	}
}

// start389Proxied starts n 389 instances and ldapmux in front of them with
// the service account (the replication-backlog check when backlog), and
// waits until every server is available in proxied-authorization mode.
func start389Proxied(t *testing.T, n int, backlog bool) (*dirtest.DS389Cluster, *app.App, string) {
	t.Helper()
	cluster := dirtest.Start389(t, n)
	a, addr := startProxyYAML(t, ds389YAML(cluster, dirtest.ServiceDN, dirtest.ServicePassword, backlog))
	logHealthOnFailure(t, a)
	eventually(t, 30*time.Second, "every 389 server checked, available, in proxied-authorization mode", func() bool {
		return all389Ready(a)
	})
	return cluster, a, addr
}

// logHealthOnFailure shows every server's health and capabilities when t
// failed.
func logHealthOnFailure(t *testing.T, a *app.App) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, s := range a.Registry().Snapshot().Servers {
			t.Logf("%s: %s (%s: %s), capabilities %+v", s.Name, s.Health.State, s.Health.Check, s.Health.Reason, s.Capabilities())
		}
	})
}

// all389Ready reports whether every server is available and was found to
// be 389 Directory Server served with proxied authorization.
func all389Ready(a *app.App) bool {
	for _, s := range a.Registry().Snapshot().Servers {
		caps := s.Capabilities()
		if s.Health.State != backend.Available || caps == nil || caps.Type != backend.Type389DS || caps.Mode != backend.ModeProxied {
			return false
		}
	}
	return true
}

// compare389 runs the same searches as dn (anonymous when empty) directly
// and through ldapmux.
func compare389(t *testing.T, direct, proxied, dn, password string) {
	searches := []struct{ base, filter string }{
		{dirtest.PeopleDN, "(uid=*)"},
		{dirtest.PeopleDN, "(mail=user.1*)"},
		{dirtest.BaseDN, "(objectClass=groupOfNames)"},
	}
	for _, s := range searches {
		want := search389(t, direct, dn, password, s.base, s.filter)
		got := search389(t, proxied, dn, password, s.base, s.filter)
		if want != got {
			t.Errorf("as %q, %s %s:\nthrough ldapmux:\n%s\ndirectly:\n%s", dn, s.base, s.filter, got, want)
		}
	}
}

// search389 renders a search's entries (DN and the attributes uid, mail,
// member), sorted, or its error.
func search389(t *testing.T, addr, dn, password, base, filter string) string {
	t.Helper()
	conn := dial(t, addr)
	if dn != "" {
		if err := conn.Bind(dn, password); err != nil {
			return "bind: " + err.Error()
		}
	}
	res, err := conn.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter,
		[]string{"uid", "mail", "member"}, nil))
	if err != nil {
		return "error: " + err.Error()
	}
	return renderEntries(res.Entries)
}

// directoryManager389: 389 lets no one assume its root DN, the Directory
// Manager, by proxied authorization ("Proxy dn should not be rootdn"), so
// its session through ldapmux is its own connection, bound as itself: it
// reads and writes through ldapmux as directly, cn=config included, and
// its writes are its own.
func directoryManager389(t *testing.T, direct, proxied string) {
	conns := [2]*ldap.Conn{
		bindAs(t, direct, dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword),
		bindAs(t, proxied, dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword),
	}
	reads := []*ldap.SearchRequest{
		ldap.NewSearchRequest(dirtest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(uid=user.1*)", []string{"uid", "mail", "userPassword"}, nil),
		ldap.NewSearchRequest("cn=config", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"nsslapd-rootdn"}, nil),
		ldap.NewSearchRequest(dirtest.GroupsDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"description", "modifiersName"}, nil),
	}
	for step, value := range []string{"", "changed through ldapmux"} {
		if value != "" {
			mod := ldap.NewModifyRequest(dirtest.GroupsDN, nil)
			mod.Replace("description", []string{value})
			if err := conns[1].Modify(mod); err != nil {
				t.Fatalf("modify as the Directory Manager through ldapmux: %v", err)
			}
		}
		for _, req := range reads {
			var got [2]string
			for i, conn := range conns {
				res, err := conn.Search(req)
				if err != nil {
					got[i] = "error: " + err.Error()
					continue
				}
				got[i] = renderEntries(res.Entries)
			}
			if got[0] != got[1] || got[0] == "" || strings.HasPrefix(got[0], "error") {
				t.Errorf("step %d, as the Directory Manager, %s:\nthrough ldapmux:\n%s\ndirectly:\n%s", step, req.BaseDN, got[1], got[0])
			}
		}
	}
	res, err := conns[0].Search(reads[2])
	if err != nil || len(res.Entries) != 1 || !strings.EqualFold(res.Entries[0].GetAttributeValue("modifiersName"), dirtest.DirectoryManagerDN) {
		t.Fatalf("the write through ldapmux was not the Directory Manager's own: %v %v", err, res)
	}
}

// compareWhoAmI389: 389 answers the connection's bind DN (it ignores
// proxied authorization there, so on ldapmux's shared connections it would
// name the service account); through ldapmux the answer must be the same
// for a bound client and anonymous.
func compareWhoAmI389(t *testing.T, direct, proxied string) {
	for _, who := range []struct{ dn, password string }{{"", ""}, {dirtest.UserDN(3), dirtest.UserPassword(3)}} {
		var answers [2]string
		for i, addr := range []string{direct, proxied} {
			conn := dial(t, addr)
			if who.dn != "" {
				if err := conn.Bind(who.dn, who.password); err != nil {
					t.Fatal(err)
				}
			}
			res, err := conn.WhoAmI(nil)
			if err != nil {
				t.Fatalf("who am I at %s: %v", addr, err)
			}
			// 389 writes "dn: uid=..." with a space; RFC 4532 has none
			answers[i] = strings.ToLower(strings.Replace(res.AuthzID, "dn: ", "dn:", 1))
		}
		if answers[0] != answers[1] {
			t.Errorf("as %q: who am I through ldapmux %q, directly %q", who.dn, answers[1], answers[0])
		}
	}
}

// compareOwnPassword389: a user changes its own password with Password
// Modify, giving the old one; through ldapmux the result is the direct one
// and the new password works.
func compareOwnPassword389(t *testing.T, direct, proxied string) {
	results := map[string]string{}
	for i, c := range []struct{ name, addr string }{{"directly", direct}, {"through ldapmux", proxied}} {
		n := 10 + i // a user each, so that both start from the same state
		conn := bindAs(t, c.addr, dirtest.UserDN(n), dirtest.UserPassword(n))
		_, err := conn.PasswordModify(ldap.NewPasswordModifyRequest("", dirtest.UserPassword(n), "changed."+fmt.Sprint(n)))
		results[c.name] = resultOf(err)
		if err == nil {
			bindAs(t, c.addr, dirtest.UserDN(n), "changed."+fmt.Sprint(n))
		}
	}
	if results["directly"] != results["through ldapmux"] {
		t.Errorf("own password change: through ldapmux %s, directly %s", results["through ldapmux"], results["directly"])
	}
	t.Logf("own password change: %s", results["directly"])
}

// resultOf names an LDAP outcome: "success" or the result code.
func resultOf(err error) string {
	var lerr *ldap.Error
	switch {
	case err == nil:
		return "success"
	case errors.As(err, &lerr):
		return fmt.Sprintf("result %d", lerr.ResultCode)
	}
	return err.Error()
}

// comparePaged389: clients with different identities page through people
// at once; 389 keeps each search's state and identity per connection.
func comparePaged389(t *testing.T, direct, proxied string) {
	const clients = 12
	var wg sync.WaitGroup
	errs := make(chan string, clients*2)
	for i := range clients {
		wg.Go(func() {
			dn, password := "", ""
			if i%3 != 0 {
				dn, password = dirtest.UserDN(i+1), dirtest.UserPassword(i+1)
			}
			for round := range 3 {
				want := paged389(t, direct, dn, password)
				got := paged389(t, proxied, dn, password)
				if got != want {
					errs <- fmt.Sprintf("client %d (%q) round %d: paged through ldapmux differs:\n%s\nwant\n%s", i, dn, round, got, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func paged389(t *testing.T, addr, dn, password string) string {
	conn, err := ldap.DialURL("ldap://"+addr, ldap.DialWithDialer(dialer()))
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	if dn != "" {
		if err := conn.Bind(dn, password); err != nil {
			return "bind: " + err.Error()
		}
	}
	res, err := conn.SearchWithPaging(ldap.NewSearchRequest(dirtest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=person)", []string{"uid", "mail"}, nil), 4)
	if err != nil {
		return "error: " + err.Error()
	}
	return renderEntries(res.Entries)
}

// backlog389: with replication from instance 1 to 2 paused and writes made
// on 1, ldapmux sees ds2 behind (from 389's RUV) within a few check periods,
// and available again once replication resumes.
func backlog389(t *testing.T, a *app.App, c *dirtest.DS389Cluster) {
	if err := c.PauseReplication(1, 2); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			c.ResumeReplication(1, 2)
		}
	}()
	admin := bindAs(t, c.Instance(1).Addr, dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // a write a second on instance 1, as long as the check needs
		for i := 0; ; i++ {
			req := ldap.NewModifyRequest(dirtest.UserDN(20), nil)
			req.Replace("description", []string{fmt.Sprintf("backlog write %d", i)})
			if err := admin.Modify(req); err != nil {
				t.Errorf("write on instance 1: %v", err)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	})
	defer wg.Wait()
	defer close(stop)
	eventually(t, 30*time.Second, "ds2 seen behind by the replication-backlog check", func() bool {
		h := a.Registry().Snapshot().Servers[1].Health
		return h.State != backend.Available && h.Check == "backlog"
	})
	t.Logf("ds2 while paused: %+v", a.Registry().Snapshot().Servers[1].Health)
	if h := a.Registry().Snapshot().Servers[0].Health; h.State != backend.Available {
		t.Errorf("ds1, up to date, is %s: %s", h.State, h.Reason)
	}
	if err := c.ResumeReplication(1, 2); err != nil {
		t.Fatal(err)
	}
	resumed = true
	eventually(t, 60*time.Second, "ds2 available again once replication resumed", func() bool {
		return a.Registry().Snapshot().Servers[1].Health.State == backend.Available
	})
}

// TestDS389ServiceAccountWithoutProxyRight: a service account 389 does not
// let proxy makes every server unusable, with a reason that says why,
// instead of every bound client failing with it.
func TestDS389ServiceAccountWithoutProxyRight(t *testing.T) {
	cluster := dirtest.Start389(t, 1)
	a, addr := startProxyYAML(t, ds389YAML(cluster, dirtest.NoProxyDN, dirtest.NoProxyPassword, false))
	logHealthOnFailure(t, a)
	eventually(t, 30*time.Second, "the server unusable, saying the service account cannot proxy", func() bool {
		h := a.Registry().Snapshot().Servers[0].Health
		return h.State == backend.Unavailable && strings.Contains(h.Reason, "cannot use proxied authorization")
	})
	t.Logf("reason: %s", a.Registry().Snapshot().Servers[0].Health.Reason)
	conn := dial(t, addr)
	_, err := conn.Search(ldap.NewSearchRequest(dirtest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(uid=user.1)", nil, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnavailable) || !strings.Contains(err.Error(), "proxied authorization") {
		t.Errorf("a client's search: %v, want unavailable naming the reason", err)
	}
}
