//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/dirtest"
)

// TestADThroughProxy puts ldapmux, configured with nothing but the
// address and a service account, in front of a Samba AD DC, and compares
// what clients get with a direct connection. AD has no proxied
// authorization: ldapmux must find that out and serve it in client-bind
// mode.
func TestADThroughProxy(t *testing.T) {
	ad, _, addr := startADProxy(t, "")
	logins := map[string]string{"DN": ad.UserDN("alice"), "UPN": ad.UPN("alice"), `DOMAIN\user`: ad.DownLevel("alice")}
	for form, name := range logins {
		t.Run("bind with "+form, func(t *testing.T) { compareAD(t, ad, addr, name, ad.UserPassword("alice")) })
	}
	t.Run("administrator", func(t *testing.T) { compareAD(t, ad, addr, ad.AdminDN, ad.AdminPassword) })
	t.Run("anonymous", func(t *testing.T) { compareAD(t, ad, addr, "", "") })
	t.Run("wrong password", func(t *testing.T) {
		for _, target := range []string{ad.Addr, addr} {
			conn := dial(t, target)
			if err := conn.Bind(ad.UPN("alice"), "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				t.Errorf("wrong password at %s: %v, want invalidCredentials", target, err)
			}
		}
	})
	t.Run("who am I", func(t *testing.T) { // on the client's own connection: the DC answers (Samba: not supported)
		var answers []string
		for _, target := range []string{ad.Addr, addr} {
			res, err := bindAs(t, target, ad.UserDN("bob"), ad.UserPassword("bob")).WhoAmI(nil)
			answers = append(answers, fmt.Sprintf("%+v %v", res, err))
		}
		if answers[0] != answers[1] {
			t.Errorf("who am I as bob: directly %s, through ldapmux %s", answers[0], answers[1])
		}
	})
	t.Run("paged", func(t *testing.T) { comparePagedAD(t, ad, addr) })
	t.Run("python-ldap, Net::LDAP and JNDI readers", func(t *testing.T) { compareReadersAD(t, ad, addr) })
}

// compareReadersAD runs the python-ldap, Net::LDAP and JNDI readers as
// each AD user at once, on the DC directly and through ldapmux, and
// compares what every user saw.
func compareReadersAD(t *testing.T, ad *dirtest.AD, proxied string) {
	var users [][2]string
	for _, user := range ad.Users() {
		users = append(users, [2]string{ad.UserDN(user), ad.UserPassword(user)})
	}
	compareReaders(t, readerRun{direct: "ldap://" + ad.Addr, proxied: "ldap://" + proxied,
		people: "CN=Users," + ad.BaseDN, restricted: "CN=System," + ad.BaseDN, users: users})
}

// compareAD runs the same searches as name (anonymous when empty) on the
// DC directly and through ldapmux.
func compareAD(t *testing.T, ad *dirtest.AD, proxied, name, password string) {
	searches := []struct{ base, filter string }{
		{"CN=Users," + ad.BaseDN, "(sAMAccountName=bob)"},
		{"CN=Users," + ad.BaseDN, "(objectClass=user)"},
		{ad.BaseDN, "(objectClass=group)"},
	}
	attrs := []string{"sAMAccountName", "userPrincipalName", "memberOf", "adminCount", "objectSid"}
	for _, s := range searches {
		want := searchAD(t, ad.Addr, name, password, s.base, s.filter, attrs)
		got := searchAD(t, proxied, name, password, s.base, s.filter, attrs)
		if want != got {
			t.Errorf("as %q, %s %s:\nthrough ldapmux:\n%s\ndirectly:\n%s", name, s.base, s.filter, got, want)
		}
		t.Logf("as %q, %s: %d lines, %.60q", name, s.filter, strings.Count(want, "\n")+1, want)
	}
}

func searchAD(t *testing.T, addr, name, password, base, filter string, attrs []string) string {
	t.Helper()
	conn := dial(t, addr)
	if name != "" {
		if err := conn.Bind(name, password); err != nil {
			return "bind: " + resultOf(err)
		}
	}
	res, err := conn.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	if err != nil {
		return "search: " + resultOf(err)
	}
	return renderEntries(res.Entries)
}

// comparePagedAD: users with different identities page at once.
func comparePagedAD(t *testing.T, ad *dirtest.AD, proxied string) {
	who := [][2]string{{ad.UPN("alice"), ad.UserPassword("alice")}, {ad.DownLevel("bob"), ad.UserPassword("bob")}, {ad.AdminDN, ad.AdminPassword}}
	var wg sync.WaitGroup
	errs := make(chan string, 12)
	for i := range 6 {
		wg.Go(func() {
			id := who[i%len(who)]
			want := pagedAD(ad.Addr, ad.BaseDN, id[0], id[1])
			got := pagedAD(proxied, ad.BaseDN, id[0], id[1])
			if got != want {
				errs <- fmt.Sprintf("client %d as %s: paged through ldapmux differs:\n%s\nwant\n%s", i, id[0], got, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func pagedAD(addr, base, name, password string) string {
	conn, err := ldap.DialURL("ldap://"+addr, ldap.DialWithDialer(dialer()))
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	if err := conn.Bind(name, password); err != nil {
		return "bind: " + resultOf(err)
	}
	res, err := conn.SearchWithPaging(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=group)", []string{"cn"}, nil), 5)
	if err != nil {
		return "error: " + resultOf(err)
	}
	return renderEntries(res.Entries)
}
