//go:build linux

package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/dirtest"
)

// TestRandomBindsAsOn389 sends the same generated sequence of binds and
// reads on one connection straight to 389 Directory Server and through
// ldapmux, which serves it with proxied authorization, as
// TestRandomBindsAsOnSlapd does with slapd: binds as users (their DNs in
// any case and spacing) and the Directory Manager (whose session ldapmux
// keeps as the client's own) that succeed or fail in every way 389 tells
// apart, each followed by reads whose answer depends on who the connection
// is (389's access control, the users' group). 389 leaves a session as it
// was after a bind it rejects before reading it (a DN that is not one, an
// unknown critical control), unlike slapd: through ldapmux the client
// keeps its identity then too.
func TestRandomBindsAsOn389(t *testing.T) {
	cluster, _, addr := start389Proxied(t, 1, false)
	direct := strings.TrimPrefix(cluster.Instances[0].URL, "ldap://")
	atOnce(t, 4, "connection", func(t *testing.T, client uint64) {
		compareGeneratedBinds(t, direct, addr, ds389Binds, 300, client)
	})
}

var ds389Binds = bindGenerator{server: "389 Directory Server", bind: random389Bind, read: identityRead389}

// random389Bind builds a bind request for 389 with message ID id and
// describes it.
func random389Bind(r *rand.Rand, id int64) ([]byte, string) {
	n := r.IntN(6) + 1
	user, password := dirtest.UserDN(n), dirtest.UserPassword(n)
	switch r.IntN(13) {
	case 0, 1, 2, 3:
		return message(id, bindOp(user, password)).Bytes(), "bind as " + user
	case 4:
		dn := fmt.Sprintf("UID=%s, OU=People, DC=Example, DC=Test", strings.ToUpper(dirtest.UserID(n)))
		return message(id, bindOp(dn, password)).Bytes(), "bind as " + dn
	case 5:
		return message(id, bindOp(user, "wrong")).Bytes(), "bind as " + user + " with a wrong password"
	case 6:
		return message(id, bindOp("uid=nobody,"+dirtest.PeopleDN, "x")).Bytes(), "bind as no entry"
	case 7:
		return message(id, bindOp(user, "")).Bytes(), "unauthenticated bind as " + user
	case 8:
		return message(id, bindOp("", "")).Bytes(), "anonymous bind"
	case 9:
		return message(id, bindOp("", "x")).Bytes(), "anonymous bind with a password"
	case 10:
		return message(id, bindOp("not a DN", "x")).Bytes(), "bind as a DN that is not one"
	case 11:
		return message(id, bindOp(dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword)).Bytes(), "bind as the Directory Manager"
	default:
		control := &ldap.ControlString{ControlType: "1.3.6.1.4.1.99999.3", Criticality: true}
		return message(id, bindOp(user, password), control).Bytes(), "bind as " + user + " with an unknown critical control"
	}
}

// identityRead389 builds a request whose answer on 389 depends on who the
// connection is bound as. Who am I? is left out: 389 answers it with the
// connection's bind DN, which ldapmux gives itself (README, "Limitations").
func identityRead389(r *rand.Rand, id int64) ([]byte, string) {
	n := r.IntN(6) + 1
	switch r.IntN(4) {
	case 0:
		return message(id, searchOp(dirtest.UserDN(n), ldap.ScopeBaseObject, "(objectClass=*)", "mail", "cn", "userPassword", "aci")).Bytes(),
			fmt.Sprintf("read user %d's mail and password", n)
	case 1:
		op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 14, nil, "CompareRequest")
		op.AppendChild(octets(dirtest.StaffGroupDN))
		ava := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		ava.AppendChild(octets("member"))
		ava.AppendChild(octets(dirtest.UserDN(n)))
		op.AppendChild(ava)
		return message(id, op).Bytes(), fmt.Sprintf("compare the staff group's member %d", n)
	case 2:
		return message(id, searchOp(dirtest.ServicesDN, ldap.ScopeWholeSubtree, "(objectClass=*)", "cn", "description")).Bytes(), "read the service accounts"
	default:
		return message(id, searchOp(dirtest.PeopleDN, ldap.ScopeSingleLevel, "(uid=*)", "uid", "telephoneNumber")).Bytes(), "list the users"
	}
}
