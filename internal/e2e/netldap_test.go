package e2e

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// perlWithNetLDAP returns a Perl interpreter that has Net::LDAP (Debian's
// libnet-ldap-perl, installed by `make test`).
func perlWithNetLDAP(t *testing.T) string {
	t.Helper()
	perl, err := exec.LookPath("perl")
	if err == nil && exec.Command(perl, "-MNet::LDAP", "-MJSON::PP", "-e", "1").Run() == nil {
		return perl
	}
	t.Fatalf("no perl with Net::LDAP (Debian package libnet-ldap-perl): run `make test`, which installs it")
	return ""
}

// TestNetLDAPClients runs Perl's Net::LDAP, whose BER encoder is its own,
// as Perl tools use it (many requests in flight on one connection in its
// asynchronous mode, paging, sorting, a virtual list view, assertions, pre-
// and post-read controls, abandon, password changes), directly against the
// replica that failover uses and through ldapmux, and compares every
// answer: a writer, then twelve readers at once, each bound as its own user.
func TestNetLDAPClients(t *testing.T) {
	perl := perlWithNetLDAP(t)
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 40})
	_, addr := startProxy(t, cluster, "")
	direct, proxied := "ldap://"+cluster.Replica(1).Addr, "ldap://"+addr
	client := func(uri string, args ...string) ([][2]any, error) {
		return scriptTranscript("Net::LDAP client", perl, "testdata/netldap_client.pl", uri, args...)
	}

	writer := []string{"writer", slapdtest.WriterDN, slapdtest.WriterPassword, slapdtest.ScratchDN,
		slapdtest.UserDN(40), slapdtest.UserPassword(40)}
	want, err := client(direct, writer...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client(proxied, writer...)
	if err != nil {
		t.Fatal(err)
	}
	sameTranscript(t, "writer", want, got)

	const readers = 12
	reader := func(n int) []string {
		return []string{"reader", slapdtest.UserDN(n), slapdtest.UserPassword(n), slapdtest.PeopleDN}
	}
	wants := runReaders(t, client, direct, readers, reader)
	gots := runReaders(t, client, proxied, readers, reader)
	for n := 1; n <= readers; n++ {
		sameTranscript(t, fmt.Sprintf("reader %d", n), wants[n], gots[n])
	}
}
