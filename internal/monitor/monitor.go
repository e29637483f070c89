// Package monitor serves the cn=monitor subtree from ldapmux itself: an
// entry for the proxy, one per backend server and one per load-balancing
// algorithm, in the spirit of PingDirectoryProxy's monitor entries. Only the
// configured admin bind DNs may read it; other clients get
// insufficientAccessRights.
package monitor

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/status"
)

// BaseDN is the root of the monitor subtree.
const BaseDN = "cn=monitor"

var baseDN, _ = ldap.ParseDN(BaseDN)

// Monitor answers requests below cn=monitor (frontend.Monitor).
type Monitor struct {
	admins []*ldap.DN
	status func() *status.Status
}

// New serves cn=monitor to the given admin bind DNs from the reports of
// status.
func New(adminDNs []string, status func() *status.Status) (*Monitor, error) {
	m := &Monitor{status: status}
	for _, s := range adminDNs {
		dn, err := ldap.ParseDN(s)
		if err != nil {
			return nil, fmt.Errorf("monitor: admin DN %q: %w", s, err)
		}
		m.admins = append(m.admins, dn)
	}
	return m, nil
}

// Answer implements frontend.Monitor: requests whose target is cn=monitor
// or below are answered here, the others are left to forward.
func (m *Monitor) Answer(msg ldapwire.Message, bindDN string, send func([]byte)) (int, bool) {
	target, ok := monitorDN(msg.TargetDN())
	if !ok {
		return 0, false
	}
	tag := ldapwire.ResponseTag(msg.OpTag)
	reply := func(code int, text string) (int, bool) {
		send(ldapwire.AppendResult(nil, msg.ID, tag, code, text))
		return code, true
	}
	switch {
	case !m.isAdmin(bindDN):
		return reply(ldapwire.InsufficientAccessRights, "cn=monitor is served by ldapmux to the bind DNs listed in monitor.admin-dns")
	case msg.OpTag != ldapwire.OpSearchRequest:
		return reply(ldapwire.UnwillingToPerform, "cn=monitor is served by ldapmux and is read-only")
	}
	sr, err := ldapwire.ParseSearch(msg.Body)
	if err != nil {
		return reply(ldapwire.ProtocolError, "malformed search request")
	}
	return m.search(msg.ID, target, sr, send)
}

// monitorDN parses dn when it is cn=monitor or below. Most requests are
// told apart by their last bytes without parsing.
func monitorDN(dn []byte) (*ldap.DN, bool) {
	trimmed := bytes.TrimSpace(dn)
	if len(trimmed) < len("monitor") || !bytes.EqualFold(trimmed[len(trimmed)-len("monitor"):], []byte("monitor")) {
		return nil, false
	}
	parsed, err := ldap.ParseDN(string(dn))
	if err != nil || len(parsed.RDNs) == 0 {
		return nil, false
	}
	last := &ldap.DN{RDNs: parsed.RDNs[len(parsed.RDNs)-1:]}
	return parsed, last.EqualFold(baseDN)
}

func (m *Monitor) isAdmin(bindDN string) bool {
	if bindDN == "" {
		return false
	}
	dn, err := ldap.ParseDN(bindDN)
	if err != nil {
		return false
	}
	for _, a := range m.admins {
		if a.EqualFold(dn) {
			return true
		}
	}
	return false
}

// search sends the entries in scope that match the filter, then the result.
func (m *Monitor) search(id int32, base *ldap.DN, sr ldapwire.SearchRequest, send func([]byte)) (int, bool) {
	entries := Entries(m.status())
	done := func(code int, text string) (int, bool) {
		send(ldapwire.AppendResult(nil, id, ldapwire.OpSearchResultDone, code, text))
		return code, true
	}
	if !exists(entries, base) {
		return done(32, "no such entry under cn=monitor") // noSuchObject
	}
	sent := 0
	for _, e := range entries {
		if !inScope(e.parsed, base, sr.Scope) || !Matches(sr.Filter, e.Attrs) {
			continue
		}
		if sr.SizeLimit > 0 && sent == sr.SizeLimit {
			return done(4, "") // sizeLimitExceeded
		}
		send(ldapwire.AppendSearchEntry(nil, id, e.DN, selectAttrs(e.Attrs, sr.Attributes), sr.TypesOnly))
		sent++
	}
	return done(ldapwire.Success, "")
}

func exists(entries []Entry, dn *ldap.DN) bool {
	for _, e := range entries {
		if e.parsed.EqualFold(dn) {
			return true
		}
	}
	return false
}

// inScope reports whether dn is within scope of base.
func inScope(dn, base *ldap.DN, scope int) bool {
	switch scope {
	case ldapwire.ScopeBase:
		return dn.EqualFold(base)
	case ldapwire.ScopeOne:
		return len(dn.RDNs) == len(base.RDNs)+1 && base.AncestorOfFold(dn)
	}
	return dn.EqualFold(base) || base.AncestorOfFold(dn)
}

// selectAttrs keeps the requested attributes: all for none or "*", none
// for "1.1" alone; "+" adds nothing (there are no operational attributes).
func selectAttrs(attrs []ldapwire.Attribute, want [][]byte) []ldapwire.Attribute {
	if len(want) == 0 {
		return attrs
	}
	var out []ldapwire.Attribute
	for _, a := range attrs {
		for _, w := range want {
			if string(w) == "*" || strings.EqualFold(string(w), a.Type) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}
