package e2e

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestRandomBindsAsOnSlapd sends the same generated sequence of binds on
// one connection straight to slapd and through ldapmux, with reads after
// them that show who the connection is: binds that succeed, that fail
// (wrong password, no such entry, a DN that is not one, an unauthenticated
// bind, an anonymous bind with a password, LDAPv2, an authentication
// choice of LDAPv2, an unknown SASL mechanism, SASL PLAIN right and wrong, an unknown critical control), as
// users, the writer and the rootdn, with DNs in any case and spacing. After
// each, Who am I?, reads of what only some identities may read, a compare
// and a search of the service account's restricted data must be answered
// byte for byte as straight: a failed bind leaves the connection
// anonymous, a successful one gives the client that identity, never the
// service account's.
func TestRandomBindsAsOnSlapd(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 6})
	_, addr := startProxy(t, cluster, "")
	atOnce(t, 4, "connection", func(t *testing.T, client uint64) {
		compareGeneratedBinds(t, cluster.Replicas[0].Addr, addr, slapdBinds, 300, client)
	})
}

// bindGenerator makes the binds and reads of one directory.
type bindGenerator struct {
	server string
	// bind builds a bind request, read a request whose answer depends on
	// who the connection is; each with message ID id, and describes it.
	bind, read func(r *rand.Rand, id int64) ([]byte, string)
}

var slapdBinds = bindGenerator{server: "slapd", bind: randomBind, read: identityRead}

// compareGeneratedBinds sends count generated binds and reads on one
// connection to direct and one to proxied, and fails on any response that
// differs by a byte. LDAPMUX_DIFF_SEED and LDAPMUX_DIFF_COUNT explore
// other sequences.
func compareGeneratedBinds(t *testing.T, direct, proxied string, gen bindGenerator, count int, client uint64) {
	seed, count := diffSeedAndCount(20261207, count)
	r := rand.New(rand.NewPCG(seed, seed>>5+client))
	pair := clientPairs(t, direct, proxied, [][2]string{{"", ""}})[0]
	tally := newDiffTally(t, gen.server, seed)
	bound := 0
	for i := range count {
		id := int64(i + 1)
		req, what := gen.bind(r, id)
		if i > 0 && r.IntN(3) != 0 {
			req, what = gen.read(r, id)
		}
		want, got, final, code := tally.exchange(i, what, id, pair, req, req)
		if final.OpTag == ldapwire.OpBindResponse && code == ldapwire.Success {
			bound++
		}
		if !sameFrames(want, got) && !sameWhoAmI(t, want, got) {
			tally.differs(i, what, want, got)
		}
	}
	tally.check(count)
	codes := tally.codes
	if bound < count/20 {
		t.Fatalf("only %d successful binds in %d requests (results by code %v)", bound, count, codes)
	}
	t.Logf("%d generated binds and reads (seed %d), %d successful binds, results by code %v: every response identical, byte for byte",
		count, seed, bound, codes)
}

// sameWhoAmI reports whether want and got are the same answer to Who am I?
// but for the case and spacing of the DN (README, "Limitations": ldapmux
// names the DN as the client wrote it in its bind, a server as it stores
// it).
func sameWhoAmI(t *testing.T, want, got [][]byte) bool {
	if len(want) != 1 || len(got) != 1 {
		return false
	}
	a, b := mustParse(t, want[0]), mustParse(t, got[0])
	if a.OpTag != ldapwire.OpExtendedResponse || b.OpTag != ldapwire.OpExtendedResponse {
		return false
	}
	av, bv := whoAmIValue(t, want[0]), whoAmIValue(t, got[0])
	if !strings.HasPrefix(av, "dn:") || !strings.HasPrefix(bv, "dn:") {
		return false
	}
	da, errA := ldap.ParseDN(strings.TrimPrefix(av, "dn:"))
	db, errB := ldap.ParseDN(strings.TrimPrefix(bv, "dn:"))
	return errA == nil && errB == nil && da.EqualFold(db)
}

// whoAmIValue is the authorization identity of a Who am I? answer.
func whoAmIValue(t *testing.T, frame []byte) string {
	p, err := ber.DecodePacketErr(frame)
	if err != nil || len(p.Children) < 2 {
		t.Fatalf("undecodable response %x", frame)
	}
	for _, c := range p.Children[1].Children {
		if c.ClassType == ber.ClassContext && c.Tag == 11 {
			return c.Data.String()
		}
	}
	return ""
}

// randomBind builds a bind request with message ID id and describes it.
func randomBind(r *rand.Rand, id int64) ([]byte, string) {
	n := r.IntN(6) + 1
	user, password := slapdtest.UserDN(n), slapdtest.UserPassword(n)
	var op *ber.Packet
	var what string
	switch k := r.IntN(17); k {
	case 0, 1, 2:
		op, what = bindOp(user, password), "bind as "+user
	case 3:
		dn := fmt.Sprintf("UID=User.%d, OU=People, DC=Example, DC=Com", n)
		op, what = bindOp(dn, password), "bind as "+dn
	case 4:
		op, what = bindOp(user, "wrong"), "bind as "+user+" with a wrong password"
	case 5:
		op, what = bindOp("uid=nobody,"+slapdtest.PeopleDN, "x"), "bind as no entry"
	case 6:
		op, what = bindOp(user, ""), "unauthenticated bind as "+user
	case 7:
		op, what = bindOp("", ""), "anonymous bind"
	case 8:
		op, what = bindOp("", "x"), "anonymous bind with a password"
	case 9:
		op, what = bindOp("not a DN", "x"), "bind as a DN that is not one"
	case 10:
		op, what = bindOp(slapdtest.WriterDN, slapdtest.WriterPassword), "bind as the writer"
	case 11:
		op, what = bindOp(slapdtest.AdminDN, slapdtest.AdminPassword), "bind as the rootdn"
	case 12:
		op = ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagBindRequest, nil, "BindRequest")
		op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 2, "version"))
		op.AppendChild(octets(user))
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, password, "simple"))
		what = "LDAPv2 bind as " + user
	case 13:
		return saslBindRequest(int32(id), "NO-SUCH-MECHANISM", nil), "SASL bind with an unknown mechanism"
	case 14:
		creds := "\x00user." + strconv.Itoa(n) + "\x00" + password
		if r.IntN(2) == 0 {
			creds += "x"
		}
		return saslBindRequest(int32(id), "PLAIN", []byte(creds)), fmt.Sprintf("SASL PLAIN bind %q", creds)
	case 15:
		op = ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagBindRequest, nil, "BindRequest")
		op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "version"))
		op.AppendChild(octets(user))
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, password, "krbv42DSA"))
		what = "bind as " + user + " with an authentication choice LDAPv3 dropped"
	default:
		control := &ldap.ControlString{ControlType: "1.3.6.1.4.1.99999.3", Criticality: true}
		return message(id, bindOp(user, password), control).Bytes(), "bind as " + user + " with an unknown critical control"
	}
	return message(id, op).Bytes(), what
}

// identityRead builds a request whose answer depends on who the connection
// is bound as.
func identityRead(r *rand.Rand, id int64) ([]byte, string) {
	n := r.IntN(6) + 1
	switch r.IntN(5) {
	case 0:
		return message(id, extendedOp(ldapwire.OIDWhoAmI)).Bytes(), "who am I"
	case 1: // mail: users read it, anonymous does not
		return message(id, searchOp(slapdtest.UserDN(n), ldap.ScopeBaseObject, "(objectClass=*)", "mail", "cn", "userPassword")).Bytes(),
			fmt.Sprintf("read user %d's mail and password", n)
	case 2:
		op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 14, nil, "CompareRequest")
		op.AppendChild(octets(slapdtest.UserDN(n)))
		ava := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		ava.AppendChild(octets("mail"))
		ava.AppendChild(octets(fmt.Sprintf("user.%d@example.com", n)))
		op.AppendChild(ava)
		return message(id, op).Bytes(), fmt.Sprintf("compare user %d's mail", n)
	case 3: // the service account's data
		return message(id, searchOp(slapdtest.RestrictedDN, ldap.ScopeWholeSubtree, "(objectClass=*)", "description")).Bytes(), "read the restricted data"
	default:
		return message(id, searchOp(slapdtest.PeopleDN, ldap.ScopeSingleLevel, "(uid=user.*)", "uid", "telephoneNumber")).Bytes(), "list the users"
	}
}
