package route

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// OpSet is a set of operation types.
type OpSet uint16

// Operation types and the groups write and read.
const (
	OpAdd OpSet = 1 << iota
	OpDelete
	OpModify
	OpModifyDN
	OpBind
	OpSearch
	OpCompare
	OpExtended

	OpWrite = OpAdd | OpDelete | OpModify | OpModifyDN
	OpRead  = OpBind | OpSearch | OpCompare
)

type opName struct {
	name string
	set  OpSet
}

// opNames are the configuration names of operation types and groups.
var opNames = []opName{
	{"add", OpAdd}, {"delete", OpDelete}, {"modify", OpModify}, {"modify-dn", OpModifyDN},
	{"bind", OpBind}, {"search", OpSearch}, {"compare", OpCompare}, {"extended", OpExtended},
	{"write", OpWrite}, {"read", OpRead},
}

// OperationNames lists the names ParseOperations accepts.
func OperationNames() []string {
	out := make([]string, len(opNames))
	for i, o := range opNames {
		out[i] = o.name
	}
	return out
}

// ParseOperations turns operation names into a set.
func ParseOperations(names []string) (OpSet, error) {
	var s OpSet
	for _, n := range names {
		i := slices.IndexFunc(opNames, func(o opName) bool { return o.name == n })
		if i < 0 {
			return 0, fmt.Errorf("route: unknown operation %q (use one of %s)", n, strings.Join(OperationNames(), ", "))
		}
		s |= opNames[i].set
	}
	return s, nil
}

// opOf maps a request tag to its type.
func opOf(tag byte) OpSet {
	switch tag {
	case ldapwire.OpAddRequest:
		return OpAdd
	case ldapwire.OpDelRequest:
		return OpDelete
	case ldapwire.OpModifyRequest:
		return OpModify
	case ldapwire.OpModifyDNRequest:
		return OpModifyDN
	case ldapwire.OpBindRequest:
		return OpBind
	case ldapwire.OpSearchRequest:
		return OpSearch
	case ldapwire.OpCompareRequest:
		return OpCompare
	case ldapwire.OpExtendedRequest:
		return OpExtended
	}
	return 0
}

// Has reports whether the set holds the type of a request tag.
func (s OpSet) Has(tag byte) bool { return s&opOf(tag) != 0 }

// DN is a normalised distinguished name: its RDNs, leftmost first, each
// with lower-cased types and values and its attributes sorted. Comparing
// DNs is therefore case-insensitive and ignores insignificant spaces.
type DN []string

// ParseDN parses and normalises an RFC 4514 DN; "" is the root.
func ParseDN(s string) (DN, error) {
	if d, ok := parsePlainDN(s); ok {
		return d, nil
	}
	d, err := ldap.ParseDN(s)
	if err != nil {
		return nil, fmt.Errorf("route: invalid DN %q: %w", s, err)
	}
	out := make(DN, len(d.RDNs))
	for i, r := range d.RDNs {
		out[i] = strings.ToLower(r.String())
	}
	return out, nil
}

// parsePlainDN is ParseDN's fast path for the common DNs made only of
// letters, digits, spaces and ".-_@:" in their values: it gives the same
// result without allocating per character. It reports false for anything
// else, which the full parser handles.
func parsePlainDN(s string) (DN, bool) {
	if strings.TrimSpace(s) == "" {
		return DN{}, true
	}
	out := make(DN, 0, strings.Count(s, ",")+1)
	for rdn := range strings.SplitSeq(s, ",") {
		typ, val, ok := strings.Cut(rdn, "=")
		typ, val = strings.Trim(typ, " "), strings.Trim(val, " ")
		if !ok || !plainDNPart(typ) || !plainDNPart(val) {
			return nil, false
		}
		out = append(out, strings.ToLower(typ+"="+val))
	}
	return out, true
}

func plainDNPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // lower-cases letters
		if !('a' <= c && c <= 'z' || '0' <= s[i] && s[i] <= '9' || strings.IndexByte(" .-_@:", s[i]) >= 0) {
			return false
		}
	}
	return true
}

// String is the normalised DN, usable as a map key.
func (d DN) String() string { return strings.Join(d, ",") }

// Within reports whether d is base or lies below it.
func (d DN) Within(base DN) bool {
	return len(d) >= len(base) && slices.Equal(d[len(d)-len(base):], base)
}

// Criteria select operations. Every criterion given must hold; within a
// criterion, one of the values must. Empty criteria match everything.
type Criteria struct {
	Ops            OpSet          // operation types; 0 means any
	Networks       []netip.Prefix // the client's address is in one of them
	BindDNs        []DN           // the client's identity is one of them
	BindSubtrees   []DN           // the client's identity is in one of these subtrees
	TargetSubtrees []DN           // the target entry (search base) is in one of these subtrees
	Controls       []string       // the request carries a control with one of these OIDs
	ExtendedOIDs   []string       // an extended operation with one of these OIDs
}

// Empty reports whether the criteria match every operation.
func (c *Criteria) Empty() bool {
	return c.Ops == 0 && len(c.Networks) == 0 && len(c.BindDNs) == 0 && len(c.BindSubtrees) == 0 &&
		len(c.TargetSubtrees) == 0 && len(c.Controls) == 0 && len(c.ExtendedOIDs) == 0
}

// Matches reports whether the operation seen through v meets every criterion.
func (c *Criteria) Matches(v *view) bool {
	return (c.Ops == 0 || c.Ops.Has(v.op.Tag)) &&
		c.matchNetwork(v.op.ClientIP) &&
		c.matchIdentity(v) &&
		c.matchTarget(v) &&
		c.matchControls(v.op.Controls) &&
		c.matchExtended(v.op)
}

func (c *Criteria) matchNetwork(ip netip.Addr) bool {
	if len(c.Networks) == 0 {
		return true
	}
	ip = ip.Unmap()
	return slices.ContainsFunc(c.Networks, func(p netip.Prefix) bool { return p.Contains(ip) })
}

func (c *Criteria) matchIdentity(v *view) bool {
	if len(c.BindDNs) == 0 && len(c.BindSubtrees) == 0 {
		return true
	}
	id, ok := v.identity()
	if !ok {
		return false
	}
	for _, d := range c.BindDNs {
		if id.is(d) {
			return true
		}
	}
	return withinAny(id, c.BindSubtrees)
}

func (c *Criteria) matchTarget(v *view) bool {
	if len(c.TargetSubtrees) == 0 {
		return true
	}
	t, ok := v.target()
	return ok && withinAny(t, c.TargetSubtrees)
}

func withinAny(d *normDN, bases []DN) bool {
	for _, b := range bases {
		if d.within(b) {
			return true
		}
	}
	return false
}

func (c *Criteria) matchControls(controls []byte) bool {
	if len(c.Controls) == 0 {
		return true
	}
	found := false
	err := ldapwire.EachControl(controls, func(ctl ldapwire.Control) bool {
		found = holds(c.Controls, ctl.OID)
		return !found
	})
	return found && err == nil
}

func (c *Criteria) matchExtended(op *Operation) bool {
	if len(c.ExtendedOIDs) == 0 {
		return true
	}
	return op.Tag == ldapwire.OpExtendedRequest && holds(c.ExtendedOIDs, op.ExtendedOID)
}

// holds reports whether list has b, comparing without converting b.
func holds(list []string, b []byte) bool {
	for _, s := range list {
		if s == string(b) {
			return true
		}
	}
	return false
}

// view is one operation with its DNs normalised lazily, at most once.
type view struct {
	op                  *Operation
	dns                 *viewDNs // nil until needed
	identDone, targDone bool
	identOK, targOK     bool
}

// viewDNs is room for a view's DNs. Router gives it on its stack, only
// when it reads DNs: zeroing it costs more than routing without DNs.
type viewDNs struct{ ident, targ normDN }

// room is where the DNs go, allocated if the view came without.
func (v *view) room() *viewDNs {
	if v.dns == nil {
		v.dns = new(viewDNs)
	}
	return v.dns
}

// identity is the DN the operation acts as: for a bind the DN being bound,
// otherwise the client's bound DN. Anonymous clients have none.
func (v *view) identity() (*normDN, bool) {
	d := &v.room().ident
	if !v.identDone {
		v.identDone = true
		if v.op.Tag == ldapwire.OpBindRequest {
			v.identOK = parseDN(d, v.op.TargetDN, true)
		} else {
			v.identOK = parseDN(d, v.op.BindDN, true)
		}
	}
	return d, v.identOK
}

// target is the operation's target entry or search base.
func (v *view) target() (*normDN, bool) {
	d := &v.room().targ
	if !v.targDone {
		v.targDone = true
		v.targOK = v.op.Tag != ldapwire.OpExtendedRequest && parseDN(d, v.op.TargetDN, false)
	}
	return d, v.targOK
}
