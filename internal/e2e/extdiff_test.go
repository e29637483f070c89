package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestRandomExtendedOperationsAsOnSlapd sends the same generated extended
// operations, byte for byte, to one slapd directly and through ldapmux to
// another started from the same data, as anonymous, users, the writer and
// the rootdn: password changes (RFC 3062) of one's own password and of
// others', with the old password right, wrong or missing, for entries that
// do not exist and identities that are not DNs, binds with the passwords
// before and after, Who am I?, Cancel of nothing (RFC 3909), a Refresh
// (RFC 2589) slapd does not support and operations nobody knows. Every
// response must be identical, and both directories the same at the end.
// Passwords the server would generate (a change without a new password) are
// left out: each server makes its own.
func TestRandomExtendedOperationsAsOnSlapd(t *testing.T) {
	direct := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 4})
	behind := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 4})
	_, addr := startProxy(t, behind, "")
	seed, count := diffSeedAndCount(20261209, 300)
	g := newExtendedGen(rand.New(rand.NewPCG(seed, seed>>2)))
	pairs := clientPairs(t, direct.Replicas[0].Addr, addr, slapdWrites.identities)
	tally := newDiffTally(t, "slapd", seed)
	changed := 0
	for i := range count {
		id := int64(i + 2)
		who := g.r.IntN(len(pairs))
		req, what := g.next(id, who)
		what = fmt.Sprintf("as %q, %s", g.bound[who], what)
		want, got, _, code := tally.exchange(i, what, id, pairs[who], req, req)
		if code >= 0 && g.answered(who, code) {
			changed++
		}
		if !sameFrames(want, got) {
			tally.differs(i, what, want, got)
		}
	}
	tally.check(count)
	codes := tally.codes
	if changed < count/20 {
		t.Fatalf("only %d passwords changed in %d requests (results by code %v)", changed, count, codes)
	}
	t.Logf("%d generated extended operations and binds (seed %d), %d passwords changed, results by code %v: every response identical, byte for byte",
		count, seed, changed, codes)
	// slapd hashes the passwords it is given by the extended operation
	// with a salt of its own.
	salted := slapdWrites
	salted.saltedPasswords = true
	sameDirectories(t, salted, direct.Replicas[0].Addr, behind.Replicas[0].Addr)
}

// extendedGen generates extended operations and binds, and follows what
// they did: who each connection is bound as, each entry's password.
type extendedGen struct {
	r        *rand.Rand
	bound    []string          // per connection, the DN it is bound as ("": anonymous)
	password map[string]string // the password of each DN that has one
	pending  func(code int) bool
}

func newExtendedGen(r *rand.Rand) *extendedGen {
	g := &extendedGen{r: r, password: map[string]string{}}
	for _, id := range slapdWrites.identities {
		g.bound = append(g.bound, id[0])
		if id[0] != "" && id[0] != slapdtest.AdminDN {
			g.password[id[0]] = id[1]
		}
	}
	return g
}

// answered records the result of the last request of connection who and
// reports whether it changed a password.
func (g *extendedGen) answered(who, code int) bool {
	if g.pending == nil {
		return false
	}
	changed := g.pending(code)
	g.pending = nil
	return changed
}

// extendedPasswords are the passwords the generated changes and binds use.
var extendedPasswords = []string{"new-1", "new-2", slapdtest.UserPassword(1), slapdtest.UserPassword(2), slapdtest.WriterPassword, "wrong"}

// next builds an extended operation, or a bind, with message ID id for
// connection who, and describes it.
func (g *extendedGen) next(id int64, who int) ([]byte, string) {
	r := g.r
	user := pick(r, []string{slapdtest.UserDN(1), slapdtest.UserDN(2), slapdtest.WriterDN, "uid=nobody," + slapdtest.PeopleDN})
	switch n := r.IntN(20); {
	case n < 9:
		return g.passwordModify(id, who)
	case n < 13:
		password := g.password[user]
		if r.IntN(4) == 0 {
			password = pick(r, extendedPasswords)
		}
		g.pending = func(code int) bool {
			g.bound[who] = ""
			if code == ldapwire.Success {
				g.bound[who] = user
			}
			return false
		}
		return message(id, bindOp(user, password)).Bytes(), fmt.Sprintf("bind as %s with %q", user, password)
	case n < 15:
		return message(id, extendedOp(ldapwire.OIDWhoAmI)).Bytes(), "who am I"
	case n < 16:
		op := extendedOp(ldapwire.OIDCancel)
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, string(sequenceOf(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 999, ""))), ""))
		return message(id, op).Bytes(), "cancel of no operation"
	case n < 17:
		op := extendedOp("1.3.6.1.4.1.1466.101.119.1")
		value := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		value.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, user, ""))
		value.AppendChild(ber.NewInteger(ber.ClassContext, ber.TypePrimitive, 1, 60, ""))
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, string(value.Bytes()), ""))
		return message(id, op).Bytes(), "refresh of " + user
	default:
		op := extendedOp(pick(r, []string{"1.3.6.1.4.1.99999.9", "1.2.3"}))
		if r.IntN(2) == 0 {
			op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, "value", ""))
		}
		return message(id, op).Bytes(), "an extended operation nobody knows"
	}
}

// passwordModify builds a password change (RFC 3062) with a new password,
// of one's own password or another's, with the old one right, wrong or
// missing.
func (g *extendedGen) passwordModify(id int64, who int) ([]byte, string) {
	r := g.r
	value := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	what := "password change"
	target := g.bound[who]
	if r.IntN(3) == 0 {
		target = pick(r, []string{slapdtest.UserDN(1), slapdtest.UserDN(2), slapdtest.WriterDN, "uid=nobody," + slapdtest.PeopleDN, "u:user.1", "not a DN"})
		value.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, target, ""))
		what += " of " + target
	}
	if r.IntN(3) != 0 {
		old := g.password[target]
		if r.IntN(3) == 0 {
			old = pick(r, extendedPasswords)
		}
		value.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, old, ""))
		what += fmt.Sprintf(", old %q", old)
	}
	next := pick(r, extendedPasswords[:2])
	value.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, next, ""))
	op := extendedOp(ldapwire.OIDPasswordModify)
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, string(value.Bytes()), ""))
	g.pending = func(code int) bool {
		if code != ldapwire.Success {
			return false
		}
		g.password[target] = next
		return true
	}
	return message(id, op).Bytes(), fmt.Sprintf("%s, new %q", what, next)
}

// sequenceOf is the encoding of a SEQUENCE of children.
func sequenceOf(children ...*ber.Packet) []byte {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, c := range children {
		seq.AppendChild(c)
	}
	return seq.Bytes()
}
