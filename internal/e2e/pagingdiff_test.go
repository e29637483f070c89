package e2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestRandomPagingAsOnSlapd pages through searches the way clients do, and
// some ways they should not, on four connections at once, straight to
// slapd and through ldapmux, and compares every response byte for byte,
// cookies included: new paged searches while another is open, next pages,
// a page size that changes, a cursor ended with size 0, a search that
// changed under its cookie, plain searches and binds in between. A paged search is state that slapd keeps per connection:
// through ldapmux each client must find its own, exactly as on a
// connection of its own. Documented differences are left out
// (docs/configuration.md): a bind ends the client's paged searches;
// ldapmux's own answer to a cookie of a search it let go may have another
// code than slapd's; and sorted paged searches, which slapd's sssvlv
// numbers and counts per connection, where ldapmux's lease, which ends
// when no search is open on it, starts afresh.
func TestRandomPagingAsOnSlapd(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 30})
	_, addr := startProxy(t, cluster, "")
	identities := [][2]string{{"", ""}, {slapdtest.UserDN(1), slapdtest.UserPassword(1)},
		{slapdtest.WriterDN, slapdtest.WriterPassword}, {slapdtest.AdminDN, slapdtest.AdminPassword}}
	atOnce(t, 4, "connection", func(t *testing.T, client uint64) {
		comparePaging(t, cluster.Replicas[0].Addr, addr, slapdPaging, identities[client], 300, client)
	})
}

// pagingDirectory is what generated paging requests address in one
// directory.
type pagingDirectory struct {
	server string
	// bases and filters of paged searches; plain is a search without
	// paging, with its attribute.
	bases, filters []string
	plainBase      string
	plainFilter    string
	plainAttr      string
	// bindKeepsCursors: a client's bind again as itself leaves its paged
	// searches open through ldapmux (client-bind mode: it binds on the
	// connection that holds them), as straight. Anonymous binds are not
	// sent then (they end them through ldapmux).
	bindKeepsCursors bool
}

var slapdPaging = pagingDirectory{
	server:    "slapd",
	bases:     []string{slapdtest.PeopleDN, slapdtest.BaseDN},
	filters:   []string{"(objectClass=*)", "(uid=user.1*)", "(objectClass=person)", "(cn=*)", "(uid=nobody)"},
	plainBase: slapdtest.PeopleDN, plainFilter: "(uid=user.2*)", plainAttr: "uid",
}

// pagedSpec is what a paged search asks for; a cursor must be continued
// with the same.
type pagedSpec struct {
	base, filter string
	scope        int
}

// pageCursor is a paged search opened on both connections, with the cookie
// each gave last.
type pageCursor struct {
	spec            pagedSpec
	direct, proxied []byte
}

// comparePaging sends count generated paging requests on one connection
// to direct and one to proxied, bound as id, and fails on any response
// that differs by a byte.
func comparePaging(t *testing.T, direct, proxied string, dir pagingDirectory, id [2]string, count int, client uint64) {
	seed, count := diffSeedAndCount(20261208, count)
	r := rand.New(rand.NewPCG(seed, seed>>7+client))
	pair := clientPairs(t, direct, proxied, [][2]string{id})[0]
	var cursors []*pageCursor
	tally := newDiffTally(t, dir.server, seed)
	var pages, ended int
	for i := range count {
		msgID := int64(i + 2)
		req, cur, what := nextPagingRequest(r, msgID, dir, id, cursors)
		what = fmt.Sprintf("as %q, %s", id[0], what)
		want, got, _, _ := tally.exchange(i, what, msgID, pair, req.direct, req.proxied)
		if !sameFrames(want, got) {
			tally.differs(i, what, want, got)
			continue
		}
		if isBind(req.direct) && !dir.bindKeepsCursors {
			// A bind ends the client's paged searches through ldapmux
			// (docs/configuration.md); slapd would go on with them.
			cursors = nil
		}
		if cur == nil {
			continue
		}
		cur.direct, cur.proxied = pagedCookie(t, want[len(want)-1]), pagedCookie(t, got[len(got)-1])

		switch {
		case len(cur.direct) > 0:
			pages++
			// A paged search supersedes the connection's others. Their
			// cookies are refused through ldapmux as straight, but by
			// ldapmux with unwillingToPerform (53) once it has let their
			// connection go, where slapd answers 53 or protocolError (2)
			// by its connection's counters: they are not sent again.
			cursors = []*pageCursor{cur}
		default:
			// Ended: its last page, or size 0. (A size 0 without a cookie
			// gets a cookie of no search from slapd, which ldapmux does
			// not keep: it is not sent again.)
			cursors = slices.DeleteFunc(cursors, func(c *pageCursor) bool { return c == cur })
			if len(want) > 1 {
				ended++
			}
		}
	}
	tally.check(count)
	codes := tally.codes
	if pages < count/10 || ended == 0 {
		t.Fatalf("only %d pages with a cookie and %d searches paged to their end in %d requests (results by code %v)", pages, ended, count, codes)
	}
	t.Logf("%d generated paging requests as %q (seed %d): %d pages with a cookie, %d searches paged to their end, results by code %v: every response identical, byte for byte",
		count, id[0], seed, pages, ended, codes)
}

// sidedRequest is one request as sent straight and through ldapmux: the
// same but for the cookie each side was given.
type sidedRequest struct{ direct, proxied []byte }

// nextPagingRequest builds the next request and returns the cursor a paged
// search continues or opens (nil for anything else).
func nextPagingRequest(r *rand.Rand, msgID int64, dir pagingDirectory, id [2]string, cursors []*pageCursor) (sidedRequest, *pageCursor, string) {
	same := func(b []byte) sidedRequest { return sidedRequest{b, b} }
	switch n := r.IntN(20); {
	case n < 7 || len(cursors) == 0:
		spec := dir.randomSpec(r)
		size := int64(1 + r.IntN(5))
		return same(pagedRequest(msgID, spec, size, nil)), &pageCursor{spec: spec}, fmt.Sprintf("new paged search %+v, size %d", spec, size)
	case n < 16:
		cur := cursors[len(cursors)-1]
		spec, size := cur.spec, int64(1+r.IntN(5))
		what := fmt.Sprintf("next page of %+v, size %d", spec, size)
		switch r.IntN(12) {
		case 0:
			size, what = 0, fmt.Sprintf("end of %+v (size 0)", spec)
		case 1:
			spec = dir.randomSpec(r)
			what = fmt.Sprintf("a cookie of %+v with the search %+v, size %d", cur.spec, spec, size)
		}
		return sidedRequest{pagedRequest(msgID, spec, size, cur.direct), pagedRequest(msgID, spec, size, cur.proxied)}, cur, what
	case n < 18:
		return same(message(msgID, searchOp(dir.plainBase, ldap.ScopeSingleLevel, dir.plainFilter, dir.plainAttr)).Bytes()), nil, "a plain search"
	default:
		if id[0] == "" || r.IntN(3) == 0 && !dir.bindKeepsCursors {
			return same(message(msgID, bindOp("", "")).Bytes()), nil, "an anonymous bind"
		}
		return same(message(msgID, bindOp(id[0], id[1])).Bytes()), nil, "a bind as " + id[0] + " again"
	}
}

func (dir pagingDirectory) randomSpec(r *rand.Rand) pagedSpec {
	return pagedSpec{
		base:   pick(r, dir.bases),
		filter: pick(r, dir.filters),
		scope:  pick(r, []int{ldap.ScopeSingleLevel, ldap.ScopeWholeSubtree}),
	}
}

// pagedRequest is a search of spec with the paged results control (RFC
// 2696) of size and cookie.
func pagedRequest(msgID int64, spec pagedSpec, size int64, cookie []byte) []byte {
	v := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	v.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, size, ""))
	v.AppendChild(octets(string(cookie)))
	controls := []ldap.Control{&ldap.ControlString{ControlType: ldap.ControlTypePaging, Criticality: true, ControlValue: string(v.Bytes())}}
	return message(msgID, searchOp(spec.base, spec.scope, spec.filter, "uid", "cn"), controls...).Bytes()
}

// pagedCookie is the cookie of the paged results control of a search's
// final response, nil when it has none.
func pagedCookie(t *testing.T, frame []byte) []byte {
	msg := mustParse(t, frame)
	c, ok := ldapwire.FindControl(msg.Controls, ldap.ControlTypePaging)
	if !ok || len(c.Value) == 0 {
		return nil
	}
	p, err := ber.DecodePacketErr(c.Value)
	if err != nil || len(p.Children) < 2 {
		t.Fatalf("malformed paged results value %x", c.Value)
	}
	return p.Children[1].Data.Bytes()
}

// isBind reports whether req is a bind request.
func isBind(req []byte) bool {
	msg, err := ldapwire.Parse(req)
	return err == nil && msg.OpTag == ldapwire.OpBindRequest
}
