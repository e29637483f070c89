//go:build linux

package dirtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// stepTimeout bounds each waiting step of a test.
const stepTimeout = 30 * time.Second

// TestDS389 runs the harness checks against one pair of replicated 389
// instances. Subtests run in order; the disruptive ones come last.
func TestDS389(t *testing.T) {
	t.Parallel()
	began := time.Now()
	c := Start389(t, 2)
	t.Logf("Start389(t, 2) took %v", time.Since(began).Round(time.Millisecond))

	t.Run("BothAnswer", func(t *testing.T) { testBothAnswer(t, c) })
	t.Run("UsersBind", func(t *testing.T) { testUsersBind(t, c) })
	t.Run("MailNeedsAuthentication", func(t *testing.T) { testMailACI(t, c) })
	t.Run("SelfPasswordChange", func(t *testing.T) { testSelfPassword(t, c) })
	t.Run("ReplicatesBothWays", func(t *testing.T) { testReplicates(t, c) })
	t.Run("ProxiedAuthorization", func(t *testing.T) { testProxiedAuthz(t, c) })
	t.Run("ProxiedAuthorizationDenied", func(t *testing.T) { testProxiedAuthzDenied(t, c) })
	t.Run("ServiceReadsRUVAndMonitor", func(t *testing.T) { testServiceReadsRUV(t, c) })
	t.Run("PauseResumeReplication", func(t *testing.T) { testPauseResume(t, c) })
	t.Run("StopKillStart", func(t *testing.T) { testStopKillStart(t, c) })
}

// TestDS389Single checks a single instance: it has the data and no
// replica entry.
func TestDS389Single(t *testing.T) {
	t.Parallel()
	began := time.Now()
	d := Start389(t, 1).Instance(1)
	t.Logf("Start389(t, 1) took %v", time.Since(began).Round(time.Millisecond))
	conn := bind(t, d.URL, UserDN(Users), UserPassword(Users))
	if e, err := read(conn, UserDN(1), nil, "mail"); err != nil || e == nil || e.GetAttributeValue("mail") != UserMail(1) {
		t.Errorf("read %s: %v, %v", UserDN(1), e, err)
	}
	if _, err := d.RUV(stepContext(t)); !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Errorf("RUV of a single instance: %v, want noSuchObject", err)
	}
}

// stepContext returns a context bounded to stepTimeout.
func stepContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
	t.Cleanup(cancel)
	return ctx
}

// bind connects to url and, unless dn is empty, binds as dn.
func bind(t *testing.T, url, dn, password string) *ldap.Conn {
	t.Helper()
	conn, err := dial(url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	if dn != "" {
		if err := conn.Bind(dn, password); err != nil {
			t.Fatalf("bind to %s as %s: %v", url, dn, err)
		}
	}
	return conn
}

// read returns dn's attrs, or nil if the entry does not exist or is not
// visible.
func read(conn *ldap.Conn, dn string, controls []ldap.Control, attrs ...string) (*ldap.Entry, error) {
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", attrs, controls))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch len(res.Entries) {
	case 0:
		return nil, nil
	case 1:
		return res.Entries[0], nil
	}
	return nil, fmt.Errorf("%s: %d entries", dn, len(res.Entries))
}

// waitAttr waits until dn on d has attribute name with value want ("" for
// the entry merely existing).
func waitAttr(t *testing.T, d *DS389, dn, name, want string) {
	t.Helper()
	err := waitFor(stepContext(t), fmt.Sprintf("%s on %s", dn, d.URL), nil, func() error {
		return withBind(t.Context(), d.URL, DirectoryManagerDN, DirectoryManagerPassword, func(conn *ldap.Conn) error {
			e, err := read(conn, dn, nil, name)
			switch {
			case err != nil:
				return err
			case e == nil:
				return errors.New("no such entry")
			case want != "" && e.GetAttributeValue(name) != want:
				return fmt.Errorf("%s is %q", name, e.GetAttributeValue(name))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// addOU adds ou=name below BaseDN on d as Directory Manager.
func addOU(t *testing.T, d *DS389, name string) string {
	t.Helper()
	dn := "ou=" + name + "," + BaseDN
	conn := bind(t, d.URL, d.ManagerDN, d.ManagerPassword)
	if err := conn.Add(addRequest(dn, attr("objectClass", "top", "organizationalUnit"), attr("ou", name))); err != nil {
		t.Fatalf("add %s on %s: %v", dn, d.URL, err)
	}
	return dn
}

func testBothAnswer(t *testing.T, c *DS389Cluster) {
	for _, d := range c.Instances {
		if d.PID() == 0 {
			t.Errorf("instance %d has no PID", d.ID)
		}
		conn := bind(t, d.URL, d.ManagerDN, d.ManagerPassword)
		for _, dn := range []string{UserDN(Users), StaffGroupDN, ServiceDN, NoProxyDN} {
			if e, err := read(conn, dn, nil, "cn"); err != nil || e == nil {
				t.Errorf("instance %d: %s: %v, %v", d.ID, dn, e, err)
			}
		}
	}
}

func testUsersBind(t *testing.T, c *DS389Cluster) {
	for _, d := range c.Instances {
		for _, n := range []int{1, Users} {
			bind(t, d.URL, UserDN(n), UserPassword(n))
		}
		conn := bind(t, d.URL, "", "")
		err := conn.Bind(UserDN(1), "wrong")
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Errorf("instance %d: bind with a wrong password: %v, want invalidCredentials", d.ID, err)
		}
	}
}

func testMailACI(t *testing.T, c *DS389Cluster) {
	d := c.Instance(1)
	anon, err := read(bind(t, d.URL, "", ""), UserDN(1), nil, "uid", "mail")
	if err != nil || anon == nil {
		t.Fatalf("anonymous read of %s: %v, %v", UserDN(1), anon, err)
	}
	if anon.GetAttributeValue("uid") != UserID(1) || anon.GetAttributeValue("mail") != "" {
		t.Errorf("anonymous sees uid %q, mail %q; want uid only", anon.GetAttributeValue("uid"), anon.GetAttributeValue("mail"))
	}
	user, err := read(bind(t, d.URL, UserDN(2), UserPassword(2)), UserDN(1), nil, "mail")
	if err != nil || user == nil || user.GetAttributeValue("mail") != UserMail(1) {
		t.Errorf("user 2 reads %s: %v, %v; want mail %s", UserDN(1), user, err, UserMail(1))
	}
}

func testSelfPassword(t *testing.T, c *DS389Cluster) {
	d, n := c.Instance(1), Users-1
	other := bind(t, d.URL, UserDN(1), UserPassword(1))
	mod := ldap.NewModifyRequest(UserDN(n), nil)
	mod.Replace("userPassword", []string{"changed.by.user.1"})
	if err := other.Modify(mod); !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("user 1 changes user %d's password: %v, want insufficientAccessRights", n, err)
	}
	self := bind(t, d.URL, UserDN(n), UserPassword(n))
	for _, pw := range []string{"new.password", UserPassword(n)} {
		mod := ldap.NewModifyRequest(UserDN(n), nil)
		mod.Replace("userPassword", []string{pw})
		if err := self.Modify(mod); err != nil {
			t.Fatalf("user %d changes own password: %v", n, err)
		}
		bind(t, d.URL, UserDN(n), pw)
	}
}

func testReplicates(t *testing.T, c *DS389Cluster) {
	one, two := c.Instance(1), c.Instance(2)
	dn := addOU(t, one, "repl-forward")
	waitAttr(t, two, dn, "ou", "")
	mod := ldap.NewModifyRequest(dn, nil)
	mod.Replace("description", []string{"changed on instance 2"})
	if err := bind(t, two.URL, two.ManagerDN, two.ManagerPassword).Modify(mod); err != nil {
		t.Fatal(err)
	}
	waitAttr(t, one, dn, "description", "changed on instance 2")
	if err := c.WaitReplicated(stepContext(t)); err != nil {
		t.Fatal(err)
	}
}

func testProxiedAuthz(t *testing.T, c *DS389Cluster) {
	conn := bind(t, c.Instance(1).URL, ServiceDN, ServicePassword)
	cases := []struct {
		authzID, wantMail string
	}{
		{"dn:" + UserDN(2), UserMail(1)}, // authenticated: reads mail
		{"dn:", ""},                      // anonymous: does not
	}
	for _, tc := range cases {
		ctrl := []ldap.Control{slapdtest.ProxyAuthzControl(tc.authzID)}
		e, err := read(conn, UserDN(1), ctrl, "uid", "mail")
		if err != nil || e == nil {
			t.Fatalf("proxied as %q: %v, %v", tc.authzID, e, err)
		}
		if got := e.GetAttributeValue("mail"); got != tc.wantMail {
			t.Errorf("proxied as %q: mail %q, want %q", tc.authzID, got, tc.wantMail)
		}
	}
	_, err := read(conn, UserDN(1), []ldap.Control{slapdtest.ProxyAuthzControl("")}, "uid")
	t.Logf("empty authzId: %v", err)
}

// testProxiedAuthzDenied: without the proxy right 389 does not refuse a
// proxied search, it returns no entries (success); a proxied modify fails
// with insufficientAccessRights (50), not authorizationDenied (123).
func testProxiedAuthzDenied(t *testing.T, c *DS389Cluster) {
	url := c.Instance(1).URL
	ctrl := []ldap.Control{slapdtest.ProxyAuthzControl("dn:" + UserDN(2))}
	for _, tc := range []struct {
		dn, password string
		entries      int
		modifyCode   uint16
	}{
		{ServiceDN, ServicePassword, 1, ldap.LDAPResultSuccess},
		{NoProxyDN, NoProxyPassword, 0, ldap.LDAPResultInsufficientAccessRights},
	} {
		conn := bind(t, url, tc.dn, tc.password)
		res, err := conn.Search(ldap.NewSearchRequest(PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, "(uid="+UserID(1)+")", []string{"mail"}, ctrl))
		if err != nil || len(res.Entries) != tc.entries {
			t.Errorf("%s: proxied search: %v, %d entries; want %d", tc.dn, err, len(res.Entries), tc.entries)
		}
		// User 2 may change its own password.
		mod := ldap.NewModifyRequest(UserDN(2), []ldap.Control{ctrl[0]})
		mod.Replace("userPassword", []string{UserPassword(2)})
		err = conn.Modify(mod)
		if code := resultCode(err); code != tc.modifyCode {
			t.Errorf("%s: proxied modify: %v; want result %d", tc.dn, err, tc.modifyCode)
		}
	}
}

// resultCode returns the LDAP result code of err (0 for nil).
func resultCode(err error) uint16 {
	var lerr *ldap.Error
	if errors.As(err, &lerr) {
		return lerr.ResultCode
	}
	if err != nil {
		return ldap.ErrorNetwork
	}
	return ldap.LDAPResultSuccess
}

func testServiceReadsRUV(t *testing.T, c *DS389Cluster) {
	for _, tc := range []struct {
		dn, password string
		visible      bool
	}{
		{ServiceDN, ServicePassword, true},
		{NoProxyDN, NoProxyPassword, false},
	} {
		conn := bind(t, c.Instance(1).URL, tc.dn, tc.password)
		e, err := read(conn, ReplicaDN, nil, "nsds50ruv")
		ruv := []string(nil)
		if e != nil {
			ruv = e.GetAttributeValues("nsds50ruv")
		}
		if err != nil || (len(ruv) > 0) != tc.visible {
			t.Errorf("%s reads the RUV: %q, %v; want visible %v", tc.dn, ruv, err, tc.visible)
		}
		mon, err := read(conn, "cn=monitor", nil, "threads", "currentconnections", "opscompleted")
		if err != nil || mon == nil || mon.GetAttributeValue("currentconnections") == "" {
			t.Errorf("%s reads cn=monitor: %v, %v", tc.dn, mon, err)
		}
	}
}

func testPauseResume(t *testing.T, c *DS389Cluster) {
	one, two := c.Instance(1), c.Instance(2)
	if err := c.PauseReplication(1, 2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.ResumeReplication(1, 2) })
	held := addOU(t, one, "repl-held")
	// The other direction still works: once this arrives, instance 1 has
	// had time to send its own change, had the agreement been enabled.
	waitAttr(t, one, addOU(t, two, "repl-flowing"), "ou", "")
	ruv1, err := one.RUV(stepContext(t))
	if err != nil {
		t.Fatal(err)
	}
	conn := bind(t, two.URL, two.ManagerDN, two.ManagerPassword)
	if e, err := read(conn, held, nil, "ou"); err != nil || e != nil {
		t.Errorf("%s reached instance 2 while paused (%v)", held, err)
	}
	ruv2, err := two.RUV(stepContext(t))
	if err != nil || ruv2[1] == ruv1[1] {
		t.Errorf("instance 2 has instance 1's max CSN %q while paused (%v)", ruv2[1], err)
	}
	if err := c.ResumeReplication(1, 2); err != nil {
		t.Fatal(err)
	}
	waitAttr(t, two, held, "ou", "")
	if err := c.WaitReplicated(stepContext(t)); err != nil {
		t.Fatal(err)
	}
}

func testStopKillStart(t *testing.T, c *DS389Cluster) {
	one, two := c.Instance(1), c.Instance(2)
	if err := two.Stop(); err != nil {
		t.Fatal(err)
	}
	if two.PID() != 0 || two.Running() {
		t.Fatalf("instance 2 still running after Stop (pid %d)", two.PID())
	}
	if conn, err := dial(two.URL); err == nil {
		conn.Close()
		t.Errorf("instance 2 accepts connections after Stop")
	}
	dn := addOU(t, one, "while-stopped")
	if err := two.Start(stepContext(t)); err != nil {
		t.Fatal(err)
	}
	waitAttr(t, two, dn, "ou", "")
	if err := two.Kill(); err != nil {
		t.Fatal(err)
	}
	dn = addOU(t, one, "while-killed")
	if err := two.Start(stepContext(t)); err != nil {
		t.Fatal(err)
	}
	waitAttr(t, two, dn, "ou", "")
	if err := c.WaitReplicated(stepContext(t)); err != nil {
		t.Fatal(err)
	}
}
