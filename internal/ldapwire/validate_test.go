package ldapwire

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// corpusPDUs reads the seeds of a fuzz target written by TestWriteFuzzCorpus
// from the given client ("goldap", "openldap") or from slapd.
func corpusPDUs(t *testing.T, target, source string) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, source+"-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s seeds of %s: %v", source, target, err)
	}
	var out [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		lit := strings.TrimSuffix(strings.TrimPrefix(lines[len(lines)-1], "[]byte("), ")")
		raw, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, []byte(raw))
	}
	return out
}

// TestValidateAcceptsRealRequests: every request go-ldap and the OpenLDAP
// tools sent to slapd while the corpus was captured is accepted.
func TestValidateAcceptsRealRequests(t *testing.T) {
	n := 0
	for _, source := range []string{"goldap", "openldap"} {
		for _, raw := range corpusPDUs(t, "FuzzValidateRequest", source) {
			m, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := ValidateRequest(m); err != nil {
				t.Errorf("%s request %x refused: %v", source, raw, err)
			}
			n++
		}
	}
	t.Logf("%d real requests accepted", n)
}

func TestValidateAcceptsGoLDAPFilters(t *testing.T) {
	for _, f := range []string{"(&)", "(|)", "(!(cn=x))", "(cn=a*b*c)", "(cn=*x)", "(cn=x*)", "(cn:caseExactMatch:=X)",
		"(:dn:2.5.13.5:=x)", "(age>=3)", "(age<=3)", "(cn~=x)", "(&(|(a=1)(b=2))(!(c=*)))"} {
		raw := encodeSearchFilter(t, f)
		m, _ := Parse(raw)
		if err := ValidateRequest(m); err != nil {
			t.Errorf("filter %s refused: %v", f, err)
		}
	}
}

func encodeSearchFilter(t *testing.T, filter string) []byte {
	packet := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	packet.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 1, "MessageID"))
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 3, nil, "Search Request")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "dc=x", "Base DN"))
	for _, v := range []int64{2, 0} {
		req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, v, ""))
	}
	for range 2 {
		req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, ""))
	}
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, ""))
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		t.Fatal(err)
	}
	req.AppendChild(f)
	req.AppendChild(ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes"))
	packet.AppendChild(req)
	return packet.Bytes()
}

func TestValidateRefusesBadStructure(t *testing.T) {
	search := encodeSearchFilter(t, "(cn=x)")
	m, _ := Parse(search)
	op := func(tag byte, body ...byte) []byte {
		return AppendMessage(nil, 1, append(appendHeader(nil, tag, len(body)), body...), nil, nil)
	}
	nested := []byte{0x87, 1, 'a'}
	for range maxValidFilterDepth + 1 {
		nested = append(appendHeader(nil, 0xa2, len(nested)), nested...)
	}
	deep := op(OpSearchRequest, append(append([]byte{0x04, 0, 0x0a, 1, 0, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0}, nested...), 0x30, 0)...)
	cases := map[string][]byte{
		"control with two criticalities": AppendMessage(nil, 1, m.Op, []byte{0xa0, 0x0b, 0x30, 0x09, 0x04, 0x01, 'x', 0x01, 0x01, 0, 0x01, 0x01, 0}, nil),
		"control without type":           AppendMessage(nil, 1, m.Op, []byte{0xa0, 0x05, 0x30, 0x03, 0x01, 0x01, 0}, nil),
		"control not a sequence":         AppendMessage(nil, 1, m.Op, []byte{0xa0, 0x03, 0x04, 0x01, 'x'}, nil),
		"search without filter":          op(OpSearchRequest, 0x04, 0, 0x0a, 1, 0, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0),
		"search with long integer":       op(OpSearchRequest, 0x04, 0, 0x0a, 5, 0, 0, 0, 0, 1, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0, 0x87, 1, 'a', 0x30, 0),
		"equality with one part":         op(OpSearchRequest, 0x04, 0, 0x0a, 1, 0, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0, 0xa3, 3, 0x04, 1, 'a', 0x30, 0),
		"empty substrings":               op(OpSearchRequest, 0x04, 0, 0x0a, 1, 0, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0, 0xa4, 5, 0x04, 1, 'a', 0x30, 0, 0x30, 0),
		"attributes not strings":         op(OpSearchRequest, 0x04, 0, 0x0a, 1, 0, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0, 0x87, 1, 'a', 0x30, 3, 0x02, 1, 0),
		"filter too deep":                deep,
		"bind without auth":              op(OpBindRequest, 0x02, 1, 3, 0x04, 0),
		"bind trailing element":          op(OpBindRequest, 0x02, 1, 3, 0x04, 0, 0x80, 0, 0x04, 0),
		"modify bad change":              op(OpModifyRequest, 0x04, 0, 0x30, 3, 0x30, 1, 0x0a),
		"add values not a set":           op(OpAddRequest, 0x04, 0, 0x30, 7, 0x30, 5, 0x04, 1, 'a', 0x30, 0),
		"moddn without deleteoldrdn":     op(OpModifyDNRequest, 0x04, 0, 0x04, 0),
		"compare bad assertion":          op(OpCompareRequest, 0x04, 0, 0x30, 2, 0x04, 0),
		"extended without name":          op(OpExtendedRequest, 0x81, 0),
		"unknown operation":              op(0x7e),
	}
	for name, raw := range cases {
		m, err := Parse(raw)
		if err != nil {
			t.Fatalf("%s: test PDU does not parse: %v", name, err)
		}
		if err := ValidateRequest(m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzValidateRequest: the validator stands between hostile clients and
// the shared server connections. It must never panic, and what it accepts
// must decode with an independent BER decoder (go-asn1-ber).
func FuzzValidateRequest(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			m = Message{OpTag: opTagOf(data), Body: data}
			_ = ValidateRequest(m)
			return
		}
		if ValidateRequest(m) != nil {
			return
		}
		if _, err := ber.DecodePacketErr(data); err != nil {
			t.Fatalf("accepted a request go-asn1-ber cannot decode: %v", err)
		}
	})
}
