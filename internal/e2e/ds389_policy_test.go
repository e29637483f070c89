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
	cluster := dirtest.Start389(t, 1)
	a, addr := startProxyYAML(t, ds389YAML(cluster, dirtest.ServiceDN, dirtest.ServicePassword, false))
	logHealthOnFailure(t, a)
	direct := cluster.Instance(1).Addr
	eventually(t, 30*time.Second, "the 389 server checked, available, in proxied-authorization mode", func() bool {
		return all389Ready(a)
	})
	manager := bindAs(t, direct, dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword)
	mustChange := ldap.NewModifyRequest("cn=config", nil)
	mustChange.Replace("passwordMustChange", []string{"on"})
	if err := manager.Modify(mustChange); err != nil {
		t.Fatalf("turn on passwordMustChange: %v", err)
	}
	user := dirtest.UserDN(3)
	session := func(addr, password, next string) string {
		t.Helper()
		reset := ldap.NewModifyRequest(user, nil)
		reset.Replace("userPassword", []string{password})
		if err := manager.Modify(reset); err != nil {
			t.Fatalf("reset the password: %v", err)
		}
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
		change.Replace("userPassword", []string{next})
		fmt.Fprintf(&b, "change: %v", conn.Modify(change))
		return b.String()
	}
	// 389 applies a change of cn=config on its own time: wait until a
	// reset password must be changed.
	eventually(t, 20*time.Second, "passwordMustChange in effect", func() bool {
		return strings.HasPrefix(session(direct, "reset.0.3", "changed.0.3"), "control 2.16.840.1.113730.3.4.4;")
	})
	want := session(direct, "reset.a.3", "changed.a.3")
	if !strings.Contains(want, "control 2.16.840.1.113730.3.4.4") || strings.Contains(want, "read: uid=") {
		t.Fatalf("directly, 389 did not restrict the session of a reset password: %s", want)
	}
	t.Logf("directly: %s", want)
	if got := session(addr, "reset.b.3", "changed.b.3"); got != want {
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
