package ldapwire

import (
	"bytes"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

func TestWhoAmIRoundTrip(t *testing.T) {
	msg, err := Parse(AppendWhoAmI(nil, 7))
	if err != nil || msg.ID != 7 || msg.OpTag != OpExtendedRequest || string(msg.ExtendedOID()) != OIDWhoAmI {
		t.Fatalf("who am I request: %+v, %v", msg, err)
	}
	for _, value := range []string{"dn:uid=a,dc=example,dc=com", ""} {
		resp, err := Parse(AppendExtendedResult(nil, 7, Success, value))
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := ParseExtendedValue(resp.Body)
		if err != nil || !ok || string(got) != value {
			t.Errorf("value %q: got %q, %t, %v", value, got, ok, err)
		}
	}
	resp, _ := Parse(AppendResult(nil, 7, OpExtendedResponse, Other, "no value"))
	if _, ok, err := ParseExtendedValue(resp.Body); ok || err != nil {
		t.Errorf("a response without a value: %t, %v", ok, err)
	}
	if _, _, err := ParseExtendedValue([]byte{0x0a, 0x05}); err == nil {
		t.Error("a truncated response parsed")
	}
}

// TestParseResultOnOtherResponses checks that ParseResult reads the
// LDAPResult of any response body, whatever follows it (referral,
// serverSaslCreds, responseName, responseValue), so that a response can be
// turned into the one its request expects.
func TestParseResultOnOtherResponses(t *testing.T) {
	result := func(app ber.Tag, code int64, matched, diag string, extra ...*ber.Packet) []byte {
		op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, app, nil, "response")
		op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, "resultCode"))
		op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, matched, "matchedDN"))
		op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, "diagnosticMessage"))
		for _, e := range extra {
			op.AppendChild(e)
		}
		return wrap(op)
	}
	referral := ber.Encode(ber.ClassContext, ber.TypeConstructed, 3, nil, "referral")
	referral.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "ldap://other/", "URI"))
	cases := map[string][]byte{
		"extended, name and value": result(ldap.ApplicationExtendedResponse, UnwillingToPerform, "dc=example", "no transactions",
			ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, OIDStartTxn, "responseName"),
			ber.NewString(ber.ClassContext, ber.TypePrimitive, 11, "txn", "responseValue")),
		"extended, referral and name": result(ldap.ApplicationExtendedResponse, UnwillingToPerform, "dc=example", "no transactions", referral,
			ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, OIDStartTxn, "responseName")),
		"bind, sasl credentials": result(ldap.ApplicationBindResponse, UnwillingToPerform, "dc=example", "no transactions",
			ber.NewString(ber.ClassContext, ber.TypePrimitive, 7, "creds", "serverSaslCreds")),
		"notice of disconnection": AppendNotice(nil, UnwillingToPerform, "no transactions"),
	}
	for name, raw := range cases {
		m, err := Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r, err := ParseResult(m.Body)
		if err != nil || r.Code != UnwillingToPerform || string(r.Diagnostic) != "no transactions" {
			t.Fatalf("%s: %+v, %v", name, r, err)
		}
		if name != "notice of disconnection" && string(r.MatchedDN) != "dc=example" {
			t.Fatalf("%s: matchedDN %q", name, r.MatchedDN)
		}
		done, _ := Parse(AppendResult(nil, m.ID, OpSearchResultDone, r.Code, string(r.Diagnostic)))
		if again, err := ParseResult(done.Body); err != nil || done.OpTag != OpSearchResultDone || again.Code != r.Code ||
			!bytes.Equal(again.Diagnostic, r.Diagnostic) {
			t.Fatalf("%s: as a search result: %+v, %v", name, again, err)
		}
	}
}
