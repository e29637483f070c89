package e2e

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestRequestPastTheServerLimitEndsNoOtherOperation sends, through ldapmux,
// an add larger than slapd takes from an authenticated client (here
// `sockbuf_max_incoming_auth` 1 MiB): slapd closes the connection that
// carries it. Straight to slapd that is the client's own connection; through
// ldapmux it must be too. Meanwhile four other clients keep writing through
// what would be the same shared server connection (one per server, no
// connection kept bound as a client); none of their operations may fail,
// the shared connection must stay open, and the server available. The client of the large add gets
// unavailable (52) saying why, the add is not applied, and an add under the
// limit is applied through ldapmux as straight.
func TestRequestPastTheServerLimitEndsNoOtherOperation(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 8, MaxIncomingAuth: 1 << 20})
	primary := cluster.Replica(1)
	a, addr := startProxy(t, cluster, adminExtra+`pool:
  connections-per-server: 1
  max-connections-per-server: 1
  bound-connections-per-server: 0
`)
	writer := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	defer writer.Close()
	for n := 1; n <= 4; n++ {
		addRole(t, writer, n)
	}
	stop := make(chan struct{})
	var written atomic.Int64
	var failures sync.Map
	var wg sync.WaitGroup
	for n := 1; n <= 4; n++ {
		conn := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
		wg.Go(func() {
			defer conn.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mod := ldap.NewModifyRequest(roleDN(n), nil)
				mod.Replace("description", []string{strings.Repeat("d", 1+i%64)})
				if err := conn.Modify(mod); err != nil {
					failures.Store(n, err)
					return
				}
				written.Add(1)
			}
		})
	}
	eventually(t, 10*time.Second, "the writers under way", func() bool {
		failures.Range(func(n, err any) bool { t.Fatalf("client %d: %v", n, err); return false })
		return written.Load() >= 50
	})

	direct := bindAs(t, primary.Addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	defer direct.Close()
	tooLarge := roleWithDescription("too-large", 2<<20)
	straight := direct.Add(tooLarge)
	err := writer.Add(tooLarge)
	before := written.Load()
	eventually(t, 10*time.Second, "the writers going on after the large add", func() bool { return written.Load() >= before+50 })
	close(stop)
	wg.Wait()

	var answered *ldap.Error
	if straight == nil || errors.As(straight, &answered) && answered.ResultCode < ldap.ErrorNetwork {
		t.Fatalf("straight to slapd, the add past its limit: %v; want the connection closed", straight)
	}
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnavailable) || !strings.Contains(err.Error(), "limit on request size") {
		t.Fatalf("through ldapmux, the add past the limit: %v; want unavailable (52) saying why", err)
	}
	failures.Range(func(n, err any) bool {
		t.Errorf("client %d's modify failed while the large add was sent: %v", n, err)
		return true
	})
	assertStayedAvailable(t, a)
	if opened := metric(t, a, `ldapmux_pool_connections_opened_total{kind="operation",server="ds1"}`); opened != 1 {
		t.Errorf("%v operation connections opened to ds1; want the first one kept throughout", opened)
	}
	check := bindAs(t, primary.Addr, slapdtest.WriterDN, slapdtest.WriterPassword) // slapd closed direct
	defer check.Close()
	if _, err := searchDNs(check, tooLarge.DN, "(objectClass=*)"); !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Fatalf("the add past the limit was applied: %v", err)
	}

	fits := roleWithDescription("fits", 600<<10)
	if err := writer.Add(fits); err != nil {
		t.Fatalf("add of %d KiB through ldapmux: %v", 600, err)
	}
	found, err := searchDNs(check, fits.DN, "(objectClass=*)", "description")
	if err != nil || len(found) != 1 || len(found[0].GetAttributeValue("description")) != 600<<10 {
		t.Fatalf("the add under the limit, read back straight: %v", err)
	}
	t.Logf("%d modifies by 4 clients on the shared connection, none failed", written.Load())

	// A search of 300 KiB is past slapd's limit for anonymous sessions
	// (sockbuf_max_incoming, 256 KiB) and within the one for bound ones.
	search := largeSearch(300 << 10)
	anonymous := dial(t, addr)
	defer anonymous.Close()
	_, err = anonymous.Search(search)
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnavailable) || !strings.Contains(err.Error(), "limit on request size") {
		t.Fatalf("an anonymous search past slapd's anonymous limit, through ldapmux: %v; want unavailable (52) saying why", err)
	}
	straightAnonymous := dial(t, primary.Addr)
	defer straightAnonymous.Close()
	if _, err := straightAnonymous.Search(search); err == nil || errors.As(err, &answered) && answered.ResultCode < ldap.ErrorNetwork {
		t.Fatalf("the same search straight to slapd: %v; want the connection closed", err)
	}
	res, err := writer.Search(search)
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("a bound client's search of 300 KiB through ldapmux: %v", err)
	}
	assertStayedAvailable(t, a)
}

// largeSearch is a subtree search of the scratch subtree for cn=fits
// whose filter, padded with alternatives that match nothing, makes the
// request about size bytes.
func largeSearch(size int) *ldap.SearchRequest {
	var f strings.Builder
	f.WriteString("(|(cn=fits)")
	for i := 0; f.Len() < size; i++ {
		fmt.Fprintf(&f, "(cn=absent-%06d-%s)", i, strings.Repeat("p", 40))
	}
	f.WriteString(")")
	return ldap.NewSearchRequest(slapdtest.ScratchDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, f.String(), []string{"cn"}, nil)
}

// roleWithDescription is scratchEntry with a description of size bytes.
func roleWithDescription(cn string, size int) *ldap.AddRequest {
	add := scratchEntry(cn)
	add.Attribute("description", []string{strings.Repeat("x", size)})
	return add
}
