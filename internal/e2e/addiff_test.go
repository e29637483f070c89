//go:build linux

package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/dirtest"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// TestRandomSearchesAsOnAD sends generated searches and compares to a Samba
// AD DC directly and through ldapmux, which serves it in client-bind mode,
// as anonymous, users bound by DN and by user principal name, and the
// Administrator by down-level name, and compares every response byte for
// byte. Besides the requests of the other directories' generators, they
// use what AD clients send: DNs by SID, GUID and well-known GUID, ranged
// attributes (member;range=0-1), constructed attributes (tokenGroups,
// canonicalName), the bitwise and in-chain matching rules, and AD's
// controls (SD flags, extended DN, show deleted and recycled, domain scope,
// search options, attribute scoped query, virtual list view, DirSync).
func TestRandomSearchesAsOnAD(t *testing.T) {
	ad, _, addr := startADProxy(t, "")
	compareGenerated(t, ad.Addr, addr, adDirectory(ad), 400, 0)
}

// TestRandomSearchesAtOnceAsOnAD has 8 clients send generated searches and
// compares at once through one ldapmux in front of the AD DC, each with its
// own requests and identities, each identity on a connection of its own
// (client-bind mode): every response is still byte for byte what the same
// client gets straight from the DC.
func TestRandomSearchesAtOnceAsOnAD(t *testing.T) {
	ad, _, addr := startADProxy(t, "")
	dir := adDirectory(ad)
	atOnce(t, 8, "client", func(t *testing.T, client uint64) {
		compareGenerated(t, ad.Addr, addr, dir, 100, client+1)
	})
}

// startADProxy starts a Samba AD DC and ldapmux in front of it, with the
// Administrator as service account and extra configuration, once ldapmux
// has found it to be AD in client-bind mode.
func startADProxy(t *testing.T, extra string) (*dirtest.AD, *app.App, string) {
	t.Helper()
	ad := dirtest.StartAD(t)
	cfg := fmt.Sprintf("listen:\n  - address: 127.0.0.1:0\nservers:\n  - name: ad\n    address: %s\nservice-account:\n  bind-dn: %s\n  password: %s\n%s",
		ad.Addr, ad.AdminDN, ad.AdminPassword, extra)
	a, addr := startProxyYAML(t, cfg)
	logHealthOnFailure(t, a)
	eventually(t, 60*time.Second, "the AD DC available, recognised, in client-bind mode", func() bool {
		s := a.Registry().Snapshot().Servers[0]
		caps := s.Capabilities()
		return s.Health.State == backend.Available && caps != nil && caps.Type == backend.TypeAD && caps.Mode == backend.ModeClientBind
	})
	return ad, a, addr
}

// adDirectory is what generated requests address in the Samba AD DC.
func adDirectory(ad *dirtest.AD) diffDirectory {
	users := "CN=Users," + ad.BaseDN
	config := "CN=Configuration," + ad.BaseDN
	return diffDirectory{
		name: "Samba AD",
		bases: []string{ad.BaseDN, users, ad.UserDN("alice"), ad.UserDN("bob"), "CN=Builtin," + ad.BaseDN, "CN=System," + ad.BaseDN,
			config, "CN=Schema," + config, "CN=Domain Admins," + users, "OU=nowhere," + ad.BaseDN, "not a DN",
			"cn=ALICE, cn=users, dc=EXAMPLE, dc=test", "<SID=S-1-5-32-544>", "<WKGUID=a9d1ca15768811d1aded00c04fd8d5cd," + ad.BaseDN + ">",
			"<GUID=00000000-0000-0000-0000-000000000000>", "CN=Deleted Objects," + ad.BaseDN},
		schemaDN: "CN=Aggregate,CN=Schema," + config,
		compareDNs: []string{ad.UserDN("alice"), ad.UserDN("bob"), users, ad.AdminDN, "CN=Domain Admins," + users,
			"CN=nobody," + users, "not a DN", "<SID=S-1-5-32-544>"},
		identities: [][2]string{{"", ""}, {ad.UserDN("alice"), ad.UserPassword("alice")}, {ad.UPN("bob"), ad.UserPassword("bob")},
			{ad.DownLevel("Administrator"), ad.AdminPassword}},
		filterAttrs: []string{"sAMAccountName", "cn", "objectClass", "objectCategory", "mail", "member", "memberOf", "userAccountControl",
			"groupType", "adminCount", "name", "userPrincipalName", "description", "objectSid", "noSuchAttribute", "CN", "isDeleted"},
		filterValues: []string{"alice", "Bob", "al", "user", "group", "person", "top", "container", "", "*", "512", "2", "-2147483646",
			ad.UserDN("alice"), "CN=Domain Admins," + users, "alice@example.test", "TRUE", "\x00", "é"},
		searchAttrs: []string{"*", "+", "1.1", "cn", "sAMAccountName", "member", "member;range=0-1", "member;range=1-*", "memberOf",
			"objectSid", "objectGUID", "nTSecurityDescriptor", "tokenGroups", "userAccountControl", "distinguishedName", "canonicalName",
			"allowedAttributesEffective", "unicodePwd", "noSuchAttribute", "CN", "whenCreated", "objectClass"},
		matchingRules: []string{"1.2.840.113556.1.4.803", "1.2.840.113556.1.4.804", "1.2.840.113556.1.4.1941", "2.5.13.2", "1.2.3.4.5"},
		sampleUser: func(r *rand.Rand) (string, string) {
			return pick(r, []string{"sAMAccountName", "cn"}), pick(r, []string{"alice", "bob", "Administrator", "krbtgt", "Guest"})
		},
		moreControls: adControls,
	}
}

// adControls adds, now and then, the search controls AD clients send.
func adControls(r *rand.Rand, add func(string, ldap.Control)) {
	critical := func() bool { return r.IntN(2) == 0 }
	control := func(oid string, value *ber.Packet) ldap.Control {
		c := &ldap.ControlString{ControlType: oid, Criticality: critical()}
		if value != nil {
			c.ControlValue = string(value.Bytes())
		}
		return c
	}
	integers := func(values ...int64) *ber.Packet {
		seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		for _, v := range values {
			seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, v, ""))
		}
		return seq
	}
	if r.IntN(8) == 0 {
		add("SD flags", control("1.2.840.113556.1.4.801", integers(int64(r.IntN(16)))))
	}
	if r.IntN(8) == 0 {
		add("extended DN", control("1.2.840.113556.1.4.529", pick(r, []*ber.Packet{nil, integers(0), integers(1)})))
	}
	if r.IntN(10) == 0 {
		add("show deleted", control("1.2.840.113556.1.4.417", nil))
	}
	if r.IntN(12) == 0 {
		add("show recycled", control("1.2.840.113556.1.4.2064", nil))
	}
	if r.IntN(10) == 0 {
		add("domain scope", control("1.2.840.113556.1.4.1339", nil))
	}
	if r.IntN(10) == 0 {
		add("search options", control("1.2.840.113556.1.4.1340", integers(int64(1+r.IntN(2)))))
	}
	if r.IntN(10) == 0 {
		seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		seq.AppendChild(octets(pick(r, []string{"member", "memberOf", "cn"})))
		add("attribute scoped query", control("1.2.840.113556.1.4.1504", seq))
	}
	if r.IntN(10) == 0 {
		add("virtual list view", control("2.16.840.1.113730.3.4.9", vlvByOffset(int64(r.IntN(3)), int64(r.IntN(3)), int64(1+r.IntN(5)))))
	}
	if r.IntN(12) == 0 {
		seq := integers(int64(pick(r, []int{0, 1, 0x800})), 1<<20)
		seq.AppendChild(octets(""))
		add("DirSync", control("1.2.840.113556.1.4.841", seq))
	}
}

// vlvByOffset is a virtual list view request (draft-ietf-ldapext-ldapv3-vlv)
// for the entries around offset, with no context.
func vlvByOffset(before, after, offset int64) *ber.Packet {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, before, ""))
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, after, ""))
	byOffset := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "")
	byOffset.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, offset, ""))
	byOffset.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, ""))
	seq.AppendChild(byOffset)
	return seq
}

// TestRandomBindsAsOnAD sends the same generated sequence of binds and
// reads on one connection straight to the AD DC and through ldapmux, as
// TestRandomBindsAsOnSlapd does with slapd: binds by DN (in any case and
// spacing), user principal name and down-level name that succeed or fail
// in every way AD tells apart, each followed by reads whose answer depends
// on who the connection is. Samba, unlike slapd, leaves a session as it
// was after a bind fails: a client that binds again in client-bind mode
// does so on its own connection, so that it finds the same. SASL binds
// here are single rounds that fail (TestADSASLBinds has NTLM).
func TestRandomBindsAsOnAD(t *testing.T) {
	ad, _, addr := startADProxy(t, "")
	gen := adBinds(ad)
	atOnce(t, 4, "connection", func(t *testing.T, client uint64) {
		compareGeneratedBinds(t, ad.Addr, addr, gen, 300, client)
	})
}

// adBinds generates binds and identity reads for the AD DC.
func adBinds(ad *dirtest.AD) bindGenerator {
	users := "CN=Users," + ad.BaseDN
	type login struct{ name, password, what string }
	logins := func(r *rand.Rand) login {
		user := pick(r, ad.Users())
		password := ad.UserPassword(user)
		switch r.IntN(6) {
		case 0:
			return login{ad.UPN(user), password, "UPN"}
		case 1:
			return login{ad.DownLevel(user), password, "down-level name"}
		case 2:
			return login{fmt.Sprintf("cn=%s, CN=users, DC=Example,dc=TEST", user), password, "DN in other case and spacing"}
		case 3:
			return login{ad.DownLevel("Administrator"), ad.AdminPassword, "the Administrator"}
		default:
			return login{ad.UserDN(user), password, "DN"}
		}
	}
	bind := func(r *rand.Rand, id int64) ([]byte, string) {
		l := logins(r)
		switch r.IntN(13) {
		case 0, 1, 2, 3:
			return message(id, bindOp(l.name, l.password)).Bytes(), "bind by " + l.what + " " + l.name
		case 4:
			return message(id, bindOp(l.name, "wrong")).Bytes(), "bind by " + l.what + " with a wrong password"
		case 5:
			return message(id, bindOp("CN=nobody,"+users, "x")).Bytes(), "bind as no entry"
		case 6:
			return message(id, bindOp("nobody@"+ad.Realm, "x")).Bytes(), "bind as no principal"
		case 7:
			return message(id, bindOp("", "")).Bytes(), "anonymous bind"
		case 8:
			return message(id, bindOp(l.name, "")).Bytes(), "unauthenticated bind by " + l.what
		case 9:
			return message(id, bindOp("", "x")).Bytes(), "anonymous bind with a password"
		case 12:
			return saslBindRequest(int32(id), pick(r, []string{"NO-SUCH-MECHANISM", "PLAIN", "DIGEST-MD5"}), []byte("x")), "SASL bind with a mechanism Samba does not offer"
		case 10:
			return message(id, bindOp("not a DN", "x")).Bytes(), "bind as a name that is nothing"
		default:
			control := &ldap.ControlString{ControlType: "1.3.6.1.4.1.99999.3", Criticality: true}
			return message(id, bindOp(l.name, l.password), control).Bytes(), "bind by " + l.what + " with an unknown critical control"
		}
	}
	read := func(r *rand.Rand, id int64) ([]byte, string) {
		user := pick(r, ad.Users())
		switch r.IntN(5) {
		case 0:
			return message(id, searchOp(ad.UserDN(user), ldap.ScopeBaseObject, "(objectClass=*)", "mail", "memberOf", "tokenGroups")).Bytes(),
				"read " + user + "'s mail and groups"
		case 1:
			op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 14, nil, "CompareRequest")
			op.AppendChild(octets(ad.UserDN(user)))
			ava := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
			ava.AppendChild(octets("mail"))
			ava.AppendChild(octets(ad.UserMail(user)))
			op.AppendChild(ava)
			return message(id, op).Bytes(), "compare " + user + "'s mail"
		case 2: // what only the Administrator may read
			return message(id, searchOp(ad.UserDN(user), ldap.ScopeBaseObject, "(objectClass=*)", "nTSecurityDescriptor", "allowedAttributesEffective")).Bytes(),
				"read " + user + "'s security descriptor and what may be written"
		case 3:
			return message(id, searchOp(users, ldap.ScopeSingleLevel, "(objectClass=user)", "sAMAccountName", "adminCount")).Bytes(), "list the users"
		default:
			return message(id, extendedOp(ldapwire.OIDWhoAmI)).Bytes(), "who am I"
		}
	}
	return bindGenerator{server: "Samba AD", bind: bind, read: read}
}

// TestRandomPagingAsOnAD pages through generated searches on the AD DC
// straight and through ldapmux, as TestRandomPagingAsOnSlapd does with
// slapd, on four connections at once, bound as users and the
// Administrator. A client's bind again as itself goes on the connection
// that holds its paged searches (client-bind mode), which go on, as
// straight.
func TestRandomPagingAsOnAD(t *testing.T) {
	ad, _, addr := startADProxy(t, "")
	users := "CN=Users," + ad.BaseDN
	dir := pagingDirectory{
		server:    "Samba AD",
		bases:     []string{users, ad.BaseDN, "CN=Builtin," + ad.BaseDN},
		filters:   []string{"(objectClass=*)", "(objectClass=user)", "(objectClass=group)", "(cn=a*)", "(sAMAccountName=nobody)"},
		plainBase: users, plainFilter: "(objectClass=user)", plainAttr: "sAMAccountName",
		bindKeepsCursors: true,
	}
	identities := [][2]string{{ad.UserDN("alice"), ad.UserPassword("alice")}, {ad.UPN("bob"), ad.UserPassword("bob")},
		{ad.DownLevel("Administrator"), ad.AdminPassword}, {ad.AdminDN, ad.AdminPassword}}
	atOnce(t, 4, "connection", func(t *testing.T, client uint64) {
		comparePaging(t, ad.Addr, addr, dir, identities[client], 300, client)
	})
}
