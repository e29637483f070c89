package slapdrun

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// testUsers is large enough that listing all users needs paging past
// slapd's default size limit of 500.
const testUsers = 600

// TestCluster runs the behaviour tests against one shared three-replica
// cluster. Subtests run in order; the disruptive ones come last.
func TestCluster(t *testing.T) {
	began := time.Now()
	c := ForTest(t, Options{Users: testUsers})
	t.Logf("Start took %v", time.Since(began))

	t.Run("AllReplicasServeUsers", func(t *testing.T) { testServeUsers(t, c) })
	t.Run("ReplicatesModify", func(t *testing.T) { testReplicatesModify(t, c) })
	t.Run("AnonymousACL", func(t *testing.T) { testAnonymousACL(t, c) })
	t.Run("UserACL", func(t *testing.T) { testUserACL(t, c) })
	t.Run("ServiceReadsSecret", func(t *testing.T) { testServiceReadsSecret(t, c) })
	t.Run("ProxiedAuthzAsUser", func(t *testing.T) { testProxiedAsUser(t, c) })
	t.Run("ProxiedAuthzAnonymous", func(t *testing.T) { testProxiedAnonymous(t, c) })
	t.Run("ProxiedAuthzDenied", func(t *testing.T) { testProxiedDenied(t, c) })
	t.Run("ProxiedPasswordModify", func(t *testing.T) { testProxiedPasswordModify(t, c) })
	t.Run("WriterScratch", func(t *testing.T) { testWriterScratch(t, c) })
	t.Run("ProxiedWrites", func(t *testing.T) { testProxiedWrites(t, c) })
	t.Run("PagedResults", func(t *testing.T) { testPagedResults(t, c) })
	t.Run("Monitor", func(t *testing.T) { testMonitor(t, c) })
	t.Run("OperationCounts", func(t *testing.T) { testOperationCounts(t, c) })
	t.Run("KillRestartCatchesUp", func(t *testing.T) { testKillRestart(t, c) })
	t.Run("StopRestart", func(t *testing.T) { testStopRestart(t, c) })
	t.Run("PauseResume", func(t *testing.T) { testPauseResume(t, c) })
}

// ctxFor returns a context bounded to 20s for one subtest step.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects to r and, unless dn is empty, binds as dn.
func dial(t *testing.T, r *Replica, dn, password string) *ldap.Conn {
	t.Helper()
	conn, err := r.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if dn != "" {
		if err := conn.Bind(dn, password); err != nil {
			t.Fatalf("bind as %s to replica %d: %v", dn, r.ID, err)
		}
	}
	return conn
}

// read returns the values of attr of dn (nil if the entry is invisible or
// the attribute is not readable).
func read(t *testing.T, conn *ldap.Conn, dn, attr string, controls ...ldap.Control) []string {
	t.Helper()
	req := baseSearch(dn, attr)
	req.Controls = controls
	res, err := conn.Search(req)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil
	}
	if err != nil {
		t.Fatalf("read %s of %s: %v", attr, dn, err)
	}
	if len(res.Entries) == 0 {
		return nil
	}
	return res.Entries[0].GetAttributeValues(attr)
}

// modify replaces attr of dn with value.
func modify(conn *ldap.Conn, dn, attr, value string, controls ...ldap.Control) error {
	req := ldap.NewModifyRequest(dn, controls)
	req.Replace(attr, []string{value})
	return conn.Modify(req)
}

// wantCode fails unless err is an LDAP error with the given result code.
func wantCode(t *testing.T, what string, err error, code uint16) {
	t.Helper()
	if !ldap.IsErrorWithCode(err, code) {
		t.Fatalf("%s: got %v, want LDAP result code %d (%s)", what, err, code, ldap.LDAPResultCodeMap[code])
	}
}

func testServeUsers(t *testing.T, c *Cluster) {
	for _, r := range c.Replicas {
		conn := dial(t, r, "", "")
		res, err := conn.SearchWithPaging(ldap.NewSearchRequest(PeopleDN, ldap.ScopeSingleLevel,
			ldap.NeverDerefAliases, 0, 0, false, "(objectClass=inetOrgPerson)", []string{"uid"}, nil), 200)
		if err != nil {
			t.Fatalf("replica %d: %v", r.ID, err)
		}
		if len(res.Entries) != testUsers {
			t.Fatalf("replica %d: %d users, want %d", r.ID, len(res.Entries), testUsers)
		}
		if got := read(t, conn, UserDN(7), "cn"); len(got) != 1 || got[0] != "User 7" {
			t.Fatalf("replica %d: cn of user 7 = %v", r.ID, got)
		}
	}
	first, err := c.Replicas[0].ContextCSN(ctxFor(t))
	if err != nil || len(first) == 0 {
		t.Fatalf("contextCSN: %v %v", first, err)
	}
}

func testReplicatesModify(t *testing.T, c *Cluster) {
	admin := dial(t, c.Replica(1), AdminDN, AdminPassword)
	want := "replicated at " + time.Now().Format(time.RFC3339Nano)
	if err := modify(admin, UserDN(1), "description", want); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Replicas[1:] {
		got := read(t, dial(t, r, AdminDN, AdminPassword), UserDN(1), "description")
		if len(got) != 1 || got[0] != want {
			t.Fatalf("replica %d: description = %v, want %q", r.ID, got, want)
		}
	}
}

func testAnonymousACL(t *testing.T, c *Cluster) {
	anon := dial(t, c.Replica(2), "", "")
	if got := read(t, anon, UserDN(1), "cn"); len(got) != 1 {
		t.Fatalf("anonymous cannot read cn: %v", got)
	}
	for _, attr := range []string{"userPassword", "mail", "telephoneNumber"} {
		if got := read(t, anon, UserDN(1), attr); len(got) != 0 {
			t.Fatalf("anonymous reads %s: %v", attr, got)
		}
	}
	if got := read(t, anon, SecretDN, "description"); len(got) != 0 {
		t.Fatalf("anonymous reads the secret: %v", got)
	}
	if got := read(t, anon, ServiceDN, "authzTo"); len(got) != 0 {
		t.Fatalf("anonymous reads authzTo: %v", got)
	}
}

func testUserACL(t *testing.T, c *Cluster) {
	user := dial(t, c.Replica(3), UserDN(2), UserPassword(2))
	if got := read(t, user, UserDN(3), "mail"); len(got) != 1 || got[0] != UserMail(3) {
		t.Fatalf("user cannot read mail of another user: %v", got)
	}
	if got := read(t, user, UserDN(3), "userPassword"); len(got) != 0 {
		t.Fatalf("user reads another user's password: %v", got)
	}
	if got := read(t, user, SecretDN, "description"); len(got) != 0 {
		t.Fatalf("user reads the secret: %v", got)
	}
	if err := modify(user, UserDN(2), "description", "mine"); err != nil {
		t.Fatalf("user cannot modify own entry: %v", err)
	}
	wantCode(t, "modify another user", modify(user, UserDN(3), "description", "theirs"), ldap.LDAPResultInsufficientAccessRights)
	wantCode(t, "grant self authzTo", modify(user, UserDN(2), "authzTo", "dn.regex:.*"), ldap.LDAPResultInsufficientAccessRights)
}

func testServiceReadsSecret(t *testing.T, c *Cluster) {
	svc := dial(t, c.Replica(1), ServiceDN, ServicePassword)
	if got := read(t, svc, SecretDN, "description"); len(got) != 1 || got[0] != SecretDescription {
		t.Fatalf("service account cannot read the secret: %v", got)
	}
	if got := read(t, svc, ServiceDN, "authzTo"); len(got) != 0 {
		t.Fatalf("service account reads its authzTo: %v", got)
	}
}

func testProxiedAsUser(t *testing.T, c *Cluster) {
	svc := dial(t, c.Replica(1), ServiceDN, ServicePassword)
	// The control as go-ldap builds it, and our helper: same encoding for
	// a non-empty authzId.
	for _, ctrl := range []ldap.Control{
		ldap.NewControlString(ProxiedAuthzOID, true, "dn:"+UserDN(1)),
		ProxyAuthzControl("dn:" + UserDN(1)),
	} {
		if got := read(t, svc, UserDN(2), "mail", ctrl); len(got) != 1 {
			t.Fatalf("proxied as user.1: cannot read mail: %v", got)
		}
		if got := read(t, svc, SecretDN, "description", ctrl); len(got) != 0 {
			t.Fatalf("proxied as user.1: reads the secret: %v", got)
		}
		who, err := svc.WhoAmI([]ldap.Control{ctrl})
		if err != nil {
			t.Fatalf("WhoAmI with proxied authz: %v", err)
		}
		if want := "dn:" + UserDN(1); who.AuthzID != want {
			t.Fatalf("WhoAmI with proxied authz = %q, want %q", who.AuthzID, want)
		}
	}
	// Writes run with the proxied identity too.
	ctrl := ProxyAuthzControl("dn:" + UserDN(4))
	if err := modify(svc, UserDN(4), "description", "via proxy", ctrl); err != nil {
		t.Fatalf("proxied self-modify: %v", err)
	}
	wantCode(t, "proxied modify of another user", modify(svc, UserDN(5), "description", "x", ctrl), ldap.LDAPResultInsufficientAccessRights)
	// Without the control the service account is itself again.
	if got := read(t, svc, SecretDN, "description"); len(got) != 1 {
		t.Fatalf("service account lost its rights after a proxied request: %v", got)
	}
}

func testProxiedAnonymous(t *testing.T, c *Cluster) {
	svc := dial(t, c.Replica(2), ServiceDN, ServicePassword)
	ctrl := ProxyAuthzControl("")
	if got := read(t, svc, UserDN(2), "mail", ctrl); len(got) != 0 {
		t.Fatalf("proxied as anonymous: reads mail: %v", got)
	}
	if got := read(t, svc, UserDN(2), "cn", ctrl); len(got) != 1 {
		t.Fatalf("proxied as anonymous: cannot read cn: %v", got)
	}
	if got := read(t, svc, SecretDN, "description", ctrl); len(got) != 0 {
		t.Fatalf("proxied as anonymous: reads the secret: %v", got)
	}
	who, err := svc.WhoAmI([]ldap.Control{ctrl})
	if err != nil || who.AuthzID != "" {
		t.Fatalf("WhoAmI proxied as anonymous = %+v, %v; want empty authzId", who, err)
	}
	wantCode(t, "proxied anonymous modify", modify(svc, UserDN(2), "description", "x", ctrl), ldap.LDAPResultStrongAuthRequired)
	// go-ldap's ControlString omits an empty value, which slapd rejects.
	_, err = svc.WhoAmI([]ldap.Control{ldap.NewControlString(ProxiedAuthzOID, true, "")})
	wantCode(t, "NewControlString with empty authzId", err, ldap.LDAPResultProtocolError)
}

func testProxiedDenied(t *testing.T, c *Cluster) {
	user := dial(t, c.Replica(1), UserDN(1), UserPassword(1))
	_, err := user.WhoAmI([]ldap.Control{ProxyAuthzControl("dn:" + UserDN(2))})
	wantCode(t, "user without authzTo proxying", err, ldap.LDAPResultAuthorizationDenied)
	anon := dial(t, c.Replica(1), "", "")
	_, err = anon.WhoAmI([]ldap.Control{ProxyAuthzControl("dn:" + UserDN(2))})
	wantCode(t, "anonymous proxying", err, ldap.LDAPResultAuthorizationDenied)
	svc := dial(t, c.Replica(1), ServiceDN, ServicePassword)
	_, err = svc.WhoAmI([]ldap.Control{ProxyAuthzControl("dn:not a dn")})
	wantCode(t, "malformed authzId", err, ldap.LDAPResultAuthorizationDenied)
}

// passwordModify runs a Password Modify extended operation (RFC 3062)
// with controls; go-ldap's PasswordModify does not take controls.
func passwordModify(conn *ldap.Conn, newPassword string, controls ...ldap.Control) error {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Password Modify Request")
	seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, newPassword, "New Password"))
	req := ldap.NewExtendedRequest("1.3.6.1.4.1.4203.1.11.1", seq)
	req.Controls = controls
	_, err := conn.Extended(req)
	return err
}

func testProxiedPasswordModify(t *testing.T, c *Cluster) {
	const n = 9
	svc := dial(t, c.Replica(1), ServiceDN, ServicePassword)
	if err := passwordModify(svc, "changed.9", ProxyAuthzControl("dn:"+UserDN(n))); err != nil {
		t.Fatalf("proxied password modify: %v", err)
	}
	dial(t, c.Replica(1), UserDN(n), "changed.9")
	err := passwordModify(svc, "x", ProxyAuthzControl(""))
	wantCode(t, "anonymous password modify", err, ldap.LDAPResultStrongAuthRequired)
	// Restore the documented password (as the user itself).
	user := dial(t, c.Replica(1), UserDN(n), "changed.9")
	if err := passwordModify(user, UserPassword(n)); err != nil {
		t.Fatal(err)
	}
	dial(t, c.Replica(1), UserDN(n), UserPassword(n))
}

func testWriterScratch(t *testing.T, c *Cluster) {
	w := dial(t, c.Replica(2), WriterDN, WriterPassword)
	dn := "cn=tmp," + ScratchDN
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"organizationalRole"})
	add.Attribute("cn", []string{"tmp"})
	if err := w.Add(add); err != nil {
		t.Fatalf("writer add: %v", err)
	}
	if err := modify(w, dn, "description", "modified"); err != nil {
		t.Fatalf("writer modify: %v", err)
	}
	if err := w.ModifyDN(ldap.NewModifyDNRequest(dn, "cn=renamed", true, "")); err != nil {
		t.Fatalf("writer modrdn: %v", err)
	}
	if err := w.Del(ldap.NewDelRequest("cn=renamed,"+ScratchDN, nil)); err != nil {
		t.Fatalf("writer delete: %v", err)
	}
	wantCode(t, "writer modifies outside scratch", modify(w, UserDN(1), "description", "x"), ldap.LDAPResultInsufficientAccessRights)
	wantCode(t, "writer deletes the container", w.Del(ldap.NewDelRequest(ScratchDN, nil)), ldap.LDAPResultInsufficientAccessRights)
	app := dial(t, c.Replica(2), AppDN, AppPassword)
	add = ldap.NewAddRequest("cn=app,"+ScratchDN, nil)
	add.Attribute("objectClass", []string{"organizationalRole"})
	add.Attribute("cn", []string{"app"})
	wantCode(t, "app adds to scratch", app.Add(add), ldap.LDAPResultInsufficientAccessRights)
}

// testProxiedWrites checks add, modrdn and delete through the service
// account: they succeed with the writer's rights, fail with a user's.
func testProxiedWrites(t *testing.T, c *Cluster) {
	svc := dial(t, c.Replica(3), ServiceDN, ServicePassword)
	asWriter := []ldap.Control{ProxyAuthzControl("dn:" + WriterDN)}
	asUser := []ldap.Control{ProxyAuthzControl("dn:" + UserDN(1))}
	newEntry := func(ctrls []ldap.Control) *ldap.AddRequest {
		add := ldap.NewAddRequest("cn=proxied,"+ScratchDN, ctrls)
		add.Attribute("objectClass", []string{"organizationalRole"})
		add.Attribute("cn", []string{"proxied"})
		return add
	}
	wantCode(t, "proxied user adds", svc.Add(newEntry(asUser)), ldap.LDAPResultInsufficientAccessRights)
	wantCode(t, "service itself adds", svc.Add(newEntry(nil)), ldap.LDAPResultInsufficientAccessRights)
	if err := svc.Add(newEntry(asWriter)); err != nil {
		t.Fatalf("proxied writer add: %v", err)
	}
	rename := func(ctrls []ldap.Control) error {
		return svc.ModifyDN(ldap.NewModifyDNWithControlsRequest("cn=proxied,"+ScratchDN, "cn=proxied2", true, "", ctrls))
	}
	wantCode(t, "proxied user renames", rename(asUser), ldap.LDAPResultInsufficientAccessRights)
	if err := rename(asWriter); err != nil {
		t.Fatalf("proxied writer modrdn: %v", err)
	}
	del := func(ctrls []ldap.Control) error {
		return svc.Del(ldap.NewDelRequest("cn=proxied2,"+ScratchDN, ctrls))
	}
	wantCode(t, "proxied user deletes", del(asUser), ldap.LDAPResultInsufficientAccessRights)
	if err := del(asWriter); err != nil {
		t.Fatalf("proxied writer delete: %v", err)
	}
}

func testPagedResults(t *testing.T, c *Cluster) {
	type who struct {
		name, dn, pw string
		ctrl         []ldap.Control
	}
	for _, w := range []who{
		{"admin", AdminDN, AdminPassword, nil},
		{"service", ServiceDN, ServicePassword, nil},
		{"service as user.1", ServiceDN, ServicePassword, []ldap.Control{ProxyAuthzControl("dn:" + UserDN(1))}},
		{"anonymous", "", "", nil},
	} {
		conn := dial(t, c.Replica(3), w.dn, w.pw)
		req := ldap.NewSearchRequest(PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
			0, 0, false, "(uid=user.*)", []string{"uid"}, w.ctrl)
		res, err := conn.SearchWithPaging(req, 100)
		if err != nil {
			t.Fatalf("%s: paged search: %v", w.name, err)
		}
		if len(res.Entries) != testUsers {
			t.Fatalf("%s: paged search returned %d entries, want %d", w.name, len(res.Entries), testUsers)
		}
	}
}

func testMonitor(t *testing.T, c *Cluster) {
	svc := dial(t, c.Replica(1), ServiceDN, ServicePassword)
	if got := read(t, svc, "cn=Monitor", "cn"); len(got) != 1 {
		t.Fatalf("service account cannot read cn=Monitor: %v", got)
	}
	anon := dial(t, c.Replica(1), "", "")
	if got := read(t, anon, "cn=Monitor", "cn"); len(got) != 0 {
		t.Fatalf("anonymous reads cn=Monitor: %v", got)
	}
	user := dial(t, c.Replica(1), UserDN(1), UserPassword(1))
	if got := read(t, user, "cn=Monitor", "cn"); len(got) != 0 {
		t.Fatalf("user reads cn=Monitor: %v", got)
	}
}

func testOperationCounts(t *testing.T, c *Cluster) {
	r := c.Replica(2)
	before, err := r.OperationCounts(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bind", "unbind", "search", "compare", "modify", "modrdn", "add", "delete", "abandon", "extended"} {
		if _, ok := before[k]; !ok {
			t.Fatalf("OperationCounts lacks %q: %v", k, before)
		}
	}
	anon := dial(t, r, "", "")
	for range 5 {
		read(t, anon, UserDN(1), "cn")
	}
	after, err := r.OperationCounts(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if after["search"] < before["search"]+5 {
		t.Fatalf("search count went from %d to %d, want +5", before["search"], after["search"])
	}
}

func testKillRestart(t *testing.T, c *Cluster) {
	r3 := c.Replica(3)
	oldPID := r3.PID()
	if err := r3.Kill(); err != nil {
		t.Fatal(err)
	}
	if r3.Running() || r3.PID() != 0 {
		t.Fatalf("killed replica still running (pid %d)", r3.PID())
	}
	if _, err := r3.Dial(); err == nil {
		t.Fatal("killed replica still accepts connections")
	}
	want := "changed while replica 3 was down"
	if err := modify(dial(t, c.Replica(1), AdminDN, AdminPassword), UserDN(2), "description", want); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctxFor(t)); err != nil { // replicas 1 and 2
		t.Fatal(err)
	}
	if err := r3.Restart(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if !r3.Running() || r3.PID() == oldPID || r3.PID() == 0 {
		t.Fatalf("restarted replica: running=%v pid=%d (was %d)", r3.Running(), r3.PID(), oldPID)
	}
	if err := c.WaitReplicated(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, dial(t, r3, AdminDN, AdminPassword), UserDN(2), "description"); len(got) != 1 || got[0] != want {
		t.Fatalf("restarted replica did not catch up: description = %v", got)
	}
}

func testStopRestart(t *testing.T, c *Cluster) {
	r2 := c.Replica(2)
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
	if r2.Running() {
		t.Fatal("stopped replica still running")
	}
	if err := r2.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := r2.Restart(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
}

func testPauseResume(t *testing.T, c *Cluster) {
	r2 := c.Replica(2)
	if err := r2.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = r2.Resume()
		}
	}()
	if !r2.Running() || !r2.Paused() {
		t.Fatalf("paused replica: running=%v paused=%v", r2.Running(), r2.Paused())
	}
	conn := dial(t, r2, "", "") // the kernel still accepts connections
	conn.SetTimeout(300 * time.Millisecond)
	if _, err := conn.Search(baseSearch("", "namingContexts")); err == nil {
		t.Fatal("search on a paused replica succeeded")
	}
	want := "changed while replica 2 was paused"
	if err := modify(dial(t, c.Replica(1), AdminDN, AdminPassword), UserDN(3), "description", want); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctxFor(t)); err != nil { // skips the paused replica
		t.Fatal(err)
	}
	if err := r2.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	if r2.Paused() {
		t.Fatal("resumed replica still paused")
	}
	if got := read(t, dial(t, r2, "", ""), UserDN(3), "cn"); len(got) != 1 {
		t.Fatalf("resumed replica: cn = %v", got)
	}
	if err := c.WaitReplicated(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, dial(t, r2, AdminDN, AdminPassword), UserDN(3), "description"); len(got) != 1 || got[0] != want {
		t.Fatalf("resumed replica did not catch up: %v", got)
	}
}

// TestSingleReplica covers Replicas=1 (no syncrepl), ExtraLDIF and Close.
func TestSingleReplica(t *testing.T) {
	extra := "dn: cn=extra," + BaseDN + "\nobjectClass: organizationalRole\ncn: extra\n"
	c, err := Start(ctxFor(t), Options{Replicas: 1, Users: 2, ExtraLDIF: extra, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := c.Replica(1)
	if got := read(t, dial(t, r, "", ""), "cn=extra,"+BaseDN, "cn"); len(got) != 1 {
		t.Fatalf("extra entry missing: %v", got)
	}
	if got := read(t, dial(t, r, "", ""), StaffGroupDN, "member"); len(got) != 2 {
		t.Fatalf("staff members = %v, want the 2 users", got)
	}
	if err := c.WaitReplicated(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	pid := r.PID()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("slapd pid %d still exists after Close: %v", pid, err)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Fatalf("Close left %s behind: %v", c.Dir, err)
	}
}

// TestConsumersOfAProvider checks Options.Provider: the consumers take the
// provider's data and its later writes, with its entryUUIDs, and refuse
// writes of their own.
func TestConsumersOfAProvider(t *testing.T) {
	provider, err := Start(ctxFor(t), Options{Replicas: 1, Users: 3, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer provider.Close()
	consumers, err := Start(ctxFor(t), Options{Replicas: 2, Users: 3, Provider: provider.Replica(1).URL, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer consumers.Close()
	want := read(t, dial(t, provider.Replica(1), AdminDN, AdminPassword), UserDN(3), "entryUUID")
	admin := dial(t, provider.Replica(1), AdminDN, AdminPassword)
	add := ldap.NewAddRequest("cn=later,"+BaseDN, nil)
	add.Attribute("objectClass", []string{"organizationalRole"})
	add.Attribute("cn", []string{"later"})
	if err := admin.Add(add); err != nil {
		t.Fatal(err)
	}
	for _, r := range consumers.Replicas {
		conn := dial(t, r, AdminDN, AdminPassword)
		if got := read(t, conn, UserDN(3), "entryUUID"); !slices.Equal(got, want) {
			t.Fatalf("consumer %d: entryUUID %v, the provider's %v", r.ID, got, want)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err := conn.Search(ldap.NewSearchRequest("cn=later,"+BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
			if err == nil && len(res.Entries) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer %d lacks the provider's later write: %v", r.ID, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		own := ldap.NewAddRequest("cn=own,"+BaseDN, nil)
		own.Attribute("objectClass", []string{"organizationalRole"})
		own.Attribute("cn", []string{"own"})
		if err := conn.Add(own); !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) && !ldap.IsErrorWithCode(err, ldap.LDAPResultReferral) {
			t.Fatalf("consumer %d took a write of its own: %v", r.ID, err)
		}
	}
}

// TestFixedDirAndPorts checks Options.Dir (kept by Close) and Options.Ports.
func TestFixedDirAndPorts(t *testing.T) {
	ports, err := FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := Start(ctxFor(t), Options{Replicas: 2, Users: 1, Dir: dir, Ports: ports, Threads: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, r := range c.Replicas {
		if r.Port != ports[i] || r.URL != "ldap://127.0.0.1:"+strconv.Itoa(ports[i]) {
			t.Fatalf("replica %d: port %d url %s, want port %d", r.ID, r.Port, r.URL, ports[i])
		}
	}
	admin := dial(t, c.Replica(2), AdminDN, AdminPassword)
	if err := modify(admin, UserDN(1), "description", "from 2"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	csns, err := c.Replica(1).ContextCSN(ctxFor(t))
	if err != nil || len(csns) != 2 {
		t.Fatalf("contextCSN after writes by two serverIDs = %v, %v; want 2 values", csns, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Replica(1).ConfigFile); err != nil {
		t.Fatalf("Close removed a directory it did not create: %v", err)
	}
}

// TestPortConflictRetry makes the first picked port busy and checks that
// Start picks another one.
func TestPortConflictRetry(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPorts = func(n int) ([]int, error) {
		calls++
		ports, err := FreePorts(n)
		if calls == 1 {
			ports[0] = busyPort
		}
		return ports, err
	}
	defer func() { pickPorts = FreePorts }()
	c, err := Start(ctxFor(t), Options{Replicas: 2, Users: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if calls < 2 || c.Replica(1).Port == busyPort {
		t.Fatalf("port not re-picked: calls=%d port=%d busy=%d", calls, c.Replica(1).Port, busyPort)
	}
	if err := c.WaitReplicated(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
}

// TestStartErrors checks option validation and that failures are reported
// with slapd's or slapadd's own messages.
func TestStartErrors(t *testing.T) {
	for _, opts := range []Options{{Replicas: MaxReplicas + 1}, {Replicas: 2, Ports: []int{1}}, {Users: -1}, {Provider: "ldaps://127.0.0.1:1"}} {
		if c, err := Start(t.Context(), opts); err == nil {
			c.Close()
			t.Fatalf("Start(%+v) succeeded", opts)
		}
	}
	_, err := Start(ctxFor(t), Options{Replicas: 1, Users: 1, ExtraLDIF: "dn: cn=bad," + BaseDN + "\nobjectClass: noSuchClass\n"})
	if err == nil || !strings.Contains(err.Error(), "slapadd") {
		t.Fatalf("bad ExtraLDIF: err = %v", err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = Start(ctxFor(t), Options{Replicas: 1, Users: 1, Ports: []int{busy.Addr().(*net.TCPAddr).Port}})
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("fixed busy port: err = %v", err)
	}
}

// TestCopySparse checks that copySparse reproduces a sparse file exactly.
func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src, dst := dir+"/src", dir+"/dst"
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 5000, 3 << 20, 9<<20 + 17} {
		if _, err := f.WriteAt([]byte("data at "+strconv.FormatInt(off, 10)), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(16 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := copySparse(dst, src); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	got, err := os.ReadFile(dst)
	if err != nil || string(got) != string(want) {
		t.Fatalf("copy differs (err %v, %d vs %d bytes)", err, len(got), len(want))
	}
}

// TestSortingAndLargeMessages checks the sssvlv overlay (server-side
// sorting announced and applied) and that an authenticated client may add
// an entry larger than slapd's default 4 MiB message limit.
func TestSortingAndLargeMessages(t *testing.T) {
	c := ForTest(t, Options{Replicas: 1, Users: 30})
	admin := dial(t, c.Replica(1), AdminDN, AdminPassword)
	controls := read(t, admin, "", "supportedControl")
	for _, oid := range []string{SortControlOID, VLVControlOID} {
		if !slices.Contains(controls, oid) {
			t.Errorf("root DSE does not announce %s: %v", oid, controls)
		}
	}

	sort := ldap.NewControlServerSideSortingWithSortKeys([]*ldap.SortKey{{AttributeType: "sn", MatchingRule: "caseIgnoreOrderingMatch", Reverse: true}})
	res, err := admin.Search(ldap.NewSearchRequest(PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=inetOrgPerson)", []string{"sn"}, []ldap.Control{sort}))
	if err != nil {
		t.Fatalf("sorted search: %v", err)
	}
	var sns []string
	for _, e := range res.Entries {
		sns = append(sns, e.GetAttributeValue("sn"))
	}
	if len(sns) != 30 || !slices.IsSortedFunc(sns, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Fatalf("sorted search returned sn %v, want 30 values in descending order", sns)
	}

	photo := strings.Repeat("\xff\xd8 not quite a JPEG ", 6<<20/20)
	add := ldap.NewAddRequest("cn=big,"+ScratchDN, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("cn", []string{"big"})
	add.Attribute("sn", []string{"big"})
	add.Attribute("jpegPhoto", []string{photo})
	if err := admin.Add(add); err != nil {
		t.Fatalf("add a %d-byte entry: %v", len(photo), err)
	}
	if got := read(t, admin, "cn=big,"+ScratchDN, "jpegPhoto"); len(got) != 1 || got[0] != photo {
		t.Fatalf("the big entry did not come back intact (%d values)", len(got))
	}
}
