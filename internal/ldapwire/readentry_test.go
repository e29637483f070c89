package ldapwire

import (
	"bytes"
	"testing"
)

func TestReadEntryValue(t *testing.T) {
	entry := AppendSearchEntry(nil, 1, "cn=x,dc=example", []Attribute{
		{Type: "cn", Values: []string{"x"}},
		{Type: "entryCSN", Values: []string{"20261204213000.123456Z#000000#001#000000"}},
	}, false)
	msg, err := Parse(entry)
	if err != nil {
		t.Fatal(err)
	}
	// a Post-Read control's value is the SearchResultEntry element alone
	value := AppendElement(nil, OpSearchResultEntry, msg.Body)
	v, ok := ReadEntryValue(value, "ENTRYcsn")
	if !ok || string(v) != "20261204213000.123456Z#000000#001#000000" {
		t.Errorf("ReadEntryValue = %q, %v", v, ok)
	}
	if _, ok := ReadEntryValue(value, "description"); ok {
		t.Error("found a missing attribute")
	}
	if _, ok := ReadEntryValue(value[:len(value)-3], "entryCSN"); ok {
		t.Error("read a truncated entry")
	}
	if n := testing.AllocsPerRun(100, func() { ReadEntryValue(value, "entryCSN") }); n != 0 {
		t.Errorf("ReadEntryValue allocates %v times", n)
	}
}

func TestWithoutControl(t *testing.T) {
	post := AppendControl(nil, "1.3.6.1.1.13.2", false, []byte{0x64, 0})
	other := AppendControl(nil, OIDPagedResults, false, AppendPagedValue(nil, 0, "c"))
	if got := WithoutControl(AppendControls(post), "1.3.6.1.1.13.2"); got != nil {
		t.Errorf("only control removed: %x, want nil", got)
	}
	got := WithoutControl(AppendControls(post, other), "1.3.6.1.1.13.2")
	if want := AppendControls(other); !bytes.Equal(got, want) {
		t.Errorf("got %x, want %x", got, want)
	}
	if _, ok := FindControl(got, OIDPagedResults); !ok {
		t.Error("the other control is gone")
	}
}
