package proxy

import (
	"testing"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

func TestIdentityFromAuthzID(t *testing.T) {
	for _, tc := range []struct {
		authz, dn, id string
		bad           bool
	}{
		{authz: "", dn: "", id: ""},
		{authz: "dn:", dn: "", id: ""},
		{authz: "dn:uid=a,dc=example,dc=com", dn: "uid=a,dc=example,dc=com", id: "dn:uid=a,dc=example,dc=com"},
		{authz: "dn: uid=a,dc=example,dc=com", dn: "uid=a,dc=example,dc=com", id: "dn:uid=a,dc=example,dc=com"}, // 389's "Who am I?"
		{authz: "dn: ", dn: "", id: ""},
		{authz: "u:alice", dn: "", id: "u:alice"},
		{authz: "u:", bad: true},
		{authz: "uid=a,dc=example,dc=com", bad: true},
	} {
		ident, err := IdentityFromAuthzID(tc.authz)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted as %+v", tc.authz, ident)
			}
			continue
		}
		if err != nil || ident.DN != tc.dn || ident.AuthzID != tc.id {
			t.Errorf("%q: got %+v, %v; want DN %q, authzID %q", tc.authz, ident, err, tc.dn, tc.id)
			continue
		}
		want := ldapwire.ProxiedAuthzControl(tc.id)
		if tc.id == "" { // anonymous travels as "dn:", which 389 Directory Server accepts
			want = ldapwire.ProxiedAuthzControl("dn:")
		}
		if string(ident.control) != string(want) {
			t.Errorf("%q: control %x, want %x", tc.authz, ident.control, want)
		}
	}
}
