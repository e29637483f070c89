package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// tlsCluster starts slapd with a certificate for 127.0.0.1 issued by ca,
// listening on ldap:// (StartTLS) and ldaps://.
func tlsCluster(t *testing.T, ca *testCA, opts slapdtest.Options) *slapdtest.Cluster {
	t.Helper()
	cert := ca.server("slapd", "127.0.0.1", "localhost")
	opts.TLSCertFile, opts.TLSKeyFile, opts.LDAPS = cert.CertFile, cert.KeyFile, true
	return slapdtest.ForTest(t, opts)
}

// TestBackendTLS reaches slapd over LDAPS and over StartTLS with the
// certificate verified against a CA bundle; binds, searches and health
// checks all go through TLS.
func TestBackendTLS(t *testing.T) {
	ca := newTestCA(t, "directory")
	cluster := tlsCluster(t, ca, slapdtest.Options{Replicas: 1, Users: 3})
	for _, c := range []struct {
		mode, extra string
		ldaps       bool
	}{
		{"ldaps", "ca-file: " + ca.File, true},
		{"starttls", "ca-file: " + ca.File, false},
		{"ldaps", "insecure-skip-verify: true, server-name: not.checked", true},
	} {
		t.Run(c.mode+" "+strings.Fields(c.extra)[0], func(t *testing.T) {
			a, _, _ := startLoggedProxy(t, "listen:\n  - address: 127.0.0.1:0\n"+
				tlsServers(cluster, c.ldaps, fmt.Sprintf("{mode: %s, %s}", c.mode, c.extra)))
			addr := a.Addrs()[0]
			conn := bindAs(t, addr, slapdtest.UserDN(2), slapdtest.UserPassword(2))
			if err := expectUser(conn, 2); err != nil {
				t.Fatal(err)
			}
			target := a.Checker().Targets()[0]
			eventually(t, 10*time.Second, "health checks over TLS", func() bool { return target.Runs() >= 2 })
			if h := a.Registry().Snapshot().Servers[0].Health; h.State != backend.Available {
				t.Fatalf("health over %s: %s (%s)", c.mode, h.State, h.Reason)
			}
		})
	}
}

// TestBackendTLSVerifiesHostName points the proxy at slapd with a name the
// certificate does not hold, or a CA that did not sign it: operations and
// health checks both refuse the server.
func TestBackendTLSVerifiesHostName(t *testing.T) {
	ca := newTestCA(t, "directory")
	cluster := tlsCluster(t, ca, slapdtest.Options{Replicas: 1, Users: 2})
	for name, tlsYAML := range map[string]string{
		"wrong name":     fmt.Sprintf("{mode: ldaps, ca-file: %s, server-name: ldap.example.org}", ca.File),
		"wrong CA":       fmt.Sprintf("{mode: ldaps, ca-file: %s}", newTestCA(t, "other").File),
		"system roots":   "{mode: starttls}",
		"starttls wrong": fmt.Sprintf("{mode: starttls, ca-file: %s, server-name: ldap.example.org}", ca.File),
	} {
		t.Run(name, func(t *testing.T) {
			a, _, logs := startLoggedProxy(t, "listen:\n  - address: 127.0.0.1:0\n"+
				tlsServers(cluster, strings.Contains(tlsYAML, "ldaps"), tlsYAML))
			conn := dial(t, a.Addrs()[0])
			if err := expectUID(conn, 1); resultCode(err) != 52 {
				t.Fatalf("search through an unverifiable server: want unavailable (52), got %v", err)
			}
			eventually(t, 10*time.Second, "the health check refusing the certificate", func() bool {
				h := a.Registry().Snapshot().Servers[0].Health
				return h.State == backend.Unavailable && strings.Contains(h.Reason, "certificate")
			})
			if !strings.Contains(logs.String(), "certificate") {
				t.Fatalf("the log does not say why:\n%s", logs)
			}
		})
	}
}

// TestBackendClientCertificate presents a client certificate to a slapd
// that demands one.
func TestBackendClientCertificate(t *testing.T) {
	ca := newTestCA(t, "directory")
	clients := newTestCA(t, "proxies")
	proxyCert := clients.client("ldapmux")
	cluster := tlsCluster(t, ca, slapdtest.Options{Replicas: 1, Users: 2, TLSCAFile: clients.File, TLSVerifyClient: "demand"})
	with := fmt.Sprintf("{mode: ldaps, ca-file: %s, cert-file: %s, key-file: %s}", ca.File, proxyCert.CertFile, proxyCert.KeyFile)
	_, addr := startProxyYAML(t, "listen:\n  - address: 127.0.0.1:0\n"+tlsServers(cluster, true, with))
	if err := expectUser(bindAs(t, addr, slapdtest.UserDN(1), slapdtest.UserPassword(1)), 1); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	without := fmt.Sprintf("{mode: ldaps, ca-file: %s}", ca.File)
	_, addr = startProxyYAML(t, "listen:\n  - address: 127.0.0.1:0\n"+tlsServers(cluster, true, without))
	if err := expectUID(dial(t, addr), 1); resultCode(err) != 52 {
		t.Fatalf("without a client certificate: want unavailable (52), got %v", err)
	}
}
