package slapdtest

import (
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

func TestExplore(t *testing.T) {
	t0 := time.Now()
	c := ForTest(t, Options{Users: 600})
	t.Logf("start took %v", time.Since(t0))
	r := c.Replicas[0]
	svc := func() *ldap.Conn {
		conn, err := r.Dial()
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Bind(ServiceDN, ServicePassword); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	conn := svc()
	for _, id := range []string{"dn:" + UserDN(1), "", "u:user.1", "dn:" + AdminDN, "dn:uid=nonexistent,dc=example,dc=com", "dn:" + ServiceDN} {
		res, err := conn.WhoAmI([]ldap.Control{ProxyAuthzControl(id)})
		t.Logf("whoami proxied %q: %+v err=%v", id, res, err)
	}
	res, err := conn.WhoAmI([]ldap.Control{ldap.NewControlString(ProxiedAuthzOID, true, "")})
	t.Logf("whoami NewControlString empty: %+v err=%v", res, err)
	res, err = conn.WhoAmI([]ldap.Control{ldap.NewControlString(ProxiedAuthzOID, false, "dn:"+UserDN(1))})
	t.Logf("whoami noncritical: %+v err=%v", res, err)
	res, err = conn.WhoAmI(nil)
	t.Logf("whoami plain: %+v err=%v", res, err)
	// search secret as proxied
	for _, id := range []string{"dn:" + UserDN(1), ""} {
		sr, err := conn.Search(&ldap.SearchRequest{BaseDN: SecretDN, Scope: ldap.ScopeBaseObject, Filter: "(objectClass=*)", Controls: []ldap.Control{ProxyAuthzControl(id)}})
		t.Logf("secret as %q: %v err=%v", id, sr != nil && len(sr.Entries) > 0, err)
		sr, err = conn.Search(&ldap.SearchRequest{BaseDN: UserDN(2), Scope: ldap.ScopeBaseObject, Filter: "(objectClass=*)", Attributes: []string{"mail"}, Controls: []ldap.Control{ProxyAuthzControl(id)}})
		if err == nil {
			t.Logf("user2 mail as %q: %v", id, sr.Entries[0].GetAttributeValues("mail"))
		} else {
			t.Logf("user2 as %q err=%v", id, err)
		}
		// modify own entry
		m := ldap.NewModifyRequest(UserDN(1), []ldap.Control{ProxyAuthzControl(id)})
		m.Replace("description", []string{"set via proxy"})
		t.Logf("modify user1 as %q: err=%v", id, conn.Modify(m))
		// passwd modify
		seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "pm")
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, "newpass", "new"))
		er := ldap.NewExtendedRequest("1.3.6.1.4.1.4203.1.11.1", seq)
		er.Controls = []ldap.Control{ProxyAuthzControl(id)}
		resp, err := conn.Extended(er)
		t.Logf("passwd modify as %q: %+v err=%v", id, resp, err)
	}
	u1, _ := r.Dial()
	t.Logf("bind user1 newpass: %v", u1.Bind(UserDN(1), "newpass"))
	// paged
	for _, who := range []string{"admin", "service", "proxied", "anon", "anon-nopaging"} {
		c2, _ := r.Dial()
		var ctrls []ldap.Control
		switch who {
		case "admin":
			c2.Bind(AdminDN, AdminPassword)
		case "service":
			c2.Bind(ServiceDN, ServicePassword)
		case "proxied":
			c2.Bind(ServiceDN, ServicePassword)
			ctrls = append(ctrls, ProxyAuthzControl("dn:"+UserDN(5)))
		}
		req := ldap.NewSearchRequest(PeopleDN, ldap.ScopeSingleLevel, 0, 0, 0, false, "(objectClass=inetOrgPerson)", []string{"uid"}, ctrls)
		var sr *ldap.SearchResult
		var err error
		if who == "anon-nopaging" {
			sr, err = c2.Search(req)
		} else {
			sr, err = c2.SearchWithPaging(req, 100)
		}
		n := 0
		if sr != nil {
			n = len(sr.Entries)
		}
		t.Logf("paged as %s: %d err=%v", who, n, err)
		c2.Close()
	}
	// bind with proxied control?
	c3, _ := r.Dial()
	_, err = c3.SimpleBind(&ldap.SimpleBindRequest{Username: ServiceDN, Password: ServicePassword, Controls: []ldap.Control{ProxyAuthzControl("dn:" + UserDN(1))}})
	t.Logf("bind with proxy control: %v", err)
	counts, err := r.OperationCounts(t.Context())
	t.Logf("counts %v %v", counts, err)
	csn, err := r.ContextCSN(t.Context())
	t.Logf("csn %v %v", csn, err)
	t0 = time.Now()
	t.Logf("waitrepl %v %v", c.WaitReplicated(t.Context()), time.Since(t0))
	for _, x := range c.Replicas {
		csn, err := x.ContextCSN(t.Context())
		t.Logf("csn %d %v %v", x.ID, csn, err)
	}
}
