package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
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
	wantPasswordPolicy(t, a, false)
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
	// Each bind as a DN keeps its connection while the DN has fewer than
	// connections-per-server: the 3 bound identities have more than one each.
	eventually(t, 10*time.Second, "several bound connections per bound identity", func() bool { return pool.Stats().OpenBound >= 6 })
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

// TestPasswordPolicyAppliesAsDirectly runs slapd's password policy: a
// user whose password was reset must change it, and slapd restricts a
// session bound with it to that, saying so only to a client that asks. A
// client sees the same through ldapmux as directly: the same bind answers
// (with the policy control when it asked, without when it did not), the
// same refusal before the change, and on the same connection, after the
// change, the same reads. ldapmux never shares such a session with the
// user's later clients, whose bound connection (without a control) reads
// as directly too.
func TestPasswordPolicyAppliesAsDirectly(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3, PasswordPolicy: true})
	a, addr := startProxy(t, cluster, adminExtra)
	wantPasswordPolicy(t, a, true)
	pool := a.Registry().Snapshot().Servers[0].Pool()
	direct := cluster.Replicas[0].Addr
	user := slapdtest.UserDN(3)
	admin := bindAs(t, direct, slapdtest.AdminDN, slapdtest.AdminPassword)
	resetPassword := func(password string) {
		t.Helper()
		reset := ldap.NewModifyRequest(user, nil)
		reset.Replace("userPassword", []string{password})
		reset.Replace("pwdReset", []string{"TRUE"})
		if err := admin.Modify(reset); err != nil {
			t.Fatalf("reset the password: %v", err)
		}
	}

	type view struct {
		bindControls  string // the bind answer's controls
		before, after string // a read before and after the change on the same connection
	}
	session := func(addr, password, next string, asks bool) view {
		t.Helper()
		resetPassword(password)
		conn := dial(t, addr)
		var v view
		req := &ldap.SimpleBindRequest{Username: user, Password: password}
		if asks {
			req.Controls = []ldap.Control{ldap.NewControlBeheraPasswordPolicy()}
		}
		res, err := conn.SimpleBind(req)
		if err != nil {
			t.Fatalf("bind: %v", err)
		}
		for _, c := range res.Controls {
			v.bindControls += c.String() + ";"
		}
		v.before = readOutcome(conn)
		if _, err := conn.PasswordModify(ldap.NewPasswordModifyRequest("", password, next)); err != nil {
			t.Fatalf("change the password: %v", err)
		}
		v.after = readOutcome(conn)
		return v
	}
	for _, asks := range []bool{false, true} {
		want := session(direct, "reset.a", "changed.a", asks)
		if !strings.Contains(want.before, "Insufficient") {
			t.Fatalf("directly, a read with a reset password gave %q; want insufficientAccessRights", want.before)
		}
		got := session(addr, "reset.b", "changed.b", asks)
		if got != want {
			t.Fatalf("asking for the policy control %v:\nthrough ldapmux %+v\ndirectly        %+v", asks, got, want)
		}
		if pool.Stats().OpenBound != 0 {
			t.Fatalf("a restricted session was kept as a bound connection: %+v", pool.Stats())
		}
	}

	later := bindAs(t, addr, user, "changed.b")
	eventually(t, 10*time.Second, "the new bind's connection kept bound", func() bool { return pool.Stats().OpenBound == 1 })
	want, err := treeOf(bindAs(t, direct, user, "changed.b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := readsAsDirectly(later, boundIdentity{"user 3 after the change", user, "changed.b"}, want, 3); err != nil {
		t.Fatal(err)
	}
}

// wantPasswordPolicy checks what ldapmux read of every server's root DSE,
// as its status report shows it: whether it lists the password policy
// control, which decides whether ldapmux asks the binds it checks for it
// (slapd without its ppolicy module does not list it; with it, and 389
// Directory Server, do).
func wantPasswordPolicy(t *testing.T, a *app.App, want bool) {
	t.Helper()
	eventually(t, 30*time.Second, "every server's root DSE read", func() bool {
		for _, s := range a.Registry().Snapshot().Servers {
			if s.Capabilities() == nil {
				return false
			}
		}
		return true
	})
	for _, s := range a.Status().Servers { // what /api/status, the status page and ldapmux status show
		if s.PasswordPolicy != want {
			t.Errorf("%s: lists the password policy control: %v, want %v", s.Name, s.PasswordPolicy, want)
		}
	}
}

// readOutcome reads an entry and describes the outcome: its DN, or the error.
func readOutcome(conn *ldap.Conn) string {
	entries, err := searchDNs(conn, slapdtest.PeopleDN, "(uid=user.1)", "uid")
	if err != nil {
		return err.Error()
	}
	out := ""
	for _, e := range entries {
		out += e.DN + ";"
	}
	return out
}
