package e2e

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// troubleParent holds entries that every replica has and that the first
// replica's slapo-retcode answers for instead, as a server in trouble does.
const troubleParent = "ou=trouble,dc=example,dc=com"

const troubleLDIF = `
dn: ou=trouble,dc=example,dc=com
objectClass: organizationalUnit
ou: trouble

dn: cn=busy,ou=trouble,dc=example,dc=com
objectClass: organizationalRole
cn: busy
description: served by a replica that is not busy

dn: cn=offline,ou=trouble,dc=example,dc=com
objectClass: organizationalRole
cn: offline
description: served by a replica that is online
`

// TestBusyOrUnavailableReadsMoveOn: a replica that answers a read busy (51)
// or unavailable (52) did not run it, so ldapmux sends it to the next one
// and the client gets that replica's answer, exactly as straight from it;
// in front of that replica alone the client gets the replica's own answer,
// exactly as straight from it, and a write too. The replica becomes
// degraded, so that writes go to the other one meanwhile.
func TestBusyOrUnavailableReadsMoveOn(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 3, ExtraLDIF: troubleLDIF,
		RetcodeParent: troubleParent, Retcode: map[int][]string{1: {
			`"cn=busy" 0x33 op=search,compare,modify text="too busy here"`,
			`"cn=offline" 0x34 op=search,compare text="offline here"`,
		}}})
	troubled, healthy := cluster.Replicas[0], cluster.Replicas[1]
	// A proxy per read: the first decline makes the replica degraded, and
	// the next reads go straight to the other one.
	fresh := func() string { _, addr := startProxy(t, cluster, ""); return addr } // failover: the troubled replica first
	_, aloneAddr := startProxyYAML(t, fmt.Sprintf("listen:\n  - address: 127.0.0.1:0\nservers:\n  - name: ds1\n    address: %s\n"+
		"service-account:\n  bind-dn: %s\n  password: %s\n", troubled.Addr, slapdtest.ServiceDN, slapdtest.ServicePassword))

	for _, cn := range []string{"busy", "offline"} {
		dn := "cn=" + cn + "," + troubleParent
		refusal := baseOutcome(t, troubled.Addr, dn)
		if !strings.HasPrefix(refusal, "result 5") {
			t.Fatalf("straight to the troubled replica, %s: %s; want busy or unavailable (is slapo-retcode loaded?)", dn, refusal)
		}
		got, want := baseOutcome(t, fresh(), dn), baseOutcome(t, healthy.Addr, dn)
		if got != want {
			t.Errorf("%s through ldapmux: %s; straight to the other replica: %s", dn, got, want)
		}
		t.Logf("%s: straight to the troubled replica %s; through ldapmux %s", dn, refusal, got)
		if got := baseOutcome(t, aloneAddr, dn); got != refusal {
			t.Errorf("%s through ldapmux in front of the troubled replica alone: %s; straight to it: %s", dn, got, refusal)
		}
		compare := func(at string) string {
			matched, err := dial(t, at).Compare(dn, "cn", cn)
			if err != nil {
				return resultText(err)
			}
			return fmt.Sprint("compared: ", matched)
		}
		if got, want := compare(fresh()), compare(healthy.Addr); got != want || compare(troubled.Addr) != refusal {
			t.Errorf("compare on %s through ldapmux: %s; straight to the other replica: %s, to the troubled one: %s", dn, got, want, compare(troubled.Addr))
		}
	}

	concurrentReads(t, fresh(), healthy.Addr)

	a, addr := startProxy(t, cluster, "")
	if got, want := baseOutcome(t, addr, "cn=busy,"+troubleParent), baseOutcome(t, healthy.Addr, "cn=busy,"+troubleParent); got != want {
		t.Fatalf("through ldapmux: %s; straight to the other replica: %s", got, want)
	}
	if h := a.Registry().Snapshot().Servers[0].Health; h.State != backend.Degraded || h.Check != "declined" {
		t.Errorf("the troubled replica is %s by %q (%s); want degraded by its declined operations", h.State, h.Check, h.Reason)
	}
	write := func(at string) string {
		mod := ldap.NewModifyRequest("cn=busy,"+troubleParent, nil)
		mod.Replace("description", []string{"changed"})
		return resultText(bindAs(t, at, slapdtest.WriterDN, slapdtest.WriterPassword).Modify(mod))
	}
	if got, want := write(addr), write(healthy.Addr); got != want {
		t.Errorf("a write through ldapmux once the troubled replica is degraded: %s; straight to the other replica: %s", got, want)
	}
	if got, want := write(aloneAddr), write(troubled.Addr); got != want || !strings.HasPrefix(want, "result 51") {
		t.Errorf("a write through ldapmux in front of the troubled replica alone: %s; straight to it: %s (want busy, never sent twice)", got, want)
	}
}

// concurrentReads has 8 clients at once, anonymous and bound as users, read
// the entries the troubled replica declines through ldapmux: each gets
// what the same client gets straight from the healthy replica.
func concurrentReads(t *testing.T, proxied, healthy string) {
	t.Helper()
	const clients = 8
	var wg sync.WaitGroup
	errs := make(chan string, clients*2)
	for i := range clients {
		via, direct := dial(t, proxied), dial(t, healthy) // dialed here: a failure ends the test on its goroutine
		wg.Go(func() {
			if i%2 == 1 {
				for _, c := range []*ldap.Conn{via, direct} {
					if err := c.Bind(slapdtest.UserDN(i%3+1), slapdtest.UserPassword(i%3+1)); err != nil {
						errs <- fmt.Sprintf("client %d: bind: %v", i, err)
						return
					}
				}
			}
			for _, cn := range []string{"busy", "offline"} {
				dn := "cn=" + cn + "," + troubleParent
				if got, want := searchText(via, dn), searchText(direct, dn); got != want {
					errs <- fmt.Sprintf("client %d, %s: through ldapmux %s; straight to the healthy replica %s", i, dn, got, want)
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

// baseOutcome is a base search of dn at addr, as text: its entry or its
// result.
func baseOutcome(t *testing.T, addr, dn string) string {
	t.Helper()
	return searchText(dial(t, addr), dn)
}

// searchText is a base search of dn on conn, as text.
func searchText(conn *ldap.Conn, dn string) string {
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"cn", "description"}, nil))
	if err != nil {
		return resultText(err)
	}
	var b strings.Builder
	for _, e := range res.Entries {
		fmt.Fprintf(&b, "entry %s cn=%q description=%q; ", e.DN, e.GetAttributeValues("cn"), e.GetAttributeValues("description"))
	}
	return b.String()
}

// resultText is an operation's outcome as text: its result code and
// diagnostic, or "success".
func resultText(err error) string {
	var lerr *ldap.Error
	switch {
	case err == nil:
		return "success"
	case errors.As(err, &lerr):
		return fmt.Sprintf("result %d: %s", lerr.ResultCode, lerr.Err)
	}
	return "error: " + err.Error()
}

// TestReadThatBringsServersDownTriesTwo: a read on which every replica drops
// its connection (slapo-retcode disconnects, as a server that crashes on a
// request does) is tried on two servers, not on every replica: the client
// gets unavailable (52) saying why, the third replica keeps serving, and
// the two are back at their health checks.
func TestReadThatBringsServersDownTriesTwo(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 3, Users: 3, ExtraLDIF: troubleLDIF + `
dn: cn=deadly,ou=trouble,dc=example,dc=com
objectClass: organizationalRole
cn: deadly
`, RetcodeParent: troubleParent, Retcode: map[int][]string{
		1: {`"cn=deadly" 0x34 op=search flags=pre-disconnect`},
		2: {`"cn=deadly" 0x34 op=search flags=pre-disconnect`},
		3: {`"cn=deadly" 0x34 op=search flags=pre-disconnect`},
	}})
	a, addr := startProxy(t, cluster, "health-check-frequency: 200ms\n")
	deadly := "cn=deadly," + troubleParent
	if got := baseOutcome(t, cluster.Replicas[0].Addr, deadly); !strings.HasPrefix(got, "error: ") && !strings.Contains(got, "result 200") {
		t.Fatalf("straight to slapd: %s; want the connection dropped (is slapo-retcode loaded?)", got)
	}
	got := baseOutcome(t, addr, deadly)
	if !strings.HasPrefix(got, "result 52") || !strings.Contains(got, "in case the request itself brings servers down") {
		t.Fatalf("through ldapmux: %s; want unavailable (52) saying why no third server was tried", got)
	}
	// The attempts are counted once the operation has ended, which may
	// be just after its answer reached the client.
	tried := func() []string {
		var names []string
		for _, s := range a.Status().Servers {
			if s.Failed > 0 {
				names = append(names, s.Name)
			}
		}
		return names
	}
	eventually(t, 5*time.Second, "the failed attempts counted", func() bool { return len(tried()) >= 2 })
	if got := tried(); len(got) != 2 {
		t.Fatalf("servers the read failed on: %v; want two", got)
	}
	if got, want := baseOutcome(t, addr, "cn=busy,"+troubleParent), baseOutcome(t, cluster.Replicas[2].Addr, "cn=busy,"+troubleParent); got != want {
		t.Errorf("another read meanwhile: %s; straight to the replica left: %s", got, want)
	}
	eventually(t, 20*time.Second, "every server back at its health check", func() bool {
		for _, s := range a.Registry().Snapshot().Servers {
			if s.Health.State != backend.Available {
				return false
			}
		}
		return true
	})
}
