package ldapwire

import "testing"

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
