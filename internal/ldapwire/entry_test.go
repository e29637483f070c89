package ldapwire

import (
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// searchBody encodes a SearchRequest body with go-ldap's filter compiler.
func searchBody(t *testing.T, base string, scope, size int64, typesOnly bool, filter string, attrs ...string) []byte {
	t.Helper()
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 3, nil, "Search Request")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, "Base DN"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, scope, "Scope"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "Deref"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, size, "Size"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Time"))
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, typesOnly, "TypesOnly"))
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		t.Fatal(err)
	}
	req.AppendChild(f)
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes")
	for _, a := range attrs {
		list.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, "Attribute"))
	}
	req.AppendChild(list)
	msg, err := Parse(wrap(req))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Body
}

func wrap(op *ber.Packet) []byte {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 7, "MessageID"))
	p.AppendChild(op)
	return p.Bytes()
}

func TestParseSearch(t *testing.T) {
	body := searchBody(t, "cn=monitor", ScopeSub, 5, true,
		"(&(objectClass=*)(|(cn=ds*x*1)(!(score>=3)))(score<=9)(cn~=a))", "cn", "+")
	sr, err := ParseSearch(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(sr.BaseDN) != "cn=monitor" || sr.Scope != ScopeSub || sr.SizeLimit != 5 || !sr.TypesOnly {
		t.Fatalf("parsed %+v", sr)
	}
	if len(sr.Attributes) != 2 || string(sr.Attributes[1]) != "+" {
		t.Fatalf("attributes %q", sr.Attributes)
	}
	and := sr.Filter
	if and.Kind != FilterAnd || len(and.Children) != 4 {
		t.Fatalf("filter %+v", and)
	}
	if p := and.Children[0]; p.Kind != FilterPresent || string(p.Attr) != "objectClass" {
		t.Errorf("present %+v", p)
	}
	sub := and.Children[1].Children[0]
	if sub.Kind != FilterSubstring || string(sub.Initial) != "ds" || len(sub.Any) != 1 || string(sub.Final) != "1" {
		t.Errorf("substrings %+v", sub)
	}
	not := and.Children[1].Children[1]
	if not.Kind != FilterNot || not.Children[0].Kind != FilterGreater || string(not.Children[0].Value) != "3" {
		t.Errorf("not %+v", not)
	}
	if and.Children[3].Kind != FilterApprox {
		t.Errorf("approx %+v", and.Children[3])
	}
}

func TestParseSearchRejectsGarbage(t *testing.T) {
	body := searchBody(t, "cn=monitor", ScopeBase, 0, false, "(cn=x)")
	for n := 0; n < len(body); n++ {
		if _, err := ParseSearch(body[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
	deep := []byte{FilterPresent, 1, 'x'}
	for range 40 {
		deep = append([]byte{FilterNot, byte(len(deep))}, deep...)
	}
	if _, _, err := parseFilter(deep, 0); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Fatalf("deep filter: %v", err)
	}
}

func TestAppendSearchEntryDecodes(t *testing.T) {
	attrs := []Attribute{{"objectClass", []string{"top", "ldapmuxMonitorEntry"}}, {"cn", []string{"monitor"}}, {"empty", nil}}
	for _, typesOnly := range []bool{false, true} {
		frame := AppendSearchEntry(nil, 300, "cn=monitor", attrs, typesOnly)
		p, err := ber.DecodePacketErr(frame)
		if err != nil {
			t.Fatal(err)
		}
		if id := p.Children[0].Value.(int64); id != 300 {
			t.Fatalf("id %d", id)
		}
		op := p.Children[1]
		if op.Tag != 4 || op.Children[0].Value.(string) != "cn=monitor" {
			t.Fatalf("op %v", op)
		}
		list := op.Children[1].Children
		if len(list) != 3 || list[0].Children[0].Value.(string) != "objectClass" {
			t.Fatalf("attributes %d", len(list))
		}
		vals := list[0].Children[1].Children
		if typesOnly && len(vals) != 0 || !typesOnly && (len(vals) != 2 || vals[1].Value.(string) != "ldapmuxMonitorEntry") {
			t.Fatalf("typesOnly=%v values %v", typesOnly, vals)
		}
		if _, err := Parse(frame); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNames(t *testing.T) {
	if ResultName(0) != "success" || ResultName(-1) != "none" || ResultName(4242) != "unknown" || ResultName(123) != "authorizationDenied" {
		t.Error("result names")
	}
	if OperationName(OpModifyDNRequest) != "modify-dn" || OperationName(0x01) != "unknown" {
		t.Error("operation names")
	}
}
