package route

import (
	"strings"
	"testing"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// fastDNs are normalised without allocating; slowDNs take ParseDN (they
// are invalid, BER-encoded, unusual or too big).
var (
	fastDNs = []string{
		"uid=app,ou=apps,dc=example,dc=com", "UID=App , OU=Apps,  dc=Example,DC=com ", "cn=John Smith,dc=x",
		"mail=a.b-c_d@example.com,o=x", "cn= spaced ,dc=x", "2.5.4.3=x,dc=y", "cn=a:b,dc=c", "cn=a=b,dc=c",
		`cn=a\,b,dc=c`, `cn=a\2Cb,dc=c`, `cn=a\2cb,dc=c`, `CN=A\,B , DC=C`, "cn=x+sn=y,dc=z", "SN=Y + cn=X,dc=z",
		"cn=b+cn=a+cn=B+cn=A,dc=x", "cn=X+cn=a,dc=x", "cn=x+cn=A,dc=x", "cn=,dc=x", "cn= ,dc=x",
		`cn=\ a\ ,dc=x`, `cn=a\ ,dc=x`, `cn=a\  ,dc=x`, `cn=a\\ ,dc=x`, `cn=a\\\ ,dc=x`, `cn=\20a\20,dc=x`,
		`cn= #x,dc=x`, `cn=\#x,dc=x`, `cn=a#,dc=x`, `cn=\+\;\<\>\"\\\=,dc=x`, `cn=a\00b,dc=x`, "cn=a\tb,dc=x",
		"cn=é,dc=x", "cn=\xff,dc=x", "cn=\xe2\x82,dc=x", "cn=\xef\xbf\xbd,dc=x", `cn=\c3\A9,dc=x`, "cn=a~b!,dc=x",
		"cn=a;dc=b", "cn=a;dc=b,o=c", "o=x", "dc=com", "uid=user.1,ou=people,dc=example,dc=com",
		"cn=a,cn=b,cn=c,cn=d,cn=e,cn=f,cn=g,cn=h,cn=i,cn=j,cn=k,cn=l,cn=m,cn=n,cn=o,cn=p",
	}
	slowDNs = []string{
		"", " ", "\t", " \u00a0", "\u00a0", "uid", "=x", "=a=b", " =x", "cn=#41", "cn=#0403616263,dc=x", "cn=#zz",
		"cn=a,", ",cn=a", "cn=a,,dc=b", "cn=a+,dc=b", "+cn=a", "cn=a,dc", `cn=a\`, `cn=a\2`, `cn=a\zz`, `cn=a\é`,
		`c\=n=x`, "c#n=x", "cé=x", `cn="a"`, "cn=a<b", "cn=a>b", "cn=a\x00b", "cn=x+cn=y+cn=z+cn=a+cn=b+cn=c+cn=d+cn=e+cn=f",
		"cn=a,cn=b,cn=c,cn=d,cn=e,cn=f,cn=g,cn=h,cn=i,cn=j,cn=k,cn=l,cn=m,cn=n,cn=o,cn=p,cn=q",
		"cn=" + strings.Repeat("é", 50) + ",dc=x", "cn=" + strings.Repeat("x", 300),
	}
)

// checkNormDN checks that normDN normalises s exactly as ParseDN does,
// from a string and from bytes.
func checkNormDN(t *testing.T, s string, nonEmpty bool) (slow bool) {
	t.Helper()
	want, err := ParseDN(s)
	wantOK := err == nil && !(nonEmpty && strings.TrimSpace(s) == "")
	for _, fromBytes := range []bool{false, true} {
		var d normDN
		ok := parseDN(&d, s, nonEmpty)
		if fromBytes {
			ok = parseDN(&d, []byte(s), nonEmpty)
		}
		if ok != wantOK {
			t.Errorf("%q (nonEmpty %v, bytes %v): valid %v, ParseDN %v (%v)", s, nonEmpty, fromBytes, ok, wantOK, err)
			continue
		}
		if ok && (!d.is(want) || string(d.text()) != want.String()) {
			t.Errorf("%q (bytes %v): normalised %q, ParseDN %q", s, fromBytes, d.text(), want.String())
		}
		slow = d.isSlow
	}
	return slow
}

func TestNormDNAgreesWithParseDN(t *testing.T) {
	for _, s := range fastDNs {
		for _, nonEmpty := range []bool{false, true} {
			if checkNormDN(t, s, nonEmpty) {
				t.Errorf("%q: not normalised without allocating", s)
			}
		}
	}
	for _, s := range slowDNs {
		checkNormDN(t, s, false)
		checkNormDN(t, s, true)
	}
}

// FuzzNormDN compares normDN with ParseDN on arbitrary input:
// go test -fuzz=FuzzNormDN ./internal/route/
func FuzzNormDN(f *testing.F) {
	for _, s := range append(fastDNs, slowDNs...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkNormDN(t, s, false)
		checkNormDN(t, s, true)
	})
}

// TestDNMatching: target-subtrees, client-bind-subtrees and client-bind-dns
// match as before: case-insensitive, spaces around separators ignored,
// escaped separators inside values, multi-valued RDNs in any order.
func TestDNMatching(t *testing.T) {
	const people = "ou=people,dc=example,dc=com"
	tests := []struct {
		dn, base string
		within   bool // dn is base or below it
	}{
		{"uid=u1,ou=people,dc=example,dc=com", people, true},
		{"UID=U1,OU=People,DC=Example,dc=COM", people, true},
		{"uid=u1 , ou = people,  dc=example ,dc=com ", "OU=People, DC=Example, DC=Com", true},
		{"ou=people,dc=example,dc=com", people, true},
		{"dc=example,dc=com", people, false},
		{"uid=u1,ou=people2,dc=example,dc=com", people, false},
		{"uid=u1,ou=apeople,dc=example,dc=com", people, false},
		{"uid=u1,ou=people,dc=example,dc=com2", people, false},
		{"uid=u1,ou=people,dc=example,dc=com,o=x", people, false},
		{"uid=u1;ou=people;dc=example;dc=com", people, true},
		{`cn=a\,b,ou=people,dc=example,dc=com`, people, true},
		{`cn=a\,ou=people,dc=example,dc=com`, people, false}, // one RDN, value "a,ou=people"
		{`cn=a\,ou=people,dc=example,dc=com`, "dc=example,dc=com", true},
		{`cn=a\2Cb,dc=x`, `CN=A\,B,dc=x`, true},
		{`cn=a\,b,dc=x`, `cn=a,dc=x`, false},
		{`cn=a\+b,dc=x`, `cn=a+b=c,dc=x`, false},
		{"cn=x+sn=y,dc=com", "SN=Y + cn=X,dc=com", true},
		{"uid=1,sn=y+cn=x,dc=com", "cn=x+sn=y,dc=com", true},
		{"uid=1,cn=x,dc=com", "cn=x+sn=y,dc=com", false},
		{"cn=x+sn=y,dc=com", "cn=x,dc=com", false},
		{"ou=people+cn=x,dc=example,dc=com", people, false},
		{`cn=a\ ,dc=com`, `cn=a\20,dc=com`, true},
		{`cn=a ,dc=com`, `cn=a,dc=com`, true},
		{`cn=a\ ,dc=com`, `cn=a,dc=com`, false},
		{"cn=José,dc=com", `cn=Jos\C3\A9,dc=com`, true},
		{"cn=JOSÉ,dc=com", "cn=josé,dc=com", false}, // only ASCII folds
		{"uid=u1,ou=people,dc=example,dc=com", "", true},
		{"", "", true},
		{"garbage", "", false},
		{"uid=u1,,dc=com", "dc=com", false},
		{"cn=#0403616263,dc=com", "cn=abc,dc=com", true}, // BER value: full parser
	}
	for _, tt := range tests {
		base := mustDN(t, tt.base)
		d, err := ParseDN(tt.dn)
		if ref := err == nil && d.Within(base); ref != tt.within {
			t.Fatalf("%q within %q: ParseDN says %v", tt.dn, tt.base, ref)
		}
		equal := tt.within && len(d) == len(base)
		anon := strings.TrimSpace(tt.dn) == ""
		for _, m := range []struct {
			kind string
			c    Criteria
			op   Operation
			want bool
		}{
			{"target-subtrees", Criteria{TargetSubtrees: []DN{base}},
				Operation{Tag: ldapwire.OpSearchRequest, TargetDN: []byte(tt.dn)}, tt.within},
			{"client-bind-subtrees", Criteria{BindSubtrees: []DN{base}},
				Operation{Tag: ldapwire.OpSearchRequest, BindDN: tt.dn}, tt.within && !anon},
			{"client-bind-dns", Criteria{BindDNs: []DN{base}},
				Operation{Tag: ldapwire.OpSearchRequest, BindDN: tt.dn}, equal && !anon},
			{"client-bind-dns (bind)", Criteria{BindDNs: []DN{base}},
				Operation{Tag: ldapwire.OpBindRequest, TargetDN: []byte(tt.dn)}, equal && !anon},
		} {
			if got := m.c.Matches(&view{op: &m.op}); got != m.want {
				t.Errorf("%s: %q against %q: %v, want %v", m.kind, tt.dn, tt.base, got, m.want)
			}
		}
	}
}
