package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/dirtest"
)

// TestDS389PasswordMustChange turns on 389 Directory Server's
// passwordMustChange: a password the Directory Manager resets must be
// changed, 389 says so in the bind's answer (password-expired control) and
// refuses the session everything else until then. A client sees the same
// through ldapmux as directly: the bind's answer, the refusal and the
// change (a modify of its own userPassword). Whether 389 lifts the
// restriction for the next operation on that connection varies from run to
// run directly (a race inside 389), so reads after the change are not
// compared.
func TestDS389PasswordMustChange(t *testing.T) {
	cluster, a, addr := start389Proxied(t, 1, false)
	wantPasswordPolicy(t, a, true)
	direct := cluster.Instance(1).Addr
	manager := bindAs(t, direct, dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword)
	mustChange := ldap.NewModifyRequest("cn=config", nil)
	mustChange.Replace("passwordMustChange", []string{"on"})
	if err := manager.Modify(mustChange); err != nil {
		t.Fatalf("turn on passwordMustChange: %v", err)
	}
	// resetUser resets the password of a user not used yet until 389 is seen
	// to restrict a direct session bound with it: 389 applies a change of
	// cn=config on its own time, and now and then leaves a reset password
	// unrestricted even after that (for a while, for every user), so every
	// comparison uses a user whose reset 389 is seen to enforce. The same
	// user is reset again, with a new password, until it is: fresh users
	// would all be spent within such a while.
	next := 2
	resetUser := func() (dn, password string) {
		t.Helper()
		next++
		dn, attempt := dirtest.UserDN(next), 0
		eventually(t, 30*time.Second, "a reset password that 389 restricts", func() bool {
			attempt++
			password = fmt.Sprintf("reset.%d.%d", next, attempt)
			reset := ldap.NewModifyRequest(dn, nil)
			reset.Replace("userPassword", []string{password})
			if err := manager.Modify(reset); err != nil {
				t.Fatalf("reset the password: %v", err)
			}
			return readOutcome389(bindAs(t, direct, dn, password)) == "result 53"
		})
		return dn, password
	}
	session := func(addr string) string {
		t.Helper()
		user, password := resetUser()
		conn := dial(t, addr)
		res, err := conn.SimpleBind(&ldap.SimpleBindRequest{Username: user, Password: password})
		if err != nil {
			return "bind: " + err.Error()
		}
		var b strings.Builder
		for _, c := range res.Controls {
			fmt.Fprintf(&b, "control %s; ", c.GetControlType())
		}
		fmt.Fprintf(&b, "read: %s; ", readOutcome389(conn))
		change := ldap.NewModifyRequest(user, nil) // 389 takes the Password Modify operation only under TLS
		change.Replace("userPassword", []string{"changed." + password})
		fmt.Fprintf(&b, "change: %v", conn.Modify(change))
		return b.String()
	}
	want := session(direct)
	if !strings.Contains(want, "control 2.16.840.1.113730.3.4.4") || strings.Contains(want, "read: uid=") {
		t.Fatalf("directly, 389 did not restrict the session of a reset password: %s", want)
	}
	t.Logf("directly: %s", want)
	if got := session(addr); got != want {
		t.Fatalf("through ldapmux:\n%s\ndirectly:\n%s", got, want)
	}
}

// readOutcome389 reads an entry and describes the outcome: its DN, or the
// result code.
func readOutcome389(conn *ldap.Conn) string {
	res, err := conn.Search(ldap.NewSearchRequest(dirtest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=user.1)", []string{"uid"}, nil))
	if err != nil {
		return fmt.Sprintf("result %d", resultCode(err))
	}
	out := ""
	for _, e := range res.Entries {
		out += e.DN + ";"
	}
	return out
}
