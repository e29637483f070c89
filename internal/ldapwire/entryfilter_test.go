package ldapwire

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// berEntry encodes a SearchResultEntry with go-asn1-ber, with controls
// when not nil, and parses it.
func berEntry(t testing.TB, id int64, dn string, attrs []Attribute, controls []ldap.Control) Message {
	t.Helper()
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ber.Tag(OpSearchResultEntry&0x1f), nil, "SearchResultEntry")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "objectName"))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	for _, a := range attrs {
		attr := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
		attr.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a.Type, "type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		for _, v := range a.Values {
			set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, "value"))
		}
		attr.AppendChild(set)
		list.AppendChild(attr)
	}
	op.AppendChild(list)
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "messageID"))
	p.AppendChild(op)
	if controls != nil {
		p.AppendChild(controlsPacket(controls))
	}
	m, err := Parse(p.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// decodeEntry reads a SearchResultEntry message back with go-asn1-ber.
func decodeEntry(t *testing.T, raw []byte) (id int64, dn string, attrs []Attribute, controls *ber.Packet) {
	t.Helper()
	p, err := ber.DecodePacketErr(raw)
	if err != nil {
		t.Fatalf("go-asn1-ber cannot decode the entry: %v", err)
	}
	if len(p.Children) < 2 || p.Children[1].Tag != ber.Tag(OpSearchResultEntry&0x1f) {
		t.Fatalf("not a search entry: %d children", len(p.Children))
	}
	op := p.Children[1]
	for _, a := range op.Children[1].Children {
		attr := Attribute{Type: a.Children[0].Value.(string), Values: []string{}}
		for _, v := range a.Children[1].Children {
			attr.Values = append(attr.Values, v.Value.(string))
		}
		attrs = append(attrs, attr)
	}
	if len(p.Children) > 2 {
		controls = p.Children[2]
	}
	return p.Children[0].Value.(int64), op.Children[0].Value.(string), attrs, controls
}

// rootDSE is a root DSE like slapd returns.
func rootDSE() []Attribute {
	return []Attribute{
		{"objectClass", []string{"top", "OpenLDAProotDSE"}},
		{"namingContexts", []string{"dc=example,dc=com"}},
		{"supportedControl", []string{OIDPagedResults, OIDSyncRequest, OIDServerSortRequest}},
		{"supportedExtension", []string{OIDStartTLS, OIDWhoAmI, OIDPasswordModify, OIDCancel, OIDStartTxn, OIDEndTxn, OIDTurn}},
		{"supportedLDAPVersion", []string{"3"}},
	}
}

func TestAppendEntryFilteredRootDSE(t *testing.T) {
	unsupported := map[string]bool{OIDCancel: true, OIDStartTxn: true, OIDEndTxn: true, OIDTurn: true}
	keep := func(attr, value []byte) bool {
		return !strings.EqualFold(string(attr), "supportedExtension") || !unsupported[string(value)]
	}
	controls := []ldap.Control{ldap.NewControlString("1.2.3.4", true, "v")}
	for _, ctrls := range [][]ldap.Control{nil, controls} {
		msg := berEntry(t, 5, "", rootDSE(), ctrls)
		out, err := AppendEntryFiltered([]byte("prefix"), msg, 300, keep)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(out, []byte("prefix")) {
			t.Fatal("dst not appended to")
		}
		out = out[len("prefix"):]
		id, dn, attrs, gotCtrls := decodeEntry(t, out)
		want := rootDSE()
		want[3].Values = []string{OIDStartTLS, OIDWhoAmI, OIDPasswordModify}
		if id != 300 || dn != "" || fmt.Sprint(attrs) != fmt.Sprint(want) {
			t.Fatalf("got id %d dn %q\n%v\nwant\n%v", id, dn, attrs, want)
		}
		m, err := Parse(out)
		if err != nil || m.ID != 300 || !bytes.Equal(m.Controls, msg.Controls) {
			t.Fatalf("parsed %+v, %v; controls %x, want %x", m, err, m.Controls, msg.Controls)
		}
		if (gotCtrls != nil) != (ctrls != nil) {
			t.Fatalf("controls %v", gotCtrls)
		}
	}
}

func TestAppendEntryFilteredKeepsEmptyAttributes(t *testing.T) {
	msg := berEntry(t, 1, "cn=x", []Attribute{{"a", []string{"1", "2"}}, {"b", nil}, {"c", []string{"3"}}}, nil)
	out, err := AppendEntryFiltered(nil, msg, 2, func(attr, _ []byte) bool { return string(attr) == "c" })
	if err != nil {
		t.Fatal(err)
	}
	_, dn, attrs, _ := decodeEntry(t, out)
	if dn != "cn=x" || fmt.Sprint(attrs) != "[{a []} {b []} {c [3]}]" {
		t.Fatalf("%q %v", dn, attrs)
	}
	if err := validatePartialAttribute(attrOf(t, out)); err != nil {
		t.Fatal(err)
	}
}

// attrOf is the content of the first attribute of an encoded entry.
func attrOf(t *testing.T, raw []byte) []byte {
	t.Helper()
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	_, list, err := splitEntry(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := expect(list, tagSequence, "attribute")
	if err != nil {
		t.Fatal(err)
	}
	return seq.content
}

// TestAppendEntryFilteredKeepAll checks that keeping everything gives the
// message WithID would, and that keep sees every value once, in order.
func TestAppendEntryFilteredKeepAll(t *testing.T) {
	long := strings.Repeat("v", 70000)
	many := make([]string, 700)
	for i := range many {
		many[i] = fmt.Sprintf("member-%d", i)
	}
	attrs := []Attribute{{"member", many}, {"jpegPhoto", []string{long, long[:200]}}, {"cn", []string{"big"}}}
	msg := berEntry(t, 9, "cn=big,dc=example,dc=com", attrs, []ldap.Control{ldap.NewControlPaging(1)})
	var seen []string
	out, err := AppendEntryFiltered(nil, msg, MaxMessageID, func(attr, value []byte) bool {
		seen = append(seen, string(attr)+"="+string(value))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := msg.WithID(nil, MaxMessageID); !bytes.Equal(out, want) {
		t.Fatalf("keeping every value changed the entry (%d bytes, want %d)", len(out), len(want))
	}
	var want []string
	for _, a := range attrs {
		for _, v := range a.Values {
			want = append(want, a.Type+"="+v)
		}
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("keep saw %d values, want %d", len(seen), len(want))
	}
	// Every other value, over the 256 values a small mask holds.
	n := 0
	out, err = AppendEntryFiltered(nil, msg, 1, func(_, _ []byte) bool { n++; return n%2 == 1 })
	if err != nil {
		t.Fatal(err)
	}
	_, _, got, _ := decodeEntry(t, out)
	if len(got[0].Values) != 350 || got[0].Values[349] != "member-698" || len(got[1].Values) != 1 || got[1].Values[0] != long || len(got[2].Values) != 1 {
		t.Fatalf("every other value: %d %d %d values", len(got[0].Values), len(got[1].Values), len(got[2].Values))
	}
}

func TestAppendEntryFilteredDoesNotAllocate(t *testing.T) {
	msg := berEntry(t, 5, "", rootDSE(), nil)
	dst := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = AppendEntryFiltered(dst, msg, 7, func(_, v []byte) bool { return len(v) > 5 })
	})
	if allocs != 0 {
		t.Errorf("%v allocations", allocs)
	}
}

func TestAppendEntryFilteredRejectsMalformed(t *testing.T) {
	keepAll := func(_, _ []byte) bool { return true }
	msg := berEntry(t, 5, "", rootDSE(), nil)
	for n := range len(msg.Body) {
		m := msg
		m.Body = msg.Body[:n]
		if _, err := AppendEntryFiltered(nil, m, 1, keepAll); !errors.Is(err, ErrMalformed) {
			t.Fatalf("body truncated to %d bytes: %v", n, err)
		}
	}
	bodies := map[string][]byte{
		"no attributes":   appendString(nil, tagOctetString, "cn=x"),
		"dn not a string": entryBody(tagInteger, nil),
		"trailing":        append(entryBody(tagOctetString, nil), tagOctetString, 0),
		"set not a set":   entryBody(tagOctetString, []byte{tagSequence, 5, tagOctetString, 1, 'a', tagSequence, 0}),
		"value tag":       entryBody(tagOctetString, []byte{tagSequence, 7, tagOctetString, 1, 'a', tagSet, 2, tagInteger, 0}),
		"no set":          entryBody(tagOctetString, []byte{tagSequence, 3, tagOctetString, 1, 'a'}),
		"extra field":     entryBody(tagOctetString, []byte{tagSequence, 7, tagOctetString, 1, 'a', tagSet, 0, tagSet, 0}),
		"not a sequence":  entryBody(tagOctetString, []byte{tagSet, 5, tagOctetString, 1, 'a', tagSet, 0}),
	}
	for name, body := range bodies {
		m := Message{OpTag: OpSearchResultEntry, Body: body}
		if _, err := AppendEntryFiltered(nil, m, 1, keepAll); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	result, _ := Parse(AppendResult(nil, 1, OpSearchResultDone, Success, ""))
	if _, err := AppendEntryFiltered(nil, result, 1, keepAll); !errors.Is(err, ErrMalformed) {
		t.Errorf("search done: %v", err)
	}
}

// entryBody is a SearchResultEntry body with a DN element of dnTag and the
// given attribute list content.
func entryBody(dnTag byte, list []byte) []byte {
	return AppendElement(appendString(nil, dnTag, "cn=x"), tagSequence, list)
}

func TestEntryDropsAnyAndSearchScope(t *testing.T) {
	entry, err := Parse(AppendSearchEntry(nil, 1, "", []Attribute{
		{Type: "supportedExtension", Values: []string{"1.3.6.1.4.1.4203.1.11.3", "1.3.6.1.1.8"}}}, false))
	if err != nil {
		t.Fatal(err)
	}
	if !EntryDropsAny(entry, func(_, v []byte) bool { return string(v) != "1.3.6.1.1.8" }) {
		t.Error("a refused value went unseen")
	}
	if EntryDropsAny(entry, func(_, _ []byte) bool { return true }) {
		t.Error("nothing refused, yet reported")
	}
	if allocs := testing.AllocsPerRun(100, func() { EntryDropsAny(entry, func(_, _ []byte) bool { return true }) }); allocs != 0 {
		t.Errorf("%v allocations", allocs)
	}
	probe, _ := Parse(AppendRootDSEProbe(nil, 1))
	if scope, err := SearchScope(probe.Body); err != nil || scope != ScopeBase {
		t.Errorf("scope %d, %v", scope, err)
	}
	if _, err := SearchScope([]byte{0x04, 0x00}); err == nil {
		t.Error("a truncated search was given a scope")
	}
}
