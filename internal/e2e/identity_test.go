package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestIdentityMatchesDirectAccess checks that every client sees through the
// proxy exactly what it sees on slapd directly: never the service account's
// rights, and the anonymous client exactly anonymous rights.
func TestIdentityMatchesDirectAccess(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 5})
	_, addr := startProxy(t, cluster, "")
	direct := cluster.Replicas[0].Addr
	identities := []struct{ name, dn, password string }{
		{"anonymous", "", ""},
		{"user", slapdtest.UserDN(1), slapdtest.UserPassword(1)},
		{"application", slapdtest.AppDN, slapdtest.AppPassword},
	}
	for _, id := range identities {
		t.Run(id.name, func(t *testing.T) {
			viaProxy, onSlapd := connectAs(t, addr, id.dn, id.password), connectAs(t, direct, id.dn, id.password)
			got, want := dumpTree(t, viaProxy), dumpTree(t, onSlapd)
			if got != want {
				t.Fatalf("through the proxy:\n%s\ndirectly:\n%s", got, want)
			}
			if strings.Contains(got, slapdtest.SecretDescription) {
				t.Fatalf("%s sees data reserved to the service account:\n%s", id.name, got)
			}
			for _, line := range strings.Split(got, "\n") {
				if strings.Contains(line, "userPassword=") && !strings.HasPrefix(line, id.dn+": ") {
					t.Fatalf("%s sees another entry's password: %s", id.name, line)
				}
			}
			if hasMail := strings.Contains(got, "mail="); hasMail != (id.dn != "") {
				t.Fatalf("%s: mail visible = %v, want %v", id.name, hasMail, id.dn != "")
			}
		})
	}
}

// connectAs dials addr and binds unless dn is empty.
func connectAs(t *testing.T, addr, dn, password string) *ldap.Conn {
	if dn == "" {
		return dial(t, addr)
	}
	return bindAs(t, addr, dn, password)
}

// dumpTree renders everything an identity can read, sorted, as text.
func dumpTree(t *testing.T, conn *ldap.Conn) string {
	t.Helper()
	s, err := treeOf(conn)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	return s
}

// treeOf is dumpTree for goroutines: it returns the search's error.
func treeOf(conn *ldap.Conn) (string, error) { return readTree(conn, "*") }

// readTree renders the entries below BaseDN with attrs, sorted, as text.
func readTree(conn *ldap.Conn, attrs ...string) (string, error) {
	return readTreeBelow(conn, slapdtest.BaseDN, attrs...)
}

// readTreeBelow renders the entries below base with attrs, sorted, as text.
func readTreeBelow(conn *ldap.Conn, base string, attrs ...string) (string, error) {
	entries, err := searchDNs(conn, base, "(objectClass=*)", attrs...)
	if err != nil {
		return "", err
	}
	lines := make([]string, 0, len(entries))
	for _, e := range entries {
		var attrs []string
		for _, a := range e.Attributes {
			vals := slices.Clone(a.Values)
			slices.Sort(vals)
			attrs = append(attrs, fmt.Sprintf("%s=%s", a.Name, strings.Join(vals, "|")))
		}
		slices.Sort(attrs)
		lines = append(lines, e.DN+": "+strings.Join(attrs, " "))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// TestAnonymousRulesOfTheServerApply puts ldapmux in front of a slapd that
// requires authentication for everything but binds (`require authc`): an
// anonymous client is refused through the proxy exactly as directly (its
// operations go on connections that were never bound, not on the service
// account's), while a bound client reads through the proxy as directly.
func TestAnonymousRulesOfTheServerApply(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3, Require: "authc"})
	_, addr := startProxy(t, cluster, "")
	direct := cluster.Replicas[0].Addr
	search := func(conn *ldap.Conn) (int, error) {
		entries, err := searchDNs(conn, slapdtest.PeopleDN, "(uid=user.2)", "uid")
		return len(entries), err
	}
	_, directErr := search(dial(t, direct))
	_, proxyErr := search(dial(t, addr))
	if directErr == nil || proxyErr == nil {
		t.Fatalf("anonymous search under require authc: directly %v, through ldapmux %v; want both refused", directErr, proxyErr)
	}
	if dc, pc := resultCode(directErr), resultCode(proxyErr); dc != pc {
		t.Fatalf("anonymous search: result %d (%v) through ldapmux, %d (%v) directly", pc, proxyErr, dc, directErr)
	}
	for name, a := range map[string]string{"directly": direct, "through ldapmux": addr} {
		if n, err := search(bindAs(t, a, slapdtest.UserDN(1), slapdtest.UserPassword(1))); err != nil || n != 1 {
			t.Errorf("bound search %s: %d entries, %v", name, n, err)
		}
	}
}

// TestIdentityOutsideTheServiceAccountsAuthzTo narrows the service
// account's authzTo to the users, as docs/service-account.md advises,
// and binds through ldapmux as the writer, who is outside it. slapd
// refuses the writer's first operation with the control
// (authorizationDenied), as it answers it; ldapmux remembers that, and
// from the writer's next bind its sessions keep a connection of their own,
// bound as the writer, where every answer is as straight and each write
// is the writer's own. The users are served as before.
func TestIdentityOutsideTheServiceAccountsAuthzTo(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	direct := cluster.Replicas[0].Addr
	narrow := ldap.NewModifyRequest(slapdtest.ServiceDN, nil)
	narrow.Replace("authzTo", []string{`dn.regex:^uid=[^,]+,ou=people,dc=example,dc=com$`})
	if err := bindAs(t, direct, slapdtest.AdminDN, slapdtest.AdminPassword).Modify(narrow); err != nil {
		t.Fatal(err)
	}
	a, addr := startProxy(t, cluster, "pool:\n  bound-connections-per-server: 0\n")

	first := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	if _, err := searchDNs(first, slapdtest.ScratchDN, "(objectClass=*)"); resultCode(err) != ldapwire.AuthorizationDenied {
		t.Fatalf("the writer's first search with the control: %v; want authorizationDenied, as slapd answers it", err)
	}
	user := bindAs(t, addr, slapdtest.UserDN(1), slapdtest.UserPassword(1))
	if _, err := searchDNs(user, slapdtest.PeopleDN, "(uid=user.2)", "mail"); err != nil {
		t.Fatalf("a user inside authzTo: %v", err)
	}

	for i := range 2 {
		writer := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
		if err := writer.Add(scratchEntry(fmt.Sprintf("outside-%d", i))); err != nil {
			t.Fatalf("session %d of the writer, add: %v", i, err)
		}
		got, err := readTreeBelow(writer, slapdtest.ScratchDN, "*", "creatorsName")
		if err != nil {
			t.Fatalf("session %d of the writer, search: %v", i, err)
		}
		want, err := readTreeBelow(bindAs(t, direct, slapdtest.WriterDN, slapdtest.WriterPassword), slapdtest.ScratchDN, "*", "creatorsName")
		if err != nil {
			t.Fatal(err)
		}
		if got != want || !strings.Contains(got, "creatorsName="+slapdtest.WriterDN) {
			t.Fatalf("session %d of the writer through ldapmux:\n%s\nstraight:\n%s", i, got, want)
		}
	}
	if leased := a.Registry().Snapshot().Servers[0].Pool().Stats().Leased; leased < 2 {
		t.Fatalf("%d connections leased; want one per session of the writer", leased)
	}
}
