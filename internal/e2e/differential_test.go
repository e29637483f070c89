package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/dirtest"
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
func TestRandomSearchesAsOnSlapd(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 12})
	_, addr := startProxy(t, cluster, "")
	compareGenerated(t, cluster.Replicas[0].Addr, addr, slapdDirectory, 400, 0)
}

// TestRandomSearchesAtOnceAsOnSlapd has 8 clients send generated requests
// at once through one ldapmux, each with its own requests and identities,
// their operations sharing its server connections: every response is still
// byte for byte what the same client gets straight from slapd.
func TestRandomSearchesAtOnceAsOnSlapd(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 12})
	_, addr := startProxy(t, cluster, "")
	atOnce(t, 8, "client", func(t *testing.T, client uint64) {
		compareGenerated(t, cluster.Replicas[0].Addr, addr, slapdDirectory, 150, client+1)
	})
}

// TestRandomSearchesAsOn389 does the same with 389 Directory Server, served
// with proxied authorization: its access control decides with the client's
// identity what each entry shows.
func TestRandomSearchesAsOn389(t *testing.T) {
	cluster, _, addr := start389Proxied(t, 1, false)
	compareGenerated(t, strings.TrimPrefix(cluster.Instances[0].URL, "ldap://"), addr, ds389Directory, 400, 0)
}

// diffDirectory is what generated requests address in one directory.
type diffDirectory struct {
	name       string
	bases      []string // search bases, some missing or malformed
	compareDNs []string
	schemaDN   string      // the subschema subentry
	identities [][2]string // DN and password; "" is anonymous
	users      int         // sample users uid=user.1 .. user.N
	// noOrderingOn is an attribute whose ordering filters (>=, <=)
	// crash the server: they are never generated.
	noOrderingOn string
	// What differs from one directory to another; nil or empty: the
	// defaults (filterAttrs, filterValues, searchAttrs, matchingRules,
	// uid=user.N).
	filterAttrs, filterValues, searchAttrs []string
	matchingRules                          []string
	sampleUser                             func(r *rand.Rand) (attr, value string)
	// moreControls adds controls of the directory's own.
	moreControls func(r *rand.Rand, add func(name string, c ldap.Control))
}

func (d diffDirectory) filterAttr(r *rand.Rand) string {
	return pick(r, orDefault(d.filterAttrs, filterAttrs))
}

func (d diffDirectory) filterValue(r *rand.Rand) string {
	return pick(r, orDefault(d.filterValues, filterValues))
}

// user is an assertion that matches one of the directory's sample users.
func (d diffDirectory) user(r *rand.Rand) (attr, value string) {
	if d.sampleUser != nil {
		return d.sampleUser(r)
	}
	return "uid", fmt.Sprintf("user.%d", r.IntN(d.users)+1)
}

var slapdDirectory = diffDirectory{
	name: "slapd",
	bases: []string{slapdtest.BaseDN, slapdtest.PeopleDN, slapdtest.UserDN(1), slapdtest.UserDN(7), slapdtest.ScratchDN,
		slapdtest.RestrictedDN, "ou=nowhere," + slapdtest.BaseDN, "cn=Subschema", "not a DN", "UID=User.2, OU=People, DC=Example, DC=Com"},
	schemaDN: "cn=Subschema",
	compareDNs: []string{slapdtest.UserDN(1), slapdtest.UserDN(4), slapdtest.PeopleDN, slapdtest.RestrictedDN,
		"uid=nobody," + slapdtest.PeopleDN, "not a DN"},
	identities: [][2]string{{"", ""}, {slapdtest.UserDN(1), slapdtest.UserPassword(1)}, {slapdtest.WriterDN, slapdtest.WriterPassword},
		{slapdtest.AdminDN, slapdtest.AdminPassword}},
	users: 12,
}

var ds389Directory = diffDirectory{
	name: "389 Directory Server",
	bases: []string{dirtest.BaseDN, dirtest.PeopleDN, dirtest.UserDN(1), dirtest.UserDN(7), dirtest.GroupsDN, dirtest.ServicesDN,
		"ou=nowhere," + dirtest.BaseDN, "cn=schema", "not a DN", "UID=User.2, OU=People, DC=Example, DC=Test"},
	schemaDN: "cn=schema",
	compareDNs: []string{dirtest.UserDN(1), dirtest.UserDN(4), dirtest.PeopleDN, dirtest.StaffGroupDN,
		"uid=nobody," + dirtest.PeopleDN, "not a DN"},
	identities: [][2]string{{"", ""}, {dirtest.UserDN(1), dirtest.UserPassword(1)}, {dirtest.UserDN(2), dirtest.UserPassword(2)},
		{dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword}},
	users: dirtest.Users,
	// 389-ds-base 2.3.1 (Debian 12) crashes on a one-level or subtree
	// search with (objectClass>=a) or (objectClass<=z), straight or
	// through ldapmux (README, "Limitations").
	noOrderingOn: "objectClass",
}

// compareGenerated sends count generated requests to the server at direct
// and through ldapmux at proxied, over one connection per identity each,
// and fails on any response that differs by a byte. Clients sending at
// once tell their requests apart with client.
// LDAPMUX_DIFF_SEED and LDAPMUX_DIFF_COUNT explore other requests.
func compareGenerated(t *testing.T, direct, proxied string, dir diffDirectory, count int, client uint64) {
	seed, count := diffSeedAndCount(20261205, count)
	pairs := clientPairs(t, direct, proxied, dir.identities)
	r := rand.New(rand.NewPCG(seed, seed>>1+client))
	tally := newDiffTally(t, dir.name, seed)
	entries := 0
	fixed := schemaReads(dir.schemaDN, len(pairs))
	for i := range count + len(fixed) {
		id := int64(i + 2)
		var req []byte
		var what string
		var who int
		if i < len(fixed) {
			req, what, who = fixed[i](id)
		} else {
			req, what = randomSearch(r, id, dir)
			if r.IntN(4) == 0 {
				req, what = randomCompare(r, id, dir)
			}
			who = r.IntN(len(pairs))
		}
		what = fmt.Sprintf("as %q, %s", dir.identities[who][0], what)
		want, got, _, _ := tally.exchange(i, what, id, pairs[who], req, req)
		entries += len(want) - 1
		if !sameFrames(want, got) {
			tally.differs(i, what, want, got)
		}
	}
	tally.check(count)
	codes := tally.codes
	t.Logf("%d generated searches and compares on %s (seed %d), %d entries, results by code %v: every response identical, byte for byte",
		count+len(fixed), dir.name, seed, entries, codes)
}

// atOnce runs run for clients 0 to n-1 at once, each in a parallel subtest
// named name and its number, and returns once every one has ended.
func atOnce(t *testing.T, n int, name string, run func(t *testing.T, client uint64)) {
	t.Run(name+"s", func(t *testing.T) {
		for client := range uint64(n) {
			t.Run(fmt.Sprintf("%s %d", name, client), func(t *testing.T) {
				t.Parallel()
				run(t, client)
			})
		}
	})
}

// diffSeedAndCount returns the seed and the number of generated requests:
// seed and count unless LDAPMUX_DIFF_SEED and LDAPMUX_DIFF_COUNT say
// otherwise.
func diffSeedAndCount(seed uint64, count int) (uint64, int) {
	if s, err := strconv.ParseUint(os.Getenv("LDAPMUX_DIFF_SEED"), 10, 64); err == nil {
		seed = s
	}
	if n, err := strconv.Atoi(os.Getenv("LDAPMUX_DIFF_COUNT")); err == nil && n > 0 {
		count = n
	}
	return seed, count
}

// clientPair is one client straight to a server and the same through
// ldapmux, bound as the same identity.
type clientPair struct{ direct, proxied *rawClient }

// clientPairs opens a pair per identity (DN and password; "" is
// anonymous), straight to direct and through ldapmux at proxied.
func clientPairs(t *testing.T, direct, proxied string, identities [][2]string) []clientPair {
	var pairs []clientPair
	for _, id := range identities {
		p := clientPair{rawDial(t, direct), rawDial(t, proxied)}
		if id[0] != "" {
			p.direct.bind(t, id[0], id[1])
			p.proxied.bind(t, id[0], id[1])
		}
		pairs = append(pairs, p)
	}
	return pairs
}

// diffTally sends generated requests straight to a server and through
// ldapmux, and keeps count of the answers: their result codes, and those
// that differed.
type diffTally struct {
	t          *testing.T
	server     string // the server's name in messages
	seed       uint64
	codes      map[int]int // final result codes of the answers straight
	mismatches int
}

func newDiffTally(t *testing.T, server string, seed uint64) *diffTally {
	return &diffTally{t: t, server: server, seed: seed, codes: map[int]int{}}
}

// exchange sends request i, message id, straight on pair.direct and
// through ldapmux on pair.proxied: straight and proxied are the same but
// for what each side was given (a paging cookie). It returns both answers,
// the final response straight and its result code (-1 when it has none),
// which it counts. A request that gets no answer fails the test.
func (d *diffTally) exchange(i int, what string, id int64, pair clientPair, straight, proxied []byte) (want, got [][]byte, final ldapwire.Message, code int) {
	d.t.Helper()
	want, err := pair.direct.tryExchange(straight, id)
	if err != nil {
		d.t.Fatalf("request %d straight to %s, %s: %v", i, d.server, what, err)
	}
	got, err = pair.proxied.tryExchange(proxied, id)
	if err != nil {
		d.t.Fatalf("request %d through ldapmux, %s: %v", i, what, err)
	}
	final, code = mustParse(d.t, want[len(want)-1]), -1
	if res, err := ldapwire.ParseResult(final.Body); err == nil {
		code = res.Code
		d.codes[code]++
	}
	return want, got, final, code
}

// differs counts answers to request i that differ, and reports the first
// five; with DIFFDUMP set, it logs each differing response in full.
func (d *diffTally) differs(i int, what string, want, got [][]byte) {
	d.t.Helper()
	d.mismatches++
	if os.Getenv("DIFFDUMP") != "" {
		for k := range max(len(want), len(got)) {
			if k < len(want) && k < len(got) && bytes.Equal(want[k], got[k]) {
				continue
			}
			if k < len(want) {
				d.t.Logf("straight %d: %q", k, want[k])
			}
			if k < len(got) {
				d.t.Logf("through ldapmux %d: %q", k, got[k])
			}
		}
	}
	if d.mismatches <= 5 {
		d.t.Errorf("request %d (seed %d), %s:\n  straight to %s: %s\n  through ldapmux:   %s", i, d.seed, what, d.server, describeFrames(want), describeFrames(got))
	}
}

// check fails the test when an answer to one of count requests differed.
func (d *diffTally) check(count int) {
	d.t.Helper()
	if d.mismatches > 0 {
		d.t.Fatalf("%d of %d requests answered differently through ldapmux", d.mismatches, count)
	}
}

// schemaReads are the reads of the schema that clients make (LDAP
// browsers page through everything), as every identity: a base and a
// subtree search, paged, sorted and paged, and plain.
func schemaReads(dn string, identities int) []func(id int64) ([]byte, string, int) {
	var reads []func(id int64) ([]byte, string, int)
	for who := range identities {
		for _, scope := range []int{ldap.ScopeBaseObject, ldap.ScopeWholeSubtree} {
			for _, controls := range [][]ldap.Control{nil,
				{&ldap.ControlString{ControlType: ldap.ControlTypePaging, ControlValue: string(pagedValue(100))}},
				{sortControl("cn", false, false), &ldap.ControlString{ControlType: ldap.ControlTypePaging, ControlValue: string(pagedValue(100))}},
			} {
				reads = append(reads, func(id int64) ([]byte, string, int) {
					op := searchOp(dn, scope, "(objectClass=*)", "objectClasses", "cn")
					return message(id, op, controls...).Bytes(), fmt.Sprintf("schema read, scope %d, %d controls", scope, len(controls)), who
				})
			}
		}
	}
	return reads
}

// bind binds c with a simple bind as message 1.
func (c *rawClient) bind(t *testing.T, dn, password string) {
	t.Helper()
	frames := c.exchange(t, message(1, bindOp(dn, password)).Bytes(), 1)
	if res, err := ldapwire.ParseResult(mustParse(t, frames[0]).Body); err != nil || res.Code != 0 {
		t.Fatalf("bind as %s: %v %+v", dn, err, res)
	}
}

// exchange sends req and returns the frames answering message id, up to its
// final response.
func (c *rawClient) exchange(t *testing.T, req []byte, id int64) [][]byte {
	t.Helper()
	frames, err := c.tryExchange(req, id)
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

// tryExchange is exchange, returning what went wrong.
func (c *rawClient) tryExchange(req []byte, id int64) ([][]byte, error) {
	c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.nc.Write(req); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	var frames [][]byte
	for {
		frame, err := c.r.Next()
		if err != nil {
			return frames, fmt.Errorf("reading the answer to message %d (%d responses so far): %w", id, len(frames), err)
		}
		msg, err := ldapwire.Parse(frame)
		if err != nil {
			return frames, fmt.Errorf("malformed response %x: %w", frame, err)
		}
		if int64(msg.ID) != id {
			return frames, fmt.Errorf("message %d while waiting for %d", msg.ID, id)
		}
		frames = append(frames, bytes.Clone(frame))
		if ldapwire.IsFinal(msg.OpTag) {
			return frames, nil
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
func randomSearch(r *rand.Rand, id int64, dir diffDirectory) ([]byte, string) {
	base, scope, deref := pick(r, dir.bases), r.IntN(4), r.IntN(4)
	size, typesOnly := pick(r, []int64{0, 0, 1, 3}), r.IntN(5) == 0
	filter := randomFilter(r, dir, 0)
	if r.IntN(3) == 0 { // one that matches entries, now and then
		attr, value := dir.user(r)
		filter = pick(r, []*ber.Packet{
			ber.NewString(ber.ClassContext, ber.TypePrimitive, 7, "objectClass", ""),
			assertionFilter(3, "objectClass", "inetOrgPerson"),
			assertionFilter(3, attr, value),
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
		name := pick(r, orDefault(dir.searchAttrs, searchAttrs))
		names = append(names, name)
		attrs.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, ""))
	}
	op.AppendChild(attrs)
	controls, ctrlNames := randomControls(r, dir)
	what := fmt.Sprintf("base %q scope %d deref %d size %d typesOnly %v filter %x attrs %q controls %s",
		base, scope, deref, size, typesOnly, filter.Bytes(), names, ctrlNames)
	return message(id, op, controls...).Bytes(), what
}

// randomCompare builds a compare request with message id and describes it.
func randomCompare(r *rand.Rand, id int64, dir diffDirectory) ([]byte, string) {
	dn := pick(r, dir.compareDNs)
	attr, value := dir.filterAttr(r), dir.filterValue(r)
	switch {
	case r.IntN(2) != 0:
	case dir.sampleUser != nil:
		attr, value = dir.sampleUser(r)
	default:
		attr, value = "uid", fmt.Sprintf("user.%d", r.IntN(5)+1)
	}
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 14, nil, "CompareRequest")
	op.AppendChild(octets(dn))
	ava := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	ava.AppendChild(octets(attr))
	ava.AppendChild(octets(value))
	op.AppendChild(ava)
	controls, names := randomControls(r, dir)
	return message(id, op, controls...).Bytes(), fmt.Sprintf("compare %q %s=%q controls %s", dn, attr, value, names)
}

var searchAttrs = []string{"*", "+", "1.1", "uid", "cn", "mail", "objectClass", "entryUUID", "noSuchAttribute", "cn;lang-en", "userPassword", "CN"}

var matchingRules = []string{"2.5.13.2", "caseExactMatch", "1.2.3.4.5", "distinguishedNameMatch"}

var filterAttrs = []string{"uid", "cn", "objectClass", "mail", "sn", "description", "noSuchAttribute", "cn;lang-en", "userPassword",
	"entryUUID", "createTimestamp", "member", "telephoneNumber", "UID"}

var filterValues = []string{"user.1", "User.3", "user", "inetOrgPerson", "person", "top", "organizationalUnit", "", "*",
	"20200101000000Z", "People", "1", "\x00", "é"}

// randomFilter builds a filter of any kind, nested up to depth 3.
func randomFilter(r *rand.Rand, dir diffDirectory, depth int) *ber.Packet {
	kind := r.IntN(11)
	if depth >= 3 {
		kind = 3 + r.IntN(8)
	}
	switch kind {
	case 0, 1: // and, or: possibly empty (RFC 4526 absolute true and false)
		set := ber.Encode(ber.ClassContext, ber.TypeConstructed, ber.Tag(kind), nil, "")
		for range r.IntN(4) {
			set.AppendChild(randomFilter(r, dir, depth+1))
		}
		return set
	case 2:
		not := ber.Encode(ber.ClassContext, ber.TypeConstructed, 2, nil, "")
		not.AppendChild(randomFilter(r, dir, depth+1))
		return not
	case 3, 5, 6, 8: // equality, >=, <=, approx
		attr := dir.filterAttr(r)
		if (kind == 5 || kind == 6) && dir.noOrderingOn != "" && strings.EqualFold(attr, dir.noOrderingOn) {
			attr = "sn"
		}
		return assertionFilter(ber.Tag(kind), attr, dir.filterValue(r))
	case 4:
		sub := ber.Encode(ber.ClassContext, ber.TypeConstructed, 4, nil, "")
		sub.AppendChild(octets(dir.filterAttr(r)))
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
		return ber.NewString(ber.ClassContext, ber.TypePrimitive, 7, dir.filterAttr(r), "")
	default: // extensible match
		ext := ber.Encode(ber.ClassContext, ber.TypeConstructed, 9, nil, "")
		rule := r.IntN(3)
		if rule > 0 {
			ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, pick(r, orDefault(dir.matchingRules, matchingRules)), ""))
		}
		if rule < 2 || r.IntN(2) == 0 {
			ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, dir.filterAttr(r), ""))
		}
		ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 3, dir.filterValue(r), ""))
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
func randomControls(r *rand.Rand, dir diffDirectory) ([]ldap.Control, []string) {
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
		add("assertion", &ldap.ControlString{ControlType: "1.3.6.1.1.12", Criticality: true, ControlValue: string(randomFilter(r, dir, 2).Bytes())})
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
	if dir.moreControls != nil {
		dir.moreControls(r, add)
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

// orDefault is list, or def when list is empty.
func orDefault[T any](list, def []T) []T {
	if len(list) == 0 {
		return def
	}
	return list
}
