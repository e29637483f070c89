package slapdrun

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/testcert"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key to dir.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	certFile, keyFile = testcert.SelfSigned(t, dir, "slapd", "127.0.0.1")
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return certFile, keyFile, pool
}

// TestTLS starts a replica with a certificate: ldaps:// and StartTLS both
// work with the certificate verified.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := writeSelfSigned(t, t.TempDir())
	c := ForTest(t, Options{Replicas: 1, Users: 1, TLSCertFile: certFile, TLSKeyFile: keyFile, LDAPS: true})
	r := c.Replicas[0]
	if r.LDAPSPort == 0 || r.LDAPSPort == r.Port || r.LDAPSURL != "ldaps://"+r.LDAPSAddr {
		t.Fatalf("LDAPS port %d, URL %s", r.LDAPSPort, r.LDAPSURL)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	conn, err := ldap.DialURL(r.LDAPSURL, ldap.DialWithTLSConfig(tc))
	if err != nil {
		t.Fatalf("ldaps: %v", err)
	}
	defer conn.Close()
	if err := conn.Bind(UserDN(1), UserPassword(1)); err != nil {
		t.Fatal(err)
	}
	plain, err := ldap.DialURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.StartTLS(tc); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := plain.Bind(UserDN(1), UserPassword(1)); err != nil {
		t.Fatal(err)
	}
}

func TestTLSOptionsChecked(t *testing.T) {
	for name, o := range map[string]Options{
		"ldaps without certificate": {LDAPS: true},
		"key without certificate":   {TLSKeyFile: "k"},
		"bad verify-client":         {TLSCertFile: "c", TLSKeyFile: "k", TLSVerifyClient: "sometimes"},
	} {
		if _, err := o.tlsConf(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
