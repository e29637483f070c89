package e2e

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// listenTLS renders a listener with the given certificate and extra keys.
func listenTLS(cert issued, extra string) string {
	return fmt.Sprintf("listen:\n  - address: 127.0.0.1:0\n    tls: {cert-file: %s, key-file: %s}\n%s", cert.CertFile, cert.KeyFile, extra)
}

// TestRequireSecureBind sends passwords over a plain listener that requires
// encryption: they are refused with confidentialityRequired and slapd never
// sees a bind; after StartTLS (go-ldap, then ldapsearch -ZZ) they work.
func TestRequireSecureBind(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	replica := cluster.Replicas[0]
	ca := newTestCA(t, "proxy")
	cert := ca.server("proxy", "127.0.0.1", "localhost")
	a, _, _ := startLoggedProxy(t, listenTLS(cert, "")+tlsServers(cluster, false, "")+
		"require-secure-bind: true\npool:\n  connections-per-server: 1\n")
	addr := a.Addrs()[0]

	plain := dial(t, addr)
	if err := expectUID(plain, 1); err != nil { // warms the pool: its service bind is done
		t.Fatal(err)
	}
	target := a.Checker().Targets()[0]
	eventually(t, 10*time.Second, "two health check runs (their connection is bound)", func() bool { return target.Runs() >= 2 })
	// Reading cn=monitor binds too: calibrate what one reading adds.
	first := opCount(t, replica, "bind")
	before := opCount(t, replica, "bind")
	own := before - first
	err := plain.Bind(slapdtest.UserDN(1), slapdtest.UserPassword(1))
	if resultCode(err) != ldapwire.ConfidentialityRequired {
		t.Fatalf("bind over plain LDAP: want confidentialityRequired (13), got %v", err)
	}
	if err := plain.Bind(slapdtest.UserDN(1), "wrong"); resultCode(err) != ldapwire.ConfidentialityRequired {
		t.Fatalf("wrong password over plain LDAP: want 13, got %v", err)
	}
	if _, err := plain.PasswordModify(ldap.NewPasswordModifyRequest(slapdtest.UserDN(1), slapdtest.UserPassword(1), "new")); resultCode(err) != ldapwire.ConfidentialityRequired {
		t.Fatalf("password modify over plain LDAP: want 13, got %v", err)
	}
	if err := plain.UnauthenticatedBind(""); err != nil {
		t.Fatalf("anonymous bind must still work: %v", err)
	}
	if got := whoAmI(t, plain); got != "" {
		t.Fatalf("refused bind left identity %q", got)
	}
	if err := expectUID(plain, 2); err != nil {
		t.Fatal(err)
	}
	if after := opCount(t, replica, "bind"); after-before != own {
		t.Fatalf("slapd counted %d binds while passwords were refused: a password was forwarded", after-before-own)
	}

	secured := dial(t, addr)
	if err := secured.StartTLS(ca.clientTLS(nil)); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := secured.Bind(slapdtest.UserDN(1), slapdtest.UserPassword(1)); err != nil {
		t.Fatalf("bind after StartTLS: %v", err)
	}
	if got := whoAmI(t, secured); got != "dn:"+slapdtest.UserDN(1) {
		t.Fatalf("WhoAmI after StartTLS bind = %q", got)
	}
	if err := secured.StartTLS(ca.clientTLS(nil)); err == nil {
		t.Fatal("a second StartTLS must fail")
	}

	env := []string{"LDAPTLS_CACERT=" + ca.File, "LDAPTLS_REQCERT=demand"}
	uri := "ldap://" + addr
	out, err := runTool(t, env, "ldapwhoami", "-x", "-ZZ", "-H", uri, "-D", slapdtest.UserDN(2), "-w", slapdtest.UserPassword(2))
	if err != nil || !strings.Contains(out, "dn:"+slapdtest.UserDN(2)) {
		t.Fatalf("ldapwhoami -ZZ: %v\n%s", err, out)
	}
	out, err = runTool(t, env, "ldapsearch", "-x", "-ZZ", "-H", uri, "-D", slapdtest.UserDN(3), "-w", slapdtest.UserPassword(3),
		"-b", slapdtest.PeopleDN, "(uid=user.3)", "mail")
	if err != nil || !strings.Contains(out, "mail: "+slapdtest.UserMail(3)) {
		t.Fatalf("ldapsearch -ZZ: %v\n%s", err, out)
	}
	out, err = runTool(t, env, "ldapwhoami", "-x", "-H", uri, "-D", slapdtest.UserDN(2), "-w", slapdtest.UserPassword(2))
	if err == nil || !strings.Contains(out, "Confidentiality required (13)") {
		t.Fatalf("ldapwhoami without -ZZ: want Confidentiality required, got %v\n%s", err, out)
	}
}

// TestUnauthenticatedBinds checks RFC 4513 5.1.2 binds (a DN with no
// password). By default the server answers them: a slapd that refuses them
// (its default) is heard word for word, as straight; one that accepts
// them (allow bind_anon_dn) is answered unwillingToPerform all the same,
// for clients that would take that success for a valid password. With
// allow-unauthenticated-binds ldapmux answers success itself. The client
// is anonymous after each, as straight.
func TestUnauthenticatedBinds(t *testing.T) {
	for _, serverAllows := range []bool{false, true} {
		opts := slapdtest.Options{Replicas: 1, Users: 2}
		if serverAllows {
			opts.Allow = "bind_anon_dn"
		}
		cluster := slapdtest.ForTest(t, opts)
		direct := rawDial(t, cluster.Replicas[0].Addr)
		straight := direct.exchange(t, message(1, bindOp(slapdtest.UserDN(1), "")).Bytes(), 1)
		for _, allow := range []bool{false, true} {
			_, addr := startProxy(t, cluster, fmt.Sprintf("allow-unauthenticated-binds: %v\n", allow))
			proxied := rawDial(t, addr)
			got := proxied.exchange(t, message(1, bindOp(slapdtest.UserDN(1), "")).Bytes(), 1)
			res, err := ldapwire.ParseResult(mustParse(t, got[0]).Body)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case allow && res.Code != ldapwire.Success:
				t.Errorf("server allows %v, allow-unauthenticated-binds: %d %q, want success", serverAllows, res.Code, res.Diagnostic)
			case !allow && serverAllows && (res.Code != ldapwire.UnwillingToPerform || string(res.Diagnostic) != proxy.UnauthenticatedRefusal):
				t.Errorf("slapd accepts them: through ldapmux %d %q, want unwillingToPerform", res.Code, res.Diagnostic)
			case !allow && !serverAllows && !sameFrames(straight, got):
				t.Errorf("slapd refuses them: through ldapmux %s, straight %s", describeFrames(got), describeFrames(straight))
			}
			who := proxied.exchange(t, message(2, extendedOp(ldapwire.OIDWhoAmI)).Bytes(), 2)
			if v := whoAmIValue(t, who[0]); v != "" {
				t.Errorf("server allows %v, allow %v: identity %q after an unauthenticated bind, want anonymous", serverAllows, allow, v)
			}
		}
		t.Logf("slapd allowing unauthenticated binds %v answers %s", serverAllows, describeFrames(straight))
	}
}

// TestLDAPSListener serves LDAPS to go-ldap and to ldapsearch, and refuses
// clients that do not speak TLS.
func TestLDAPSListener(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	ca := newTestCA(t, "proxy")
	cert := ca.server("proxy", "127.0.0.1")
	a, _, _ := startLoggedProxy(t, listenTLS(cert, "    mode: ldaps\n")+tlsServers(cluster, false, "")+"require-secure-bind: true\n")
	addr := a.Addrs()[0]

	conn, err := ldap.DialURL("ldaps://"+addr, ldap.DialWithTLSConfig(ca.clientTLS(nil)))
	if err != nil {
		t.Fatalf("ldaps dial: %v", err)
	}
	defer conn.Close()
	if err := conn.Bind(slapdtest.UserDN(1), slapdtest.UserPassword(1)); err != nil {
		t.Fatalf("bind over LDAPS: %v", err)
	}
	if err := expectUser(conn, 2); err != nil {
		t.Fatal(err)
	}
	if err := conn.StartTLS(ca.clientTLS(nil)); err == nil {
		t.Fatal("StartTLS on an LDAPS connection must fail")
	}

	out, err := runTool(t, []string{"LDAPTLS_CACERT=" + ca.File}, "ldapsearch", "-x", "-H", "ldaps://"+addr,
		"-D", slapdtest.UserDN(3), "-w", slapdtest.UserPassword(3), "-b", slapdtest.PeopleDN, "(uid=user.3)", "mail")
	if err != nil || !strings.Contains(out, "mail: "+slapdtest.UserMail(3)) {
		t.Fatalf("ldapsearch ldaps://: %v\n%s", err, out)
	}
	out, err = runTool(t, []string{"LDAPTLS_CACERT=" + newTestCA(t, "other").File}, "ldapsearch", "-x", "-H", "ldaps://"+addr, "-b", "", "-s", "base")
	if err == nil {
		t.Fatalf("ldapsearch trusting another CA must fail:\n%s", out)
	}
	c := rawDial(t, addr) // plain LDAP on the LDAPS port: the handshake fails
	c.send(baseSearch(1, ""))
	if _, err := c.next(); err == nil {
		t.Fatal("plain LDAP on an LDAPS listener got an answer")
	}
}

// TestClientCertificatesAndVersions requires client certificates from a
// given CA and TLS 1.3.
func TestClientCertificatesAndVersions(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 2})
	ca := newTestCA(t, "proxy")
	clients := newTestCA(t, "clients")
	cert := ca.server("proxy", "127.0.0.1")
	good := clients.client("app")
	stranger := newTestCA(t, "stranger").client("intruder")
	tlsKeys := fmt.Sprintf("    mode: ldaps\n    tls: {cert-file: %s, key-file: %s, client-ca-file: %s, min-version: \"1.3\"}\n",
		cert.CertFile, cert.KeyFile, clients.File)
	_, addr := startProxyYAML(t, "listen:\n  - address: 127.0.0.1:0\n"+tlsKeys+tlsServers(cluster, false, ""))

	try := func(tc *tls.Config) error {
		conn, err := ldap.DialURL("ldaps://"+addr, ldap.DialWithTLSConfig(tc))
		if err != nil {
			return err
		}
		defer conn.Close()
		return expectUID(conn, 1)
	}
	if err := try(ca.clientTLS(&good)); err != nil {
		t.Fatalf("client with a certificate of the client CA: %v", err)
	}
	if err := try(ca.clientTLS(nil)); err == nil {
		t.Fatal("client without a certificate was accepted")
	}
	if err := try(ca.clientTLS(&stranger)); err == nil {
		t.Fatal("client with a certificate of another CA was accepted")
	}
	old := ca.clientTLS(&good)
	old.MaxVersion = tls.VersionTLS12
	if err := try(old); err == nil {
		t.Fatal("TLS 1.2 client accepted with min-version 1.3")
	}
}

// TestCertificateReload replaces the listener's certificate files and
// reloads: new connections get the new certificate, open ones keep working.
func TestCertificateReload(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 2})
	ca := newTestCA(t, "proxy")
	first := ca.server("proxy", "127.0.0.1")
	a, cfg, _ := startLoggedProxy(t, listenTLS(first, "    mode: ldaps\n")+tlsServers(cluster, false, ""))
	addr := a.Addrs()[0]
	serial := func() string {
		conn, err := ldap.DialURL("ldaps://"+addr, ldap.DialWithTLSConfig(ca.clientTLS(nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		state, _ := conn.TLSConnectionState()
		return state.PeerCertificates[0].SerialNumber.String()
	}
	open, err := ldap.DialURL("ldaps://"+addr, ldap.DialWithTLSConfig(ca.clientTLS(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if got := serial(); got != first.Serial.String() {
		t.Fatalf("serial %s, want %s", got, first.Serial)
	}

	second := ca.server("proxy-renewed", "127.0.0.1")
	for src, dst := range map[string]string{second.CertFile: first.CertFile, second.KeyFile: first.KeyFile} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != second.Serial.String() {
		t.Fatalf("after reload: serial %s, want %s", got, second.Serial)
	}
	if err := expectUID(open, 1); err != nil {
		t.Fatalf("connection opened before the reload: %v", err)
	}

	if err := os.WriteFile(first.KeyFile, []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(cfg); err == nil || strings.Contains(err.Error(), "broken") {
		t.Fatalf("reload with a broken key: want an error naming the file only, got %v", err)
	}
	if got := serial(); got != second.Serial.String() {
		t.Fatalf("a failed reload changed the certificate: serial %s", got)
	}
}
