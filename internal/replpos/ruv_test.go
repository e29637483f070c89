package replpos

import (
	"errors"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

func TestParse389CSN(t *testing.T) {
	c := mustCSN(t, "6b1323b4000300020001") // ParseCSN takes 389's form too
	want := CSN{Time: time.Unix(0x6b1323b4, 0).UTC(), Count: 3, SID: 2, Mod: 1}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if c, err := Parse389CSN([]byte("6B1323B4FFFF00FFFFFF")); err != nil || c.Count != 0xffff || c.SID != 0xff || c.Mod != 0xffff {
		t.Errorf("upper case, largest fields: %+v %v", c, err)
	}
	for _, bad := range []string{"", "6b1323b400030002000", "6b1323b4000300020001x", "zz1323b4000300020001",
		"6b1323b4 00300020001", "6b1323b4-00300020001", "6b1323b40003000200#1"} {
		if _, err := Parse389CSN([]byte(bad)); err == nil {
			t.Errorf("Parse389CSN(%q) accepted", bad)
		}
		if _, err := ParseCSN([]byte(bad)); err == nil {
			t.Errorf("ParseCSN(%q) accepted", bad)
		}
	}
	b := []byte("6b1323b4000300020001")
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseCSN(b) }); n != 0 {
		t.Errorf("ParseCSN of a 389 CSN allocates %v times", n)
	}
}

// Test389Order: of one replica ID, 389 orders CSNs by time, then sequence
// number, then sub-sequence number; a position includes a change through
// the CSN of the change's replica ID only.
func Test389Order(t *testing.T) {
	ordered := []string{
		"6b1323b4000000010000",
		"6b1323b4000000010001", // sub-sequence
		"6b1323b4000100010000", // sequence number, sub-sequence back to 0
		"6b1323b4ffff00010000",
		"6b1323b5000000010000", // next second, sequence back to 0
	}
	for i := range ordered {
		for j := range ordered {
			a, b := mustCSN(t, ordered[i]), mustCSN(t, ordered[j])
			if a.After(b) != (i > j) {
				t.Errorf("%s after %s: %v", ordered[i], ordered[j], a.After(b))
			}
			if (Vector{a}).Has(b) != (j <= i) {
				t.Errorf("position %s has %s: %v", ordered[i], ordered[j], !(j <= i))
			}
		}
	}
	if (Vector{mustCSN(t, "6b1323ff000000020000")}).Has(mustCSN(t, "6b1323b4000000010000")) {
		t.Error("a newer CSN of another replica ID counts")
	}
}

func TestParseRUV(t *testing.T) {
	// as read from a live replica entry: the local replica first
	ruv := []string{
		"{replicageneration} 6b13481e000000010000",
		"{replica 1 ldap://localhost:39279} 6b13481e000100010000 6b134823000700010000",
		"{replica 2 ldap://localhost:46705} 6b134822000100020000 6b134822000100020000",
		"{replica 3 ldap://localhost:46706}", // no change made yet
	}
	pos, err := ParseRUV(ruv)
	if err != nil {
		t.Fatal(err)
	}
	want := Vector{mustCSN(t, "6b134823000700010000"), mustCSN(t, "6b134822000100020000")}
	if len(pos) != len(want) || pos[0] != want[0] || pos[1] != want[1] {
		t.Errorf("got %+v, want %+v", pos, want)
	}
	if !pos.Has(mustCSN(t, "6b134823000500010000")) || pos.Has(mustCSN(t, "6b134823000800010000")) {
		t.Error("the position misreads replica 1's max CSN")
	}
	if pos, err := ParseRUV(ruv[3:]); err != nil || len(pos) != 0 {
		t.Errorf("replicas without changes: %+v, %v; want an empty position", pos, err)
	}
	for _, none := range [][]string{nil, ruv[:1]} {
		if _, err := ParseRUV(none); !errors.Is(err, ErrNoRUV) {
			t.Errorf("%q: %v, want ErrNoRUV", none, err)
		}
	}
	for _, bad := range []string{"{replica 1 ldap://x} 6b1320dc000000010000 nothex", "{replica 1 ldap://x 6b1320dc000000010000"} {
		if _, err := ParseRUV([]string{bad}); err == nil || errors.Is(err, ErrNoRUV) {
			t.Errorf("%q: %v, want an error naming it", bad, err)
		}
	}
}

// TestRUVSearchEncoding: the search for a suffix's replica entry decodes
// as (&(objectClass=nsds5replica)(nsds5replicaRoot=suffix)) below the
// mapping tree, asking for nsds50ruv only.
func TestRUVSearchEncoding(t *testing.T) {
	filter := andFilter(equalityFilter("objectClass", "nsds5replica"), equalityFilter("nsds5replicaRoot", "dc=example,dc=test"))
	msg, err := ldapwire.Parse(appendSearch(nil, 7, ReplicaConfigBase, ldapwire.ScopeSub, filter, "nsds50ruv"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := ldapwire.ParseSearch(msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	f := req.Filter
	switch {
	case msg.ID != 7 || msg.OpTag != ldapwire.OpSearchRequest:
		t.Errorf("message %d, op %#x", msg.ID, msg.OpTag)
	case string(req.BaseDN) != ReplicaConfigBase || req.Scope != ldapwire.ScopeSub || req.TypesOnly:
		t.Errorf("base %q scope %d typesOnly %v", req.BaseDN, req.Scope, req.TypesOnly)
	case len(req.Attributes) != 1 || string(req.Attributes[0]) != "nsds50ruv":
		t.Errorf("attributes %q", req.Attributes)
	case f.Kind != ldapwire.FilterAnd || len(f.Children) != 2:
		t.Errorf("filter %+v", f)
	case f.Children[0].Kind != ldapwire.FilterEqual || string(f.Children[0].Attr) != "objectClass" || string(f.Children[0].Value) != "nsds5replica",
		f.Children[1].Kind != ldapwire.FilterEqual || string(f.Children[1].Attr) != "nsds5replicaRoot" || string(f.Children[1].Value) != "dc=example,dc=test":
		t.Errorf("filter terms %+v", f.Children)
	}
}
