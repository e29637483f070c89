package e2e

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestEveryOperation drives every LDAP operation through the proxy with go-ldap.
func TestEveryOperation(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 120})
	_, addr := startProxy(t, cluster, "")
	conn := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)

	t.Run("search", func(t *testing.T) {
		entries, err := searchDNs(conn, slapdtest.PeopleDN, "(uid=user.7)", "cn")
		if err != nil || len(entries) != 1 || entries[0].GetAttributeValue("cn") != "User 7" {
			t.Fatalf("search: %v %v", entries, err)
		}
	})
	t.Run("paged search through many pages", func(t *testing.T) {
		res, err := conn.SearchWithPaging(ldap.NewSearchRequest(slapdtest.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=inetOrgPerson)", []string{"uid"}, nil), 7)
		if err != nil || len(res.Entries) != 120 {
			t.Fatalf("paged: %d entries, %v", len(res.Entries), err)
		}
	})
	t.Run("compare", func(t *testing.T) {
		ok, err := conn.Compare(slapdtest.UserDN(3), "sn", "3")
		if err != nil || !ok {
			t.Fatalf("compare true: %v %v", ok, err)
		}
		ok, err = conn.Compare(slapdtest.UserDN(3), "sn", "4")
		if err != nil || ok {
			t.Fatalf("compare false: %v %v", ok, err)
		}
	})
	t.Run("add modify rename delete", func(t *testing.T) {
		dn := "cn=op-test," + slapdtest.ScratchDN
		add := ldap.NewAddRequest(dn, nil)
		add.Attribute("objectClass", []string{"organizationalRole"})
		add.Attribute("cn", []string{"op-test"})
		if err := conn.Add(add); err != nil {
			t.Fatalf("add: %v", err)
		}
		mod := ldap.NewModifyRequest(dn, nil)
		mod.Replace("description", []string{"changed"})
		if err := conn.Modify(mod); err != nil {
			t.Fatalf("modify: %v", err)
		}
		if err := conn.ModifyDN(ldap.NewModifyDNRequest(dn, "cn=op-renamed", true, "")); err != nil {
			t.Fatalf("modify DN: %v", err)
		}
		renamed := "cn=op-renamed," + slapdtest.ScratchDN
		entries, err := searchDNs(conn, renamed, "(objectClass=*)", "description")
		if err != nil || len(entries) != 1 || entries[0].GetAttributeValue("description") != "changed" {
			t.Fatalf("read back: %v %v", entries, err)
		}
		if err := conn.Del(ldap.NewDelRequest(renamed, nil)); err != nil {
			t.Fatalf("delete: %v", err)
		}
		err = conn.Del(ldap.NewDelRequest(renamed, nil))
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			t.Fatalf("second delete: want noSuchObject, got %v", err)
		}
	})
	t.Run("whoami answers the client's DN", func(t *testing.T) {
		res, err := conn.WhoAmI(nil)
		if err != nil || res.AuthzID != "dn:"+slapdtest.WriterDN {
			t.Fatalf("whoami: %+v %v", res, err)
		}
		anon := dial(t, addr)
		res, err = anon.WhoAmI(nil)
		if err != nil || res.AuthzID != "" {
			t.Fatalf("anonymous whoami: %+v %v", res, err)
		}
	})
	t.Run("password modify", func(t *testing.T) {
		user := bindAs(t, addr, slapdtest.UserDN(9), slapdtest.UserPassword(9))
		if _, err := user.PasswordModify(ldap.NewPasswordModifyRequest("", slapdtest.UserPassword(9), "new-password")); err != nil {
			t.Fatalf("password modify: %v", err)
		}
		check := dial(t, addr)
		if err := check.Bind(slapdtest.UserDN(9), "new-password"); err != nil {
			t.Fatalf("bind with new password: %v", err)
		}
		if err := check.Bind(slapdtest.UserDN(9), slapdtest.UserPassword(9)); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("old password: want invalidCredentials, got %v", err)
		}
	})
	t.Run("unknown extended operation passes through", func(t *testing.T) {
		before := opCount(t, cluster.Replicas[0], "extended")
		_, err := conn.Extended(ldap.NewExtendedRequest("1.3.6.1.4.1.99999.1", nil))
		// slapd parses controls first: for an OID it does not know, the
		// critical proxied authorization control gets unavailableCriticalExtension,
		// never an answer run with the service account's rights.
		var lerr *ldap.Error
		if !errors.As(err, &lerr) || (lerr.ResultCode != ldap.LDAPResultProtocolError && lerr.ResultCode != ldap.LDAPResultUnavailableCriticalExtension) {
			t.Fatalf("want slapd's refusal of an unknown OID, got %v", err)
		}
		eventually(t, 5*time.Second, "the extended operation counted by slapd", func() bool {
			return opCount(t, cluster.Replicas[0], "extended") > before
		})
	})
	t.Run("bad credentials", func(t *testing.T) {
		c := dial(t, addr)
		err := c.Bind(slapdtest.UserDN(1), "wrong")
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("want invalidCredentials, got %v", err)
		}
	})
	t.Run("SASL EXTERNAL gets the server's refusal", func(t *testing.T) {
		// Forwarded like every SASL bind (sasl_test.go); over plain TCP
		// slapd has no external identity to offer.
		c := dial(t, addr)
		if err := c.ExternalBind(); err == nil {
			t.Fatal("EXTERNAL bind without a client certificate succeeded")
		}
		if who, err := c.WhoAmI(nil); err != nil || who.AuthzID != "" {
			t.Fatalf("after a failed SASL bind: %+v, %v; want anonymous", who, err)
		}
	})
	t.Run("client proxied authorization is refused", func(t *testing.T) {
		req := ldap.NewSearchRequest(slapdtest.SecretDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", nil, []ldap.Control{slapdtest.ProxyAuthzControl("dn:" + slapdtest.ServiceDN)})
		_, err := conn.Search(req)
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultAuthorizationDenied) {
			t.Fatalf("want authorizationDenied, got %v", err)
		}
	})
}

// TestConcurrentClients runs 100 clients, each with several operations in
// flight on its connection, and checks that nobody gets anyone else's answer.
func TestConcurrentClients(t *testing.T) {
	const clients, perClient, rounds = 100, 4, 5
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: clients})
	_, addr := startProxy(t, cluster, "pool:\n  connections-per-server: 2\n")
	errs := make(chan error, clients*perClient)
	done := make(chan struct{})
	for c := 1; c <= clients; c++ {
		conn := bindAs(t, addr, slapdtest.UserDN(c), slapdtest.UserPassword(c))
		for g := 0; g < perClient; g++ {
			go func() {
				defer func() { done <- struct{}{} }()
				for r := 0; r < rounds; r++ {
					// each goroutine reads a different user, and its own mail (visible to bound users only)
					n := (c+g*7+r*13)%clients + 1
					if err := expectUser(conn, n); err != nil {
						errs <- fmt.Errorf("client %d: %w", c, err)
						return
					}
				}
			}()
		}
	}
	for i := 0; i < clients*perClient; i++ {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// expectUser searches for user n and checks the entry is user n's, with mail.
func expectUser(conn *ldap.Conn, n int) error {
	entries, err := searchDNs(conn, slapdtest.PeopleDN, fmt.Sprintf("(uid=user.%d)", n), "uid", "mail")
	if err != nil {
		return err
	}
	if len(entries) != 1 || entries[0].DN != slapdtest.UserDN(n) || entries[0].GetAttributeValue("mail") == "" {
		return fmt.Errorf("user %d: got %v", n, entries)
	}
	return nil
}
