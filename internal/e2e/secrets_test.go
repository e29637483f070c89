package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestNoSecretsLeak exercises every path a password or key travels
// (service account from the environment and from a file, good and bad
// client binds, binds refused for lack of TLS, password changes, a wrong
// service password, a server that cannot be reached, bad configurations)
// and then scans everything ldapmux lets out: its log (debug level, with
// the access log), the answers clients received, the admin endpoints
// (metrics, status, status page), cn=monitor as ldapmux serves it, and
// configuration problems.
func TestNoSecretsLeak(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	ca := newTestCA(t, "proxy")
	cert := ca.server("proxy", "127.0.0.1")
	keyPEM, err := os.ReadFile(cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	const wrongPassword, refusedPassword, newPassword, badService = "wrong-pw-8f3k", "cleartext-pw-7h2m", "new-pw-1x9z", "bad-service-pw-4q2"
	secrets := map[string]string{
		"service password": slapdtest.ServicePassword, "user password": slapdtest.UserPassword(1),
		"wrong password": wrongPassword, "refused password": refusedPassword, "new password": newPassword,
		"bad service password": badService, "private key": keyBody(string(keyPEM)),
	}
	t.Setenv("LDAPMUX_TEST_SERVICE_PASSWORD", slapdtest.ServicePassword)
	yaml := fmt.Sprintf(`listen:
  - address: 127.0.0.1:0
    tls: {cert-file: %s, key-file: %s}
servers:
  - name: ds1
    address: %s
  - name: gone
    address: %s
service-account:
  bind-dn: %s
  password-env: LDAPMUX_TEST_SERVICE_PASSWORD
require-secure-bind: true
admin:
  address: 127.0.0.1:0
monitor:
  admin-dns: ["%s"]
log:
  level: debug
  access-log: true
`, cert.CertFile, cert.KeyFile, cluster.Replicas[0].Addr, closedAddr(t), slapdtest.ServiceDN, slapdtest.AppDN)
	a, _, logs := startLoggedProxy(t, yaml)
	addr := a.Addrs()[0]
	var answers []string
	note := func(err error) {
		if err != nil {
			answers = append(answers, err.Error())
		}
	}

	plain := dial(t, addr)
	note(plain.Bind(slapdtest.UserDN(1), refusedPassword))
	tlsConn := dial(t, addr)
	if err := tlsConn.StartTLS(ca.clientTLS(nil)); err != nil {
		t.Fatal(err)
	}
	note(tlsConn.Bind(slapdtest.UserDN(2), wrongPassword))
	note(tlsConn.Bind(slapdtest.UserDN(3), slapdtest.UserPassword(3)))
	_, err = tlsConn.PasswordModify(ldap.NewPasswordModifyRequest("", slapdtest.UserPassword(3), newPassword))
	note(err)
	note(tlsConn.Bind(slapdtest.UserDN(3), newPassword))
	note(tlsConn.Bind(slapdtest.UserDN(1), slapdtest.UserPassword(1)))
	note(expectUser(tlsConn, 1))
	admin := dial(t, addr)
	if err := admin.StartTLS(ca.clientTLS(nil)); err != nil {
		t.Fatal(err)
	}
	note(admin.Bind(slapdtest.AppDN, slapdtest.AppPassword))
	monitor, err := admin.Search(ldap.NewSearchRequest("cn=monitor", ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"*", "+"}, nil))
	note(err)
	eventually(t, 10*time.Second, "the unreachable server marked down", func() bool {
		return a.Registry().Snapshot().Servers[1].Health.State.String() == "unavailable"
	})

	badLogs := runWithWrongServicePassword(t, cluster, badService, &answers)
	surfaces := map[string]string{
		"log": logs.String(), "log with a wrong service password": badLogs, "answers to clients": strings.Join(answers, "\n"),
		"cn=monitor": entriesText(monitor), "configuration problems": configProblems(t, badService),
	}
	for _, path := range []string{"/metrics", "/api/status", "/"} {
		surfaces["admin "+path] = getBody(t, "http://"+a.AdminAddr()+path)
	}
	for where, text := range surfaces {
		if len(text) == 0 {
			t.Errorf("nothing to scan in the %s", where)
		}
		t.Logf("scanned the %s: %d bytes", where, len(text))
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("the %s shows the %s", where, what)
			}
		}
	}
	if !strings.Contains(logs.String(), "uid=user.1") {
		t.Fatal("the log does not even show bind DNs: the scan proves nothing")
	}
}

// keyBody is a distinctive line of a PEM private key.
func keyBody(pem string) string {
	return strings.Split(strings.TrimSpace(pem), "\n")[1]
}

// runWithWrongServicePassword starts a proxy whose service password (from a
// file) slapd refuses, makes it try, and returns its log.
func runWithWrongServicePassword(t *testing.T, cluster *slapdtest.Cluster, password string, answers *[]string) string {
	file := filepath.Join(t.TempDir(), "service-password")
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, _, logs := startLoggedProxy(t, fmt.Sprintf("listen:\n  - address: 127.0.0.1:0\nservers:\n  - name: ds1\n    address: %s\n"+
		"service-account:\n  bind-dn: %s\n  password-file: %s\n", cluster.Replicas[0].Addr, slapdtest.ServiceDN, file))
	conn := dial(t, a.Addrs()[0])
	if err := expectUID(conn, 1); err != nil {
		*answers = append(*answers, err.Error())
	} else {
		t.Fatal("a proxy with a wrong service password served a search")
	}
	eventually(t, 10*time.Second, "the refused service bind logged", func() bool {
		return strings.Contains(logs.String(), "service bind")
	})
	return logs.String()
}

// configProblems returns the problems of configurations that get a
// password wrong in every way.
func configProblems(t *testing.T, password string) string {
	var out []string
	for _, sa := range []string{
		"  password: " + password + "\n  password-env: X_" + password,
		"  password: " + password + "\n  password-file: /nonexistent/" + "f",
		"  password: [" + password + "]",
	} {
		_, err := config.Parse([]byte("listen:\n  - address: :389\nservers:\n  - name: a\n    address: h:389\nservice-account:\n  bind-dn: cn=x\n" + sa + "\n"))
		var probs config.Problems
		if !errors.As(err, &probs) {
			t.Fatalf("want problems, got %v", err)
		}
		out = append(out, err.Error())
	}
	return strings.Join(out, "\n")
}

func entriesText(res *ldap.SearchResult) string {
	if res == nil {
		return ""
	}
	var b strings.Builder
	for _, e := range res.Entries {
		b.WriteString(e.DN + "\n")
		for _, a := range e.Attributes {
			b.WriteString(a.Name + ": " + strings.Join(a.Values, "|") + "\n")
		}
	}
	return b.String()
}

func getBody(t *testing.T, url string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
