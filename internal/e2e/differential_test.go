package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestRandomSearchesAsOnSlapd sends the same few hundred generated search
// and compare requests, byte for byte, to slapd directly and through ldapmux, as
// anonymous clients, users and the writer, and compares every response
// byte for byte: filters of every kind (empty and/or, extensible matches,
// unknown attributes and matching rules, attribute options), every scope
// and alias mode, size limits, typesOnly, attribute lists, and the controls
// clients send (sorting, paging, ManageDsaIT, assertions, dontUseCopy,
// subentries, unknown critical and non-critical ones). The root DSE and
// cn=monitor, which ldapmux answers in part itself, are left out.
// LDAPMUX_DIFF_SEED and LDAPMUX_DIFF_COUNT explore other requests.
func TestRandomSearchesAsOnSlapd(t *testing.T) {
	seed, count := uint64(20261205), 400
	if s, err := strconv.ParseUint(os.Getenv("LDAPMUX_DIFF_SEED"), 10, 64); err == nil {
		seed = s
	}
	if n, err := strconv.Atoi(os.Getenv("LDAPMUX_DIFF_COUNT")); err == nil && n > 0 {
		count = n
	}
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 12})
	replica := cluster.Replicas[0]
	_, addr := startProxy(t, cluster, "")
	identities := []struct{ dn, password string }{
		{"", ""}, {slapdtest.UserDN(1), slapdtest.UserPassword(1)}, {slapdtest.WriterDN, slapdtest.WriterPassword},
	}
	type pair struct{ direct, proxied *frameClient }
	var pairs []pair
	for _, id := range identities {
		p := pair{dialFrames(t, replica.Addr), dialFrames(t, addr)}
		if id.dn != "" {
			p.direct.bind(t, id.dn, id.password)
			p.proxied.bind(t, id.dn, id.password)
		}
		pairs = append(pairs, p)
	}
	r := rand.New(rand.NewPCG(seed, seed>>1))
	var mismatches, entries int
	codes := map[int]int{}
	for i := range count {
		id := int64(i + 2)
		req, what := randomSearch(r, id)
		if r.IntN(4) == 0 {
			req, what = randomCompare(r, id)
		}
		p := pairs[r.IntN(len(pairs))]
		direct, proxied := p.direct.exchange(t, req, id), p.proxied.exchange(t, req, id)
		entries += len(direct) - 1
		if res, err := ldapwire.ParseResult(mustParse(t, direct[len(direct)-1]).Body); err == nil {
			codes[res.Code]++
		}
		if !sameFrames(direct, proxied) {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("request %d (seed %d), %s:\n  straight to slapd: %s\n  through ldapmux:   %s", i, seed, what, describeFrames(direct), describeFrames(proxied))
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d requests answered differently through ldapmux", mismatches, count)
	}
	t.Logf("%d generated searches and compares (seed %d), %d entries, results by code %v: every response identical, byte for byte", count, seed, entries, codes)
}

// frameClient is a raw LDAP client that reads whole response frames.
type frameClient struct {
	nc net.Conn
	r  *ldapwire.Reader
}

func dialFrames(t *testing.T, addr string) *frameClient {
	nc := dialTCP(t, addr)
	return &frameClient{nc: nc, r: ldapwire.NewReader(nc, 64<<20)}
}

func (c *frameClient) bind(t *testing.T, dn, password string) {
	t.Helper()
	frames := c.exchange(t, message(1, bindOp(dn, password)).Bytes(), 1)
	if res, err := ldapwire.ParseResult(mustParse(t, frames[0]).Body); err != nil || res.Code != 0 {
		t.Fatalf("bind as %s: %v %+v", dn, err, res)
	}
}

// exchange sends req and returns the frames answering message id, up to its
// final response.
func (c *frameClient) exchange(t *testing.T, req []byte, id int64) [][]byte {
	t.Helper()
	c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.nc.Write(req); err != nil {
		t.Fatalf("write: %v", err)
	}
	var frames [][]byte
	for {
		frame, err := c.r.Next()
		if err != nil {
			t.Fatalf("reading the answer to message %d: %v", id, err)
		}
		msg := mustParse(t, frame)
		if int64(msg.ID) != id {
			t.Fatalf("message %d while waiting for %d", msg.ID, id)
		}
		frames = append(frames, bytes.Clone(frame))
		if ldapwire.IsFinal(msg.OpTag) {
			return frames
		}
	}
}

func mustParse(t *testing.T, frame []byte) ldapwire.Message {
	t.Helper()
	msg, err := ldapwire.Parse(frame)
	if err != nil {
		t.Fatalf("malformed response %x: %v", frame, err)
	}
	return msg
}

func sameFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// describeFrames summarizes responses: entries by DN, the result.
func describeFrames(frames [][]byte) string {
	var parts []string
	for _, f := range frames {
		p, err := ber.DecodePacketErr(f)
		if err != nil || len(p.Children) < 2 {
			parts = append(parts, fmt.Sprintf("undecodable %x", f))
			continue
		}
		op := p.Children[1]
		switch {
		case op.Tag == tagSearchEntry && len(op.Children) > 0:
			parts = append(parts, fmt.Sprintf("entry %q (%d bytes)", op.Children[0].Data.String(), len(f)))
		case len(op.Children) >= 3:
			parts = append(parts, fmt.Sprintf("result %v %q (%d bytes, %x)", op.Children[0].Value, op.Children[2].Data.String(), len(f), f))
		default:
			parts = append(parts, fmt.Sprintf("tag %d (%d bytes)", op.Tag, len(f)))
		}
	}
	return strings.Join(parts, "; ")
}

// randomSearch builds a search request with message id and describes it.
func randomSearch(r *rand.Rand, id int64) ([]byte, string) {
	bases := []string{slapdtest.BaseDN, slapdtest.PeopleDN, slapdtest.UserDN(1), slapdtest.UserDN(7), slapdtest.ScratchDN,
		slapdtest.RestrictedDN, "ou=nowhere," + slapdtest.BaseDN, "cn=Subschema", "not a DN", "UID=User.2, OU=People, DC=Example, DC=Com"}
	base, scope, deref := pick(r, bases), r.IntN(4), r.IntN(4)
	size, typesOnly := pick(r, []int64{0, 0, 1, 3}), r.IntN(5) == 0
	filter := randomFilter(r, 0)
	if r.IntN(3) == 0 { // one that matches entries, now and then
		filter = pick(r, []*ber.Packet{
			ber.NewString(ber.ClassContext, ber.TypePrimitive, 7, "objectClass", ""),
			assertionFilter(3, "objectClass", "inetOrgPerson"),
			assertionFilter(3, "uid", fmt.Sprintf("user.%d", r.IntN(12)+1)),
		})
	}
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagSearchRequest, nil, "SearchRequest")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(scope), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(deref), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, size, ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, ""))
	op.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, typesOnly, ""))
	op.AppendChild(filter)
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	var names []string
	for range r.IntN(4) {
		name := pick(r, []string{"*", "+", "1.1", "uid", "cn", "mail", "objectClass", "entryUUID", "noSuchAttribute", "cn;lang-en", "userPassword", "CN"})
		names = append(names, name)
		attrs.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, ""))
	}
	op.AppendChild(attrs)
	controls, ctrlNames := randomControls(r)
	what := fmt.Sprintf("base %q scope %d deref %d size %d typesOnly %v filter %x attrs %q controls %s",
		base, scope, deref, size, typesOnly, filter.Bytes(), names, ctrlNames)
	return message(id, op, controls...).Bytes(), what
}

// randomCompare builds a compare request with message id and describes it.
func randomCompare(r *rand.Rand, id int64) ([]byte, string) {
	dn := pick(r, []string{slapdtest.UserDN(1), slapdtest.UserDN(4), slapdtest.PeopleDN, slapdtest.RestrictedDN,
		"uid=nobody," + slapdtest.PeopleDN, "not a DN"})
	attr, value := pick(r, filterAttrs), pick(r, filterValues)
	if r.IntN(2) == 0 {
		attr, value = "uid", fmt.Sprintf("user.%d", r.IntN(5)+1)
	}
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 14, nil, "CompareRequest")
	op.AppendChild(octets(dn))
	ava := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	ava.AppendChild(octets(attr))
	ava.AppendChild(octets(value))
	op.AppendChild(ava)
	controls, names := randomControls(r)
	return message(id, op, controls...).Bytes(), fmt.Sprintf("compare %q %s=%q controls %s", dn, attr, value, names)
}

var filterAttrs = []string{"uid", "cn", "objectClass", "mail", "sn", "description", "noSuchAttribute", "cn;lang-en", "userPassword",
	"entryUUID", "createTimestamp", "member", "telephoneNumber", "UID"}

var filterValues = []string{"user.1", "User.3", "user", "inetOrgPerson", "person", "top", "organizationalUnit", "", "*",
	"20200101000000Z", "People", "1", "\x00", "é"}

// randomFilter builds a filter of any kind, nested up to depth 3.
func randomFilter(r *rand.Rand, depth int) *ber.Packet {
	kind := r.IntN(11)
	if depth >= 3 {
		kind = 3 + r.IntN(8)
	}
	switch kind {
	case 0, 1: // and, or: possibly empty (RFC 4526 absolute true and false)
		set := ber.Encode(ber.ClassContext, ber.TypeConstructed, ber.Tag(kind), nil, "")
		for range r.IntN(4) {
			set.AppendChild(randomFilter(r, depth+1))
		}
		return set
	case 2:
		not := ber.Encode(ber.ClassContext, ber.TypeConstructed, 2, nil, "")
		not.AppendChild(randomFilter(r, depth+1))
		return not
	case 3, 5, 6, 8: // equality, >=, <=, approx
		return assertionFilter(ber.Tag(kind), pick(r, filterAttrs), pick(r, filterValues))
	case 4:
		sub := ber.Encode(ber.ClassContext, ber.TypeConstructed, 4, nil, "")
		sub.AppendChild(octets(pick(r, filterAttrs)))
		parts := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		if r.IntN(2) == 0 {
			parts.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, pick(r, []string{"user", "u", "Pe", "x"}), ""))
		}
		for range r.IntN(3) {
			parts.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, pick(r, []string{"ser", ".", "e", "1"}), ""))
		}
		if r.IntN(2) == 0 || len(parts.Children) == 0 {
			parts.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, pick(r, []string{"1", ".2", "ple", "z"}), ""))
		}
		sub.AppendChild(parts)
		return sub
	case 7:
		return ber.NewString(ber.ClassContext, ber.TypePrimitive, 7, pick(r, filterAttrs), "")
	default: // extensible match
		ext := ber.Encode(ber.ClassContext, ber.TypeConstructed, 9, nil, "")
		rule := r.IntN(3)
		if rule > 0 {
			ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, pick(r, []string{"2.5.13.2", "caseExactMatch", "1.2.3.4.5", "distinguishedNameMatch"}), ""))
		}
		if rule < 2 || r.IntN(2) == 0 {
			ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, pick(r, filterAttrs), ""))
		}
		ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 3, pick(r, filterValues), ""))
		if r.IntN(3) == 0 {
			ext.AppendChild(ber.NewBoolean(ber.ClassContext, ber.TypePrimitive, 4, true, ""))
		}
		return ext
	}
}

func assertionFilter(tag ber.Tag, attr, value string) *ber.Packet {
	f := ber.Encode(ber.ClassContext, ber.TypeConstructed, tag, nil, "")
	f.AppendChild(octets(attr))
	f.AppendChild(octets(value))
	return f
}

func octets(s string) *ber.Packet {
	return ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, s, "")
}

// randomControls picks the request controls of one search.
func randomControls(r *rand.Rand) ([]ldap.Control, []string) {
	var controls []ldap.Control
	var names []string
	add := func(name string, c ldap.Control) {
		controls = append(controls, c)
		names = append(names, name)
	}
	critical := func() bool { return r.IntN(2) == 0 }
	if r.IntN(5) == 0 {
		add("sort", sortControl(pick(r, []string{"cn", "uid", "noSuchAttribute"}), r.IntN(2) == 0, critical()))
	}
	if r.IntN(6) == 0 {
		add("paged", &ldap.ControlString{ControlType: ldap.ControlTypePaging, Criticality: critical(), ControlValue: string(pagedValue(200))})
	}
	if r.IntN(6) == 0 {
		add("manageDsaIT", ldap.NewControlManageDsaIT(critical()))
	}
	if r.IntN(6) == 0 {
		add("assertion", &ldap.ControlString{ControlType: "1.3.6.1.1.12", Criticality: true, ControlValue: string(randomFilter(r, 2).Bytes())})
	}
	if r.IntN(10) == 0 {
		add("dontUseCopy", &ldap.ControlString{ControlType: "1.3.6.1.1.22", Criticality: true})
	}
	if r.IntN(10) == 0 {
		add("subentries", &ldap.ControlString{ControlType: "1.3.6.1.4.1.4203.1.10.1", Criticality: critical(),
			ControlValue: string(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, r.IntN(2) == 0, "").Bytes())})
	}
	if r.IntN(8) == 0 {
		add("unknown", &ldap.ControlString{ControlType: "1.3.6.1.4.1.99999.1", Criticality: critical()})
	}
	return controls, names
}

// sortControl is a server-side sort request (RFC 2891) on one attribute.
func sortControl(attr string, reverse, critical bool) ldap.Control {
	keys := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	key := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	key.AppendChild(octets(attr))
	if reverse {
		key.AppendChild(ber.NewBoolean(ber.ClassContext, ber.TypePrimitive, 1, true, ""))
	}
	keys.AppendChild(key)
	return &ldap.ControlString{ControlType: ldap.ControlTypeServerSideSorting, Criticality: critical, ControlValue: string(keys.Bytes())}
}

// pagedValue is a first-page paged results request value (RFC 2696).
func pagedValue(size int64) []byte {
	v := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	v.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, size, ""))
	v.AppendChild(octets(""))
	return v.Bytes()
}

func pick[T any](r *rand.Rand, from []T) T { return from[r.IntN(len(from))] }
