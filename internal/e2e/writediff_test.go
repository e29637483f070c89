package e2e

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/dirtest"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestRandomWritesAsOnSlapd sends the same generated writes, byte for byte,
// to one slapd directly and through ldapmux to another started from the
// same data, as anonymous, two users, the writer and the rootdn: adds,
// modifies of every kind, renames and deletes, of entries that exist or
// not, that the identity may write or not, with the controls clients send
// with writes (assertions, pre- and post-read, permissive modify, relax,
// ManageDsaIT, no-op, unknown critical and non-critical ones), with reads
// of what they wrote in between. Every response must be identical, the
// entries the read controls return included, and at the end both
// directories must hold the same entries, creatorsName and modifiersName
// included: each write was made as the client, never as the service
// account. ldapmux refuses the Proxied Authorization controls a client
// sends (docs/security.md), so they are not generated.
func TestRandomWritesAsOnSlapd(t *testing.T) {
	direct := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 12})
	behind := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 12})
	_, addr := startProxy(t, behind, "")
	compareGeneratedWrites(t, direct.Replicas[0].Addr, addr, slapdWrites, slapdWrites.gen(slapdtest.ScratchDN, true), 400, 0)
	sameDirectories(t, slapdWrites, direct.Replicas[0].Addr, behind.Replicas[0].Addr)
}

// TestRandomWritesAtOnceAsOnSlapd has 8 clients send generated writes at
// once through one ldapmux, each in a subtree of its own, their operations
// sharing its server connections: every response is still byte for byte
// what the same client gets straight from slapd, and both directories end
// the same.
func TestRandomWritesAtOnceAsOnSlapd(t *testing.T) {
	direct := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 12})
	behind := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 12})
	_, addr := startProxy(t, behind, "")
	atOnce(t, 8, "client", func(t *testing.T, client uint64) {
		root := fmt.Sprintf("cn=c%d,%s", client, slapdtest.ScratchDN)
		compareGeneratedWrites(t, direct.Replicas[0].Addr, addr, slapdWrites, slapdWrites.gen(root, false), 200, client+1)
	})
	sameDirectories(t, slapdWrites, direct.Replicas[0].Addr, behind.Replicas[0].Addr)
}

// writeDirectory is what generated writes address in one directory.
type writeDirectory struct {
	name string
	// identities send the writes: DN and password, "" for anonymous;
	// identities[writer] may write below scratch, identities[admin] is
	// the directory's administrator.
	identities    [][2]string
	writer, admin int
	base, scratch string
	// elsewhere are entries outside scratch that writes address (users'
	// own entries, containers, entries the writer may not change) and
	// superiors outside scratch that renames name.
	elsewhere, superiors []string
	// saltedPasswords: the server stores passwords hashed with a salt of
	// its own, so that they differ between two servers.
	saltedPasswords bool
	// noReferrals: no referral objects are added. 389 Directory Server
	// 2.3.1 (Debian 12), given generated writes with referral objects
	// among them, once left an add sent straight to it unanswered.
	noReferrals bool
}

var slapdWrites = writeDirectory{
	name: "slapd",
	identities: [][2]string{
		{"", ""},
		{slapdtest.UserDN(1), slapdtest.UserPassword(1)},
		{slapdtest.UserDN(2), slapdtest.UserPassword(2)},
		{slapdtest.WriterDN, slapdtest.WriterPassword},
		{slapdtest.AdminDN, slapdtest.AdminPassword},
	},
	writer: 3, admin: 4,
	base: slapdtest.BaseDN, scratch: slapdtest.ScratchDN,
	elsewhere: []string{slapdtest.UserDN(1), slapdtest.UserDN(2), slapdtest.UserDN(3), slapdtest.PeopleDN, slapdtest.SecretDN},
	superiors: []string{slapdtest.PeopleDN, "ou=nowhere," + slapdtest.BaseDN},
}

// sameDirectories fails unless the directories at a and b hold the same
// data.
func sameDirectories(t *testing.T, dir writeDirectory, a, b string) {
	t.Helper()
	da, db := dir.writtenTree(t, a), dir.writtenTree(t, b)
	if da != db {
		t.Fatalf("the directories differ after the writes:\n--- written straight:\n%s\n--- written through ldapmux:\n%s", da, db)
	}
	t.Logf("both directories hold the same %d entries, creatorsName and modifiersName included", strings.Count(da, "\n")+1)
}

// writtenTree renders every entry of the directory at addr, read as its
// administrator straight from the server, with the attributes that must be
// the same in two directories given the same writes (not the timestamps,
// entryUUID and entryCSN, which are the server's own).
func (dir writeDirectory) writtenTree(t *testing.T, addr string) string {
	t.Helper()
	admin := dir.identities[dir.admin]
	tree, err := readTreeBelow(bindAs(t, addr, admin[0], admin[1]), dir.base,
		"*", "creatorsName", "modifiersName", "hasSubordinates", "structuralObjectClass")
	if err != nil {
		t.Fatal(err)
	}
	if dir.saltedPasswords {
		tree = regexp.MustCompile(`(?i) userPassword=\S*`).ReplaceAllString(tree, "")
	}
	return tree
}

// compareGeneratedWrites sends count writes generated by g (and reads of
// what they wrote), after g's root entry, to the server at direct and
// through ldapmux at proxied, as dir's identities, and fails on any
// response that differs by a byte. Clients sending at once tell their
// requests apart with client. LDAPMUX_DIFF_SEED and LDAPMUX_DIFF_COUNT
// explore other requests.
func compareGeneratedWrites(t *testing.T, direct, proxied string, dir writeDirectory, g *writeGen, count int, client uint64) {
	seed, count := diffSeedAndCount(20261206, count)
	pairs := clientPairs(t, direct, proxied, dir.identities)
	g.r = rand.New(rand.NewPCG(seed, seed>>3+client))
	tally := newDiffTally(t, dir.name, seed)
	readBack := 0
	for i := range count {
		id := int64(i + 2)
		who := g.r.IntN(len(pairs))
		if g.r.IntN(10) < 6 || i == 0 {
			who = dir.writer
		}
		req, what := g.next(id)
		if i == 0 {
			req, what = g.rootEntry(id)
		}
		what = fmt.Sprintf("as %q, %s", dir.identities[who][0], what)
		want, got, final, _ := tally.exchange(i, what, id, pairs[who], req, req)
		if len(final.Controls) > 0 || len(want) > 1 {
			readBack++
		}
		if !sameFrames(want, got) {
			tally.differs(i, what, want, got)
		}
	}
	tally.check(count)
	codes := tally.codes
	// A generator whose writes all fail, or whose read controls return
	// nothing, would prove little.
	if codes[0] < count/12 || readBack < count/20 {
		t.Fatalf("only %d successes and %d responses with entries or controls in %d requests (results by code %v)", codes[0], readBack, count, codes)
	}
	t.Logf("%d generated writes and reads on %s (seed %d), results by code %v, %d with entries or response controls: every response identical, byte for byte",
		count, dir.name, seed, codes, readBack)
}

// writeGen generates write requests over a small set of entries below a
// root entry, so that adds, modifies, renames and deletes meet entries that
// exist, that do not, and that have children.
type writeGen struct {
	r         *rand.Rand
	root      string
	exists    bool     // root is there before the first request
	targets   []string // entries the requests address
	superiors []string // new superiors of renames
	attrs     []string // attributes written
	all       string   // "*" where every user attribute reads the same from two servers
	referrals bool     // adds of referral objects
}

// gen generates requests for entries below root, which is dir's scratch
// container or an entry to add below it. With elsewhere they also address
// entries outside scratch.
func (dir writeDirectory) gen(root string, elsewhere bool) *writeGen {
	g := &writeGen{root: root, exists: root == dir.scratch, superiors: []string{root, "cn=w0," + root, "cn=w1," + root}, attrs: writeAttrs, all: "*", referrals: !dir.noReferrals}
	if dir.saltedPasswords { // a password reads differently from each server: neither written nor read
		g.attrs = slices.DeleteFunc(slices.Clone(writeAttrs), func(a string) bool { return a == "userPassword" })
		g.all = "description"
	}
	// those right below root come more often, as the writer may change them
	for range 2 {
		for k := range 6 {
			g.targets = append(g.targets, fmt.Sprintf("cn=w%d,%s", k, root))
		}
	}
	g.targets = append(g.targets, "cn=g0,cn=w0,"+root, "cn=g1,cn=w1,"+root, "cn=g0,cn=w0,"+root,
		"cn=w1,ou=nowhere,"+root, "not a DN", strings.ToUpper("cn=w2 , "+root))
	if g.exists { // the writer may not remove scratch; an entry of its own it could, and end the run
		g.targets = append(g.targets, root)
	}
	if elsewhere {
		g.targets = append(g.targets, dir.elsewhere...)
		g.superiors = append(g.superiors, dir.superiors...)
	}
	return g
}

// rootEntry is the add of g's root, or a read of it when it exists.
func (g *writeGen) rootEntry(id int64) ([]byte, string) {
	if g.exists {
		return message(id, searchOp(g.root, ldap.ScopeBaseObject, "(objectClass=*)")).Bytes(), "read " + g.root
	}
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagAddRequest, nil, "AddRequest")
	op.AppendChild(octets(g.root))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	attrs.AppendChild(partialAttribute("objectClass", []string{"organizationalRole"}))
	attrs.AppendChild(partialAttribute("cn", []string{strings.TrimPrefix(strings.SplitN(g.root, ",", 2)[0], "cn=")}))
	op.AppendChild(attrs)
	return message(id, op).Bytes(), "add " + g.root
}

// LDAP write operation tags (application class).
const (
	tagModifyRequest = 6
	tagAddRequest    = 8
	tagDelRequest    = 10
	tagModDNRequest  = 12
)

var (
	writeAttrs  = []string{"description", "cn", "sn", "mail", "telephoneNumber", "objectClass", "uid", "noSuchAttribute", "userPassword", "roomNumber", "description;lang-en"}
	writeValues = []string{"d1", "d2", "D1", "w1", "w2", "user.1", "x@example.com", "+1 555", "person", "inetOrgPerson", "organizationalRole", "5"}
	objectClass = [][]string{{"organizationalRole"}, {"organizationalRole"}, {"organizationalRole"}, {"person"}, {"inetOrgPerson"}, {"person", "noSuchClass"}, {"top", "organizationalUnit"}, {"organizationalRole", "inetOrgPerson"}}
	readAttrs   = []string{"cn", "sn", "description", "objectClass", "creatorsName", "modifiersName", "hasSubordinates", "entryDN", "structuralObjectClass", "1.1", "*", "mail", "noSuchAttribute"}
)

// next returns a request with message ID id and describes it.
func (g *writeGen) next(id int64) ([]byte, string) {
	r := g.r
	dn := pick(r, g.targets)
	var op *ber.Packet
	var what string
	switch n := r.IntN(20); {
	case n < 8:
		op, what = g.add(dn)
	case n < 13:
		op, what = g.modify(dn)
	case n < 15:
		op, what = g.rename(dn)
	case n < 16:
		op = ber.NewString(ber.ClassApplication, ber.TypePrimitive, tagDelRequest, dn, "DelRequest")
		what = fmt.Sprintf("delete %q", dn)
	default:
		base := pick(r, []string{g.root, dn})
		op = searchOp(base, ldap.ScopeWholeSubtree, "(objectClass=*)", pick(r, [][]string{{g.all, "modifiersName"}, {"cn", "description", "creatorsName"}, {"1.1"}})...)
		what = fmt.Sprintf("search below %q", base)
	}
	controls, names := g.controls(op.Tag)
	return message(id, op, controls...).Bytes(), fmt.Sprintf("%s controls %s", what, names)
}

// add builds an add request of dn with a random set of attributes: now and
// then without the naming value, a required attribute or any object class,
// or a referral object.
func (g *writeGen) add(dn string) (*ber.Packet, string) {
	r := g.r
	rdnValue := dn
	if _, rdn, ok := strings.Cut(strings.SplitN(dn, ",", 2)[0], "="); ok {
		rdnValue = rdn
	}
	attrs := map[string][]string{"objectClass": pick(r, objectClass)}
	if r.IntN(20) == 0 {
		attrs["objectClass"] = nil
	}
	if r.IntN(8) != 0 {
		attrs["cn"] = []string{rdnValue}
	}
	if r.IntN(3) != 0 {
		attrs["sn"] = []string{pick(r, writeValues)}
	}
	if g.referrals && r.IntN(12) == 0 { // a referral: what is below it, or it with ManageDsaIT, answers referral
		attrs["objectClass"] = []string{"referral", "extensibleObject"}
		attrs["ref"] = []string{"ldap://elsewhere.example.com/" + dn, "ldap://other.example.com/"}
	}
	for range r.IntN(3) {
		a := pick(r, g.attrs)
		attrs[a] = append(attrs[a], pick(r, writeValues))
	}
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagAddRequest, nil, "AddRequest")
	op.AppendChild(octets(dn))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	var names []string
	for _, a := range sortedKeys(attrs) {
		list.AppendChild(partialAttribute(a, attrs[a]))
		names = append(names, fmt.Sprintf("%s=%q", a, attrs[a]))
	}
	op.AppendChild(list)
	return op, fmt.Sprintf("add %q %s", dn, names)
}

// modify builds a modify request of dn with one to three changes of any
// kind (add, delete, replace, increment), with or without values.
func (g *writeGen) modify(dn string) (*ber.Packet, string) {
	r := g.r
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagModifyRequest, nil, "ModifyRequest")
	op.AppendChild(octets(dn))
	changes := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	var names []string
	for range 1 + r.IntN(3) {
		kind, attr := r.IntN(4), pick(r, g.attrs)
		var values []string
		for range r.IntN(3) {
			values = append(values, pick(r, writeValues))
		}
		if (kind == 0 || kind == 3) && r.IntN(4) != 0 { // mostly what the server takes
			values = []string{pick(r, writeValues)}
		}
		change := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		change.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(kind), ""))
		change.AppendChild(partialAttribute(attr, values))
		changes.AppendChild(change)
		names = append(names, fmt.Sprintf("%s %s %q", []string{"add", "delete", "replace", "increment"}[kind], attr, values))
	}
	op.AppendChild(changes)
	return op, fmt.Sprintf("modify %q %s", dn, names)
}

// rename builds a modify DN request of dn: a new RDN, keeping the old one
// or not, now and then under a new superior.
func (g *writeGen) rename(dn string) (*ber.Packet, string) {
	r := g.r
	newRDN := pick(r, []string{"cn=w0", "cn=w3", "cn=w4", "cn=w5", "cn=g0", "cn=renamed", "description=d1", "=broken"})
	deleteOld := r.IntN(2) == 0
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagModDNRequest, nil, "ModifyDNRequest")
	op.AppendChild(octets(dn))
	op.AppendChild(octets(newRDN))
	op.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, deleteOld, ""))
	what := fmt.Sprintf("rename %q to %q deleteOldRDN %v", dn, newRDN, deleteOld)
	if r.IntN(3) == 0 {
		superior := pick(r, g.superiors)
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, superior, ""))
		what += fmt.Sprintf(" under %q", superior)
	}
	return op, what
}

// controls picks the request controls of one write or read.
func (g *writeGen) controls(tag ber.Tag) ([]ldap.Control, []string) {
	r := g.r
	var controls []ldap.Control
	var names []string
	add := func(name, oid string, critical bool, value []byte) {
		controls = append(controls, &ldap.ControlString{ControlType: oid, Criticality: critical, ControlValue: string(value)})
		names = append(names, name)
	}
	critical := func() bool { return r.IntN(2) == 0 }
	if r.IntN(6) == 0 {
		filter := pick(r, []string{"(objectClass=*)", "(description=d1)", "(cn=w1)", "(!(description=*))", "(sn=d2)"})
		f, err := ldap.CompileFilter(filter)
		if err != nil {
			panic(err)
		}
		add("assertion "+filter, "1.3.6.1.1.12", true, f.Bytes())
	}
	write := tag != tagSearchRequest
	if write && tag != tagAddRequest && r.IntN(4) == 0 {
		add("pre-read", "1.3.6.1.1.13.1", critical(), g.attributeSelection())
	}
	if write && tag != tagDelRequest && r.IntN(4) == 0 {
		add("post-read", "1.3.6.1.1.13.2", critical(), g.attributeSelection())
	}
	if tag == tagModifyRequest && r.IntN(4) == 0 {
		add("permissive modify", "1.2.840.113556.1.4.1413", critical(), nil)
	}
	if r.IntN(25) == 0 {
		add("relax", "1.3.6.1.4.1.4203.666.5.12", critical(), nil)
	}
	if r.IntN(10) == 0 {
		add("manageDsaIT", ldap.ControlTypeManageDsaIT, critical(), nil)
	}
	if r.IntN(25) == 0 {
		add("no-op", "1.3.6.1.4.1.4203.1.10.2", critical(), nil)
	}
	if r.IntN(25) == 0 {
		add("unknown", "1.3.6.1.4.1.99999.2", critical(), nil)
	}
	return controls, names
}

// attributeSelection is the value of a pre- or post-read control (RFC
// 4527): attributes that two servers given the same writes show alike.
func (g *writeGen) attributeSelection() []byte {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for range g.r.IntN(4) {
		a := pick(g.r, readAttrs)
		if a == "*" {
			a = g.all
		}
		seq.AppendChild(octets(a))
	}
	return seq.Bytes()
}

// partialAttribute encodes an attribute type and its set of values.
func partialAttribute(attr string, values []string) *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	p.AppendChild(octets(attr))
	set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
	for _, v := range values {
		set.AppendChild(octets(v))
	}
	p.AppendChild(set)
	return p
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestRandomWritesAsOn389 does the same with 389 Directory Server, served
// with proxied authorization: its access control decides with the client's
// identity what each write may do, and what the read controls show, and
// the Directory Manager, whom 389 lets no one assume, writes as itself.
func TestRandomWritesAsOn389(t *testing.T) {
	direct := dirtest.Start389(t, 1).Instance(1).Addr
	behindCluster := dirtest.Start389(t, 1)
	behind := behindCluster.Instance(1).Addr
	for _, addr := range []string{direct, behind} {
		prepare389Writes(t, addr)
	}
	a, addr := startProxyYAML(t, ds389YAML(behindCluster, dirtest.ServiceDN, dirtest.ServicePassword, false))
	logHealthOnFailure(t, a)
	eventually(t, 30*time.Second, "the 389 server checked, available, in proxied-authorization mode", func() bool {
		return all389Ready(a)
	})
	compareGeneratedWrites(t, direct, addr, ds389Writes, ds389Writes.gen(ds389Writes.scratch, true), 400, 0)
	sameDirectories(t, ds389Writes, direct, behind)
}

var ds389Writes = writeDirectory{
	name: "389 Directory Server",
	identities: [][2]string{
		{"", ""},
		{dirtest.UserDN(1), dirtest.UserPassword(1)},
		{dirtest.UserDN(2), dirtest.UserPassword(2)},
		{dirtest.UserDN(3), dirtest.UserPassword(3)},
		{dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword},
	},
	writer: 3, admin: 4,
	base: dirtest.BaseDN, scratch: "ou=scratch," + dirtest.BaseDN,
	elsewhere:       []string{dirtest.UserDN(1), dirtest.UserDN(2), dirtest.UserDN(3), dirtest.PeopleDN, dirtest.StaffGroupDN, dirtest.ServiceDN},
	superiors:       []string{dirtest.PeopleDN, "ou=nowhere," + dirtest.BaseDN},
	saltedPasswords: true,
	noReferrals:     true,
}

// prepare389Writes adds, as the Directory Manager, the scratch container
// in which user 3 may do anything, and lets users change a few attributes
// of their own entries.
func prepare389Writes(t *testing.T, addr string) {
	t.Helper()
	manager := bindAs(t, addr, dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword)
	defer manager.Close()
	scratch := ldap.NewAddRequest(ds389Writes.scratch, nil)
	scratch.Attribute("objectClass", []string{"top", "organizationalUnit"})
	scratch.Attribute("ou", []string{"scratch"})
	scratch.Attribute("aci", []string{`(targetattr="*")(version 3.0; acl "writer"; allow (all) userdn="ldap:///` + dirtest.UserDN(3) + `";)`})
	if err := manager.Add(scratch); err != nil {
		t.Fatal(err)
	}
	self := ldap.NewModifyRequest(dirtest.PeopleDN, nil)
	self.Add("aci", []string{`(targetattr="description || roomNumber || telephoneNumber")(version 3.0; acl "self write"; allow (write) userdn="ldap:///self";)`})
	if err := manager.Modify(self); err != nil {
		t.Fatal(err)
	}
}
