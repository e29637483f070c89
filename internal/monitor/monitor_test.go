package monitor

import (
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/status"
)

const adminDN = "cn=admin,dc=example,dc=com"

func sample() *status.Status {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	return &status.Status{
		Time: now, Started: now.Add(-time.Hour), Ready: true,
		Build:   status.Build{Version: "1.2.3", Revision: "0123abc", GoVersion: "go1.26.8"},
		Clients: status.Clients{Current: 3, Accepted: 10},
		Servers: []status.Server{
			{Name: "ds1", Address: "127.0.0.1:3891", State: "available", Score: 10, Completed: 100, Since: now},
			{Name: "ds2", Address: "127.0.0.1:3892", State: "unavailable", Score: 1, Reason: "connect: connection refused"},
		},
		Algorithms: []status.Algorithm{{Name: "reads", Type: "fewest-operations", Servers: []string{"ds1", "ds2"}, Usable: 1, Selections: 100}},
	}
}

// request encodes a search (or, with op != nil, another request) as a frame.
func request(t *testing.T, base string, scope int64, filter string, attrs ...string) ldapwire.Message {
	t.Helper()
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 3, nil, "Search Request")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, "Base DN"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, scope, "Scope"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "Deref"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Size"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Time"))
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "TypesOnly"))
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
	return frame(t, req)
}

func frame(t *testing.T, op *ber.Packet) ldapwire.Message {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 2, "MessageID"))
	p.AppendChild(op)
	msg, err := ldapwire.Parse(p.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// answer runs a request as bindDN and returns the entries (dn → attrs) and result code.
func answer(t *testing.T, m *Monitor, msg ldapwire.Message, bindDN string) (map[string]map[string][]string, int, bool) {
	t.Helper()
	entries := map[string]map[string][]string{}
	code := -1
	_, ok := m.Answer(msg, bindDN, func(f []byte) {
		p := ber.DecodePacket(f)
		op := p.Children[1]
		if op.Tag == ldapwire.OpSearchResultEntry&0x1f {
			e := map[string][]string{}
			for _, a := range op.Children[1].Children {
				for _, v := range a.Children[1].Children {
					e[a.Children[0].Value.(string)] = append(e[a.Children[0].Value.(string)], v.Value.(string))
				}
			}
			entries[op.Children[0].Value.(string)] = e
			return
		}
		code = int(op.Children[0].Value.(int64))
	})
	return entries, code, ok
}

func TestMonitorSearches(t *testing.T) {
	m, err := New([]string{adminDN}, sample)
	if err != nil {
		t.Fatal(err)
	}
	ds2 := "cn=LDAP External Server ds2,cn=monitor"
	cases := []struct {
		base   string
		scope  int64
		filter string
		want   []string
		code   int
	}{
		{"cn=monitor", ldapwire.ScopeBase, "(objectClass=*)", []string{"cn=monitor"}, 0},
		{"CN=Monitor", ldapwire.ScopeOne, "(objectClass=*)", []string{"cn=LDAP External Server ds1,cn=monitor", ds2, "cn=Load-Balancing Algorithm reads,cn=monitor"}, 0},
		{"cn=monitor", ldapwire.ScopeSub, "(health-check-state=UNAVAILABLE)", []string{ds2}, 0},
		{"cn=monitor", ldapwire.ScopeSub, "(&(objectClass=ldapmux-server-monitor-entry)(operations-completed>=50))", []string{"cn=LDAP External Server ds1,cn=monitor"}, 0},
		{"cn=monitor", ldapwire.ScopeSub, "(health-check-message=*refused)", []string{ds2}, 0},
		{"cn=monitor", ldapwire.ScopeSub, "(!(|(objectClass=ldapmux-server-monitor-entry)(objectClass=ldapmux-algorithm-monitor-entry)))", []string{"cn=monitor"}, 0},
		{ds2, ldapwire.ScopeBase, "(objectClass=*)", []string{ds2}, 0},
		{"cn=nothing,cn=monitor", ldapwire.ScopeBase, "(objectClass=*)", nil, 32},
	}
	for _, c := range cases {
		got, code, ok := answer(t, m, request(t, c.base, c.scope, c.filter), adminDN)
		if !ok || code != c.code || len(got) != len(c.want) {
			t.Errorf("%s %d %s: code %d, %d entries %v; want %d %v", c.base, c.scope, c.filter, code, len(got), keys(got), c.code, c.want)
			continue
		}
		for _, dn := range c.want {
			if got[dn] == nil {
				t.Errorf("%s %s: missing %s in %v", c.base, c.filter, dn, keys(got))
			}
		}
	}
}

func keys(m map[string]map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMonitorAttributes(t *testing.T) {
	m, _ := New([]string{adminDN}, sample)
	got, _, _ := answer(t, m, request(t, "cn=LDAP External Server ds1,cn=monitor", 0, "(objectClass=*)", "health-check-state", "OPERATIONS-COMPLETED"), " CN=Admin, dc=example,dc=com")
	e := got["cn=LDAP External Server ds1,cn=monitor"]
	if len(e) != 2 || e["health-check-state"][0] != "available" || e["operations-completed"][0] != "100" {
		t.Errorf("entry %v", e)
	}
	got, _, _ = answer(t, m, request(t, "cn=monitor", 0, "(objectClass=*)"), adminDN)
	root := got["cn=monitor"]
	if root["up-time-seconds"][0] != "3600" || root["start-time"][0] != "20260506060809Z" || root["ready"][0] != "TRUE" ||
		root["version"][0] != "1.2.3" || root["build-revision"][0] != "0123abc" || root["go-version"][0] != "go1.26.8" {
		t.Errorf("root %v", root)
	}
	got, _, _ = answer(t, m, request(t, "cn=monitor", 0, "(objectClass=*)", "1.1"), adminDN)
	if len(got["cn=monitor"]) != 0 {
		t.Errorf("1.1 returned %v", got["cn=monitor"])
	}
}

func TestMonitorAccessAndPassThrough(t *testing.T) {
	m, _ := New([]string{adminDN}, sample)
	for _, dn := range []string{"", "uid=user.1,ou=people,dc=example,dc=com"} {
		got, code, ok := answer(t, m, request(t, "cn=monitor", 2, "(objectClass=*)"), dn)
		if !ok || code != ldapwire.InsufficientAccessRights || len(got) != 0 {
			t.Errorf("bind DN %q: code %d, %d entries", dn, code, len(got))
		}
	}
	for _, base := range []string{"dc=example,dc=com", "", "cn=monitor,dc=example,dc=com", "cn=notmonitor"} {
		if _, _, ok := answer(t, m, request(t, base, 2, "(objectClass=*)"), adminDN); ok {
			t.Errorf("base %q answered by the monitor", base)
		}
	}
	del := frame(t, ber.NewString(ber.ClassApplication, ber.TypePrimitive, 10, "cn=LDAP External Server ds1,cn=monitor", "Del"))
	if _, code, ok := answer(t, m, del, adminDN); !ok || code != ldapwire.UnwillingToPerform {
		t.Errorf("delete: %d %v", code, ok)
	}
	if _, err := New([]string{"not a dn"}, sample); err == nil || !strings.Contains(err.Error(), "not a dn") {
		t.Errorf("bad admin DN: %v", err)
	}
}
