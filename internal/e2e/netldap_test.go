package e2e

import (
	"os/exec"
	"testing"
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
	sameWriterAndReaders(t, func(uri string, args ...string) ([][2]any, error) { return netLDAPClient(perl, uri, args...) })
}

// netLDAPClient runs testdata/netldap_client.pl against uri and returns its
// transcript.
func netLDAPClient(perl, uri string, args ...string) ([][2]any, error) {
	return scriptTranscript("Net::LDAP client", perl, "testdata/netldap_client.pl", uri, args...)
}
