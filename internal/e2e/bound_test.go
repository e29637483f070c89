package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// boundIdentity is a client identity of the bound-connection tests.
type boundIdentity struct{ name, dn, password string }

// TestBoundConnectionsKeepEveryIdentity binds clients as several users
// through ldapmux, whose pool keeps the connections their binds left bound
// and sends their operations there without a control: many clients at
// once, each reading the whole tree twice on one connection in parallel,
// must see exactly what the same identity sees on slapd directly.
func TestBoundConnectionsKeepEveryIdentity(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 5})
	a, addr := startProxy(t, cluster, adminExtra)
	pool := a.Registry().Snapshot().Servers[0].Pool()
	direct := cluster.Replicas[0].Addr
	identities := []boundIdentity{
		{"anonymous", "", ""},
		{"user 1", slapdtest.UserDN(1), slapdtest.UserPassword(1)},
		{"user 2", slapdtest.UserDN(2), slapdtest.UserPassword(2)},
		{"application", slapdtest.AppDN, slapdtest.AppPassword},
	}
	want := map[string]string{}
	for _, id := range identities {
		want[id.name] = dumpTree(t, connectAs(t, direct, id.dn, id.password))
		connectAs(t, addr, id.dn, id.password)
	}
	eventually(t, 10*time.Second, "a bound connection per bound identity", func() bool { return pool.Stats().OpenBound >= 3 })

	const clientsPerIdentity, rounds = 4, 5
	errs := make(chan error, len(identities)*clientsPerIdentity*2)
	var wg sync.WaitGroup
	for _, id := range identities {
		for range clientsPerIdentity {
			conn := connectAs(t, addr, id.dn, id.password)
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- readsAsDirectly(conn, id, want[id.name], rounds)
				}()
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := metric(t, a, `ldapmux_pool_open_connections{kind="bound",server="ds1"}`); got < 3 {
		t.Errorf("bound connections open = %v, want at least 3", got)
	}
	if st := pool.Stats(); st.OpenBound > st.MaxBound {
		t.Errorf("%d bound connections, past the cap %d", st.OpenBound, st.MaxBound)
	}
}

// readsAsDirectly reads the whole tree rounds times on conn and compares
// each answer with what id reads directly.
func readsAsDirectly(conn *ldap.Conn, id boundIdentity, want string, rounds int) error {
	for range rounds {
		got, err := treeOf(conn)
		if err != nil {
			return fmt.Errorf("%s: %w", id.name, err)
		}
		if got != want {
			return fmt.Errorf("%s through ldapmux:\n%s\ndirectly:\n%s", id.name, got, want)
		}
	}
	return nil
}

// TestRestrictedSessionIsNotShared runs slapd's password policy: a user
// whose password was reset must change it, and slapd restricts a session
// bound with it to that. ldapmux must not keep such a connection for the
// user's later clients: once the user has changed the password, a new
// client bound with it reads through ldapmux as directly.
func TestRestrictedSessionIsNotShared(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3, PasswordPolicy: true})
	a, addr := startProxy(t, cluster, adminExtra)
	pool := a.Registry().Snapshot().Servers[0].Pool()
	direct := cluster.Replicas[0].Addr
	user := slapdtest.UserDN(3)
	admin := bindAs(t, direct, slapdtest.AdminDN, slapdtest.AdminPassword)
	reset := ldap.NewModifyRequest(user, nil)
	reset.Replace("userPassword", []string{"reset.3"})
	reset.Replace("pwdReset", []string{"TRUE"})
	if err := admin.Modify(reset); err != nil {
		t.Fatalf("reset the password: %v", err)
	}
	if _, err := searchDNs(bindAs(t, direct, user, "reset.3"), slapdtest.PeopleDN, "(uid=user.1)", "uid"); resultCode(err) != ldap.LDAPResultInsufficientAccessRights {
		t.Fatalf("search directly with a reset password: %v; want insufficientAccessRights (the password policy restricts the session)", err)
	}

	restricted := bindAs(t, addr, user, "reset.3")
	checked := func() bool { st := pool.Stats(); return st.IdleBinds >= 1 && st.OpenBound == 0 }
	eventually(t, 10*time.Second, "the restricted connection checked and given back to the bind connections", checked)
	change := ldap.NewPasswordModifyRequest("", "reset.3", "changed.3")
	if _, err := restricted.PasswordModify(change); err != nil {
		t.Fatalf("change the password through ldapmux: %v", err)
	}

	want, err := treeOf(bindAs(t, direct, user, "changed.3"))
	if err != nil {
		t.Fatal(err)
	}
	later := bindAs(t, addr, user, "changed.3")
	eventually(t, 10*time.Second, "the new bind's connection kept bound", func() bool { return pool.Stats().OpenBound == 1 })
	if err := readsAsDirectly(later, boundIdentity{"user 3 after the change", user, "changed.3"}, want, 3); err != nil {
		t.Fatal(err)
	}
}
