//go:build linux

package dirtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// stepTimeout bounds each waiting step of a test.
const stepTimeout = 30 * time.Second

// TestMain stops the shared AD after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

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

// TestAD checks the shared Samba AD DC: binds by DN, UPN and down-level
// name, a search of the users and the root DSE.
func TestAD(t *testing.T) {
	t.Parallel()
	began := time.Now()
	ad := SharedAD(t)
	t.Logf("SharedAD took %v", time.Since(began).Round(time.Millisecond))
	if again := SharedAD(t); again != ad {
		t.Fatal("SharedAD started a second AD")
	}
	t.Run("Binds", func(t *testing.T) { testADBinds(t, ad) })
	t.Run("SearchUsers", func(t *testing.T) { testADSearch(t, ad) })
	t.Run("RootDSE", func(t *testing.T) { testADRootDSE(t, ad) })
	t.Run("CriticalControl", func(t *testing.T) { testADCriticalControl(t, ad) })
}

func testADBinds(t *testing.T, ad *AD) {
	type account struct{ dn, upn, downLevel, password string }
	accounts := []account{{ad.AdminDN, ad.UPN("Administrator"), ad.DownLevel("Administrator"), ad.AdminPassword}}
	for _, name := range ad.Users() {
		accounts = append(accounts, account{ad.UserDN(name), ad.UPN(name), ad.DownLevel(name), ad.UserPassword(name)})
	}
	for _, a := range accounts {
		for _, id := range []string{a.dn, a.upn, a.downLevel} {
			bind(t, ad.URL, id, a.password)
		}
		err := bind(t, ad.URL, "", "").Bind(a.upn, "wrong")
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Errorf("bind as %s with a wrong password: %v, want invalidCredentials", a.upn, err)
		}
	}
}

func testADSearch(t *testing.T, ad *AD) {
	conn := bind(t, ad.URL, ad.UPN("alice"), ad.UserPassword("alice"))
	res, err := conn.Search(ldap.NewSearchRequest(ad.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(&(objectClass=user)(sAMAccountName=bob))", []string{"mail", "userPrincipalName"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("search for bob: %v, %v", res, err)
	}
	e := res.Entries[0]
	if !strings.EqualFold(e.DN, ad.UserDN("bob")) || e.GetAttributeValue("mail") != ad.UserMail("bob") ||
		!strings.EqualFold(e.GetAttributeValue("userPrincipalName"), ad.UPN("bob")) {
		t.Errorf("bob: dn %q, mail %q, userPrincipalName %q", e.DN, e.GetAttributeValue("mail"), e.GetAttributeValue("userPrincipalName"))
	}
	res, err = conn.Search(ldap.NewSearchRequest("CN=Users,"+ad.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=user)", []string{"sAMAccountName"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range res.Entries {
		names = append(names, e.GetAttributeValue("sAMAccountName"))
	}
	for _, want := range []string{"Administrator", "alice", "bob"} {
		if !slices.Contains(names, want) {
			t.Errorf("users %q lack %s", names, want)
		}
	}
}

func testADRootDSE(t *testing.T, ad *AD) {
	e, err := rootDSE(ad.URL, "supportedControl", "supportedExtension", "defaultNamingContext")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(e.GetAttributeValues("supportedControl"), slapdtest.ProxiedAuthzOID) {
		t.Errorf("root DSE lists the Proxied Authorization control %s", slapdtest.ProxiedAuthzOID)
	}
	t.Logf("supportedExtension: %q", e.GetAttributeValues("supportedExtension"))
}

// testADCriticalControl: Samba reads a control's criticality as true only
// when encoded as 0xFF (DER). go-ldap encodes true as 0x01, so Samba ignores
// an unsupported "critical" control from go-ldap and runs the search with
// the bound identity's rights; with 0xFF it answers the search with an
// ExtendedResponse (unavailableCriticalExtension) and no SearchResultDone,
// which go-ldap waits for in vain.
func testADCriticalControl(t *testing.T, ad *AD) {
	proxied := slapdtest.ProxyAuthzControl("dn:" + ad.UserDN("bob"))
	conn := bind(t, ad.URL, ad.AdminDN, ad.AdminPassword)
	e, err := read(conn, ad.UserDN("alice"), []ldap.Control{proxied}, "cn")
	if err != nil || e == nil {
		t.Errorf("search with go-ldap's critical control: %v, %v; want the entry", e, err)
	}
	for _, c := range []struct {
		criticality byte
		final       ber.Tag
		code        int64
	}{
		{0x01, ldap.ApplicationSearchResultDone, ldap.LDAPResultSuccess},
		{0xFF, ldap.ApplicationExtendedResponse, ldap.LDAPResultUnavailableCriticalExtension},
	} {
		ctrl := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
		ctrl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, slapdtest.ProxiedAuthzOID, "Type"))
		critical := ber.Encode(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, nil, "Criticality")
		critical.Data.WriteByte(c.criticality)
		ctrl.AppendChild(critical)
		ctrl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "dn:"+ad.UserDN("bob"), "Value"))
		entries, final, code := rawSearch(t, ad, ad.UserDN("alice"), ctrl)
		t.Logf("criticality %#x: %d entries, then op %d with result %d", c.criticality, entries, final, code)
		if final != c.final || code != c.code {
			t.Errorf("criticality %#x: search ended with op %d (result %d), want %d (result %d)", c.criticality, final, code, c.final, c.code)
		}
	}
}

// rawSearch binds as Administrator and sends a base search of dn with
// ctrl on a plain TCP connection; it returns the number of entries, and
// the protocol op and result code of the message that ends the search.
func rawSearch(t *testing.T, ad *AD, dn string, ctrl *ber.Packet) (entries int, final ber.Tag, code int64) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", ad.Addr, dialTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(stepTimeout))
	bindOp := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationBindRequest, nil, "Bind")
	bindOp.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "Version"))
	bindOp.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, ad.AdminDN, "Name"))
	bindOp.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, ad.AdminPassword, "Password"))
	search := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "Search")
	search.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "Base"))
	search.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "Scope"))
	search.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "Deref"))
	search.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Size"))
	search.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Time"))
	search.AppendChild(ber.NewLDAPBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "TypesOnly"))
	search.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 7, "objectClass", "Present"))
	search.AppendChild(ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes"))
	controls := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
	controls.AppendChild(ctrl)
	for id, op := range []*ber.Packet{bindOp, search} {
		msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Message")
		msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id+1, "ID"))
		msg.AppendChild(op)
		if op == search {
			msg.AppendChild(controls)
		}
		if _, err := conn.Write(msg.Bytes()); err != nil {
			t.Fatal(err)
		}
		answer := readAnswer(t, conn)
		for answer.Tag == ldap.ApplicationSearchResultEntry {
			entries++
			answer = readAnswer(t, conn)
		}
		if op == search {
			code, _ := answer.Children[0].Value.(int64)
			return entries, answer.Tag, code
		}
	}
	return 0, 0, 0
}

// readAnswer reads one LDAP message and returns its protocol op.
func readAnswer(t *testing.T, conn net.Conn) *ber.Packet {
	t.Helper()
	msg, err := ber.ReadPacket(conn)
	if err != nil || len(msg.Children) < 2 || len(msg.Children[1].Children) == 0 {
		t.Fatalf("read an answer: %v", err)
	}
	return msg.Children[1]
}

func TestSetGlobals(t *testing.T) {
	conf := "# comment\n[global]\n\tserver services = s3fs, rpc, ldap\n\tworkgroup = EXAMPLE\n\n[netlogon]\n\tread only = No\n"
	got, err := setGlobals(conf, []string{"server services = ldap", "log file = /x/log"})
	if err != nil {
		t.Fatal(err)
	}
	want := "# comment\n[global]\n\tworkgroup = EXAMPLE\n\tserver services = ldap\n\tlog file = /x/log\n\n[netlogon]\n\tread only = No\n"
	if got != want {
		t.Errorf("setGlobals:\n%s\nwant:\n%s", got, want)
	}
	if _, err := setGlobals("[homes]\n", nil); err == nil {
		t.Error("setGlobals without [global]: no error")
	}
}

func TestDefaultsLine(t *testing.T) {
	for line, want := range map[string]string{
		"with_systemd = 1":                     "with_systemd = 0",
		"prefix = /usr":                        "prefix = /p",
		"sbin_dir = /usr/sbin":                 "sbin_dir = /usr/sbin",
		"run_dir = /run/dirsrv":                "run_dir = /p/run/dirsrv",
		"inst_dir = /usr/lib/x/dirsrv/slapd-x": "inst_dir = /p/lib/dirsrv/slapd-{instance_name}",
		"user = dirsrv":                        "user = dirsrv",
		"; a comment = /x":                     "; a comment = /x",
	} {
		if got := defaultsLine(line, "/p"); got != want {
			t.Errorf("defaultsLine(%q) = %q, want %q", line, got, want)
		}
	}
}

func TestParseRUVElement(t *testing.T) {
	for v, want := range map[string]struct {
		id  int
		csn string
		ok  bool
	}{
		"{replicageneration} 6b13275f000000010000":                                 {0, "", false},
		"{replica 1 ldap://localhost:1} 6b13275f000100010000 6b132761000100010000": {1, "6b132761000100010000", true},
		"{replica 2 ldap://localhost:2}":                                           {2, "", true},
	} {
		id, csn, ok := parseRUVElement(v)
		if id != want.id || csn != want.csn || ok != want.ok {
			t.Errorf("parseRUVElement(%q) = %d, %q, %v; want %+v", v, id, csn, ok, want)
		}
	}
}
