package loadgen

import (
	"strings"
	"testing"
)

func TestTemplateExpands(t *testing.T) {
	tpl, err := ParseTemplate("uid=user.[1-3],ou=people")
	if err != nil {
		t.Fatal(err)
	}
	d := NewDraw(7)
	seen := map[string]bool{}
	for range 200 {
		d.Reset()
		seen[string(tpl.Append(nil, d))] = true
	}
	for _, want := range []string{"uid=user.1,ou=people", "uid=user.2,ou=people", "uid=user.3,ou=people"} {
		if !seen[want] {
			t.Errorf("never produced %q (got %v)", want, seen)
		}
	}
	if len(seen) != 3 {
		t.Errorf("produced %d distinct values, want 3: %v", len(seen), seen)
	}
}

func TestIdenticalRangesShareANumber(t *testing.T) {
	dn, _ := ParseTemplate("uid=user.[1-1000]")
	pw, _ := ParseTemplate("password.[1-1000]")
	other, _ := ParseTemplate("[5-5]")
	d := NewDraw(1)
	for range 50 {
		d.Reset()
		u := strings.TrimPrefix(string(dn.Append(nil, d)), "uid=user.")
		p := strings.TrimPrefix(string(pw.Append(nil, d)), "password.")
		if u != p {
			t.Fatalf("dn number %s, password number %s: want the same", u, p)
		}
		if got := string(other.Append(nil, d)); got != "5" {
			t.Fatalf("[5-5] gave %q", got)
		}
	}
}

func TestTemplateText(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"plain", "plain"},
		{"(cn=[abc])", "(cn=[abc])"},
		{"a[1-2]b[3-4]", "a[1-2]b[3-4]"},
		{"open[", "open["},
	} {
		tpl, err := ParseTemplate(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if tpl.String() != tc.out {
			t.Errorf("%q: String() = %q, want %q", tc.in, tpl.String(), tc.out)
		}
	}
	if tpl, _ := ParseTemplate("(cn=[abc])"); tpl.HasRanges() {
		t.Errorf("[abc] taken for a range")
	}
	if _, err := ParseTemplate("x[9-1]"); err == nil {
		t.Errorf("reversed range accepted")
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("search=80, modify=10,bind=10")
	if err != nil || m != (Mix{80, 10, 10}) {
		t.Fatalf("got %v, %v", m, err)
	}
	if m, err := ParseMix("bind"); err != nil || !m.only(Bind) {
		t.Fatalf("bind: %v, %v", m, err)
	}
	for _, bad := range []string{"delete=1", "search=x", "search=0"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}
