package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/fakeldap"
)

// heldBase is the search base the first fake server hangs on.
const heldBase = "ou=held,dc=example,dc=com"

// startHangingPair runs ldapmux (failover) in front of two fake servers;
// the first one sends its entries for searches under heldBase and never
// their final result.
func startHangingPair(t *testing.T, entries int) (addr string, second *fakeldap.Server) {
	t.Helper()
	first, second := startFake(t, entries), startFake(t, entries)
	first.Watch(heldBase, true)
	second.Watch(heldBase, false)
	cfg, err := config.Parse(fmt.Appendf(nil, `listen: [{address: '127.0.0.1:0'}]
servers:
  - {name: ds1, address: '%s'}
  - {name: ds2, address: '%s'}
service-account: {bind-dn: 'cn=svc', password: x}
load-balancing: {algorithm: failover}
pool: {operation-timeout: 300ms}
log: {level: error}
`, first.Addr(), second.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	return startApp(t, cfg).Addrs()[0], second
}

func searchHeld(t *testing.T, addr string) (*ldap.SearchResult, error) {
	t.Helper()
	conn, err := ldap.DialURL("ldap://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.Search(ldap.NewSearchRequest(heldBase, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
}

// TestReadWithoutResponsesMovesToNextServer: a search that got nothing back
// before the operation timeout is retried on the next server, and the
// client never sees the hang.
func TestReadWithoutResponsesMovesToNextServer(t *testing.T) {
	addr, second := startHangingPair(t, 0)
	res, err := searchHeld(t, addr)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	if len(res.Entries) != 0 {
		t.Fatalf("%d entries, want 0", len(res.Entries))
	}
	if got := second.Watched(); got != 1 {
		t.Fatalf("the second server got the search %d times, want 1", got)
	}
}

// TestReadCutOffMidwayFailsClearly: a search whose entries already reached
// the client cannot move to another server without sending them twice; the
// client gets timeLimitExceeded saying so, and the second server is not
// asked.
func TestReadCutOffMidwayFailsClearly(t *testing.T) {
	addr, second := startHangingPair(t, 1)
	_, err := searchHeld(t, addr)
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultTimeLimitExceeded) {
		t.Fatalf("got %v, want timeLimitExceeded", err)
	}
	for _, want := range []string{"ds1", "after 1 responses already sent", "not moved to another server"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := second.Watched(); got != 0 {
		t.Errorf("the second server got the search %d times, want 0", got)
	}
}
