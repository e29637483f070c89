package release

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// docLDIF returns the LDIF block of docs/service-account.md that follows the
// marker <!-- tested: NAME ... -->.
func docLDIF(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs/service-account.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)<!-- tested: ` + regexp.QuoteMeta(name) + `\b[^>]*-->\s*` + "```ldif\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/service-account.md has no ldif block marked %q", name)
	}
	return string(m[1])
}

const saTestConf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {{DIR}}/slapd.pid

database config
rootdn "cn=config"
rootpw config-secret

database mdb
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw admin-secret
directory {{DIR}}/data
access to attrs=userPassword
	by self write
	by anonymous auth
	by * none
access to *
	by users read
	by anonymous read
`

const saTestData = `dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=services,dc=example,dc=com
objectClass: organizationalUnit
ou: services

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Example
`

// TestServiceAccountDocSetsUpOpenLDAP applies the cn=config LDIF and the
// account of docs/service-account.md to a real slapd configured through
// cn=config, and proves that the account can then proxy as a user under
// ou=people, and only there.
func TestServiceAccountDocSetsUpOpenLDAP(t *testing.T) {
	for _, tool := range []string{"ldapmodify", "ldappasswd", "ldapwhoami", "ldapsearch"} {
		needCommand(t, tool)
	}
	slapd := "/usr/sbin/slapd"
	if _, err := os.Stat(slapd); err != nil {
		missing(t, "slapd", err)
	}
	// A short directory: the ldapi socket path must fit in sun_path.
	dir, err := os.MkdirTemp("", "sa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"slapd.d", "data"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(content, "{{DIR}}", dir)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ldap := func(name string, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		return string(out), err
	}
	must := func(name string, args ...string) string {
		t.Helper()
		out, err := ldap(name, args...)
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return out
	}

	uri := "ldapi://" + url.PathEscape(filepath.Join(dir, "ldapi"))
	// With -f and an empty -F directory, slapd converts slapd.conf to
	// cn=config there and runs from cn=config.
	cmd := exec.Command(slapd, "-d", "none", "-f", write("slapd.conf", saTestConf), "-F", filepath.Join(dir, "slapd.d"), "-h", uri)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for {
		if _, err := ldap("ldapwhoami", "-x", "-H", uri); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("slapd did not answer within a minute")
		case <-time.After(50 * time.Millisecond):
		}
	}

	admin := []string{"-x", "-H", uri, "-D", "cn=admin,dc=example,dc=com", "-w", "admin-secret"}
	must("ldapmodify", append(admin, "-a", "-f", write("data.ldif", saTestData))...)
	must("ldapmodify", append(admin, "-f", write("account.ldif", docLDIF(t, "openldap-account")))...)
	must("ldappasswd", append(admin, "-s", "svc-secret", "cn=ldapmux,ou=services,dc=example,dc=com")...)

	proxyAs := func(dn string) (string, error) {
		return ldap("ldapwhoami", "-x", "-H", uri, "-D", "cn=ldapmux,ou=services,dc=example,dc=com",
			"-w", "svc-secret", "-e", "!authzid=dn:"+dn)
	}
	const alice = "uid=alice,ou=people,dc=example,dc=com"
	if out, err := proxyAs(alice); err == nil {
		t.Fatalf("the account proxies before the cn=config changes: %s", out)
	}

	must("ldapmodify", "-x", "-H", uri, "-D", "cn=config", "-w", "config-secret",
		"-f", write("config.ldif", docLDIF(t, "openldap-cn-config")))
	if out, err := proxyAs(alice); err != nil || strings.TrimSpace(out) != "dn:"+alice {
		t.Errorf("proxying as %s after the documented setup: %v\n%s", alice, err, out)
	}
	if out, err := proxyAs("cn=admin,dc=example,dc=com"); err == nil {
		t.Errorf("the account may proxy as the administrator: %s", out)
	}
	// Nobody but the account itself gets at authzTo.
	if out := must("ldapsearch", "-x", "-H", uri, "-b", "cn=ldapmux,ou=services,dc=example,dc=com", "-LLL", "authzTo"); strings.Contains(out, "authzTo:") {
		t.Errorf("anonymous clients read the account's authzTo:\n%s", out)
	}
}
