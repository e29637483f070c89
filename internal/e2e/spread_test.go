package e2e

import (
	"testing"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestReadersAcrossReplicas runs the python-ldap, Net::LDAP and JNDI readers
// (paging, sorting, a virtual list view, compares, requests behind a bind,
// abandon) through ldapmux spreading every operation round robin over three
// replicas, several users at once, and compares each user's answers with
// the same client straight to one replica: a client's paging cookies and
// list views must stay with the server that issued them while its other
// operations move.
func TestReadersAcrossReplicas(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 3, Users: 40})
	_, addr := startProxy(t, cluster, "load-balancing: {algorithm: round-robin}\n")
	var users [][2]string
	for n := 1; n <= 6; n++ {
		users = append(users, [2]string{slapdtest.UserDN(n), slapdtest.UserPassword(n)})
	}
	compareReaders(t, readerRun{direct: "ldap://" + cluster.Replica(1).Addr, proxied: "ldap://" + addr,
		people: slapdtest.PeopleDN, restricted: slapdtest.RestrictedDN, users: users})
}
