package slapdrun

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// Dial returns an unauthenticated go-ldap connection to the replica with a
// 5s connect and request timeout.
func (r *Replica) Dial() (*ldap.Conn, error) {
	conn, err := ldap.DialURL(r.URL, ldap.DialWithDialer(dialer(dialTimeout)))
	if err != nil {
		return nil, fmt.Errorf("slapdrun: dial replica %d: %w", r.ID, err)
	}
	conn.SetTimeout(dialTimeout)
	return conn, nil
}

// withAdmin runs fn on a connection bound as AdminDN. The connection is
// closed when ctx is done, which aborts a pending request.
func (r *Replica) withAdmin(ctx context.Context, fn func(*ldap.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conn, err := r.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < dialTimeout {
		conn.SetTimeout(max(time.Until(dl), time.Millisecond))
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.Bind(AdminDN, AdminPassword); err != nil {
		return fmt.Errorf("slapdrun: bind as admin to replica %d: %w", r.ID, err)
	}
	if err := fn(conn); err != nil {
		return errors.Join(err, ctx.Err())
	}
	return nil
}

// adminBaseSearch reads attrs of dn as AdminDN and fails if it is missing.
func (r *Replica) adminBaseSearch(ctx context.Context, dn string, attrs ...string) error {
	return r.withAdmin(ctx, func(conn *ldap.Conn) error {
		_, err := conn.Search(baseSearch(dn, attrs...))
		return err
	})
}

// baseSearch returns a base-scope search request for dn.
func baseSearch(dn string, attrs ...string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", attrs, nil)
}

// ContextCSN returns the sorted contextCSN values of BaseDN (one per
// serverID that has written), read as AdminDN.
func (r *Replica) ContextCSN(ctx context.Context) ([]string, error) {
	var csns []string
	err := r.withAdmin(ctx, func(conn *ldap.Conn) error {
		res, err := conn.Search(baseSearch(BaseDN, "contextCSN"))
		if err != nil {
			return fmt.Errorf("slapdrun: read contextCSN of replica %d: %w", r.ID, err)
		}
		if len(res.Entries) != 1 {
			return fmt.Errorf("slapdrun: read contextCSN of replica %d: %d entries", r.ID, len(res.Entries))
		}
		csns = res.Entries[0].GetAttributeValues("contextCSN")
		return nil
	})
	sort.Strings(csns)
	return csns, err
}

// OperationCounts returns the number of completed operations per type
// from the children of cn=Operations,cn=Monitor, read as AdminDN. Keys are
// "bind", "unbind", "search", "compare", "modify", "modrdn", "add",
// "delete", "abandon" and "extended". The counts include the bind, search
// and unbind of this call itself (the latter two possibly not yet).
func (r *Replica) OperationCounts(ctx context.Context) (map[string]int64, error) {
	counts := map[string]int64{}
	err := r.withAdmin(ctx, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest("cn=Operations,cn=Monitor", ldap.ScopeSingleLevel,
			ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"cn", "monitorOpCompleted"}, nil))
		if err != nil {
			return fmt.Errorf("slapdrun: read cn=Monitor of replica %d: %w", r.ID, err)
		}
		for _, e := range res.Entries {
			n, err := strconv.ParseInt(e.GetAttributeValue("monitorOpCompleted"), 10, 64)
			if err != nil {
				return fmt.Errorf("slapdrun: %s: bad monitorOpCompleted: %w", e.DN, err)
			}
			counts[strings.ToLower(e.GetAttributeValue("cn"))] = n
		}
		return nil
	})
	return counts, err
}

// CurrentConnections reads how many connections the replica has open
// (cn=Current,cn=Connections,cn=Monitor), the one asking included.
func (r *Replica) CurrentConnections(ctx context.Context) (int64, error) {
	var n int64
	err := r.withAdmin(ctx, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest("cn=Current,cn=Connections,cn=Monitor", ldap.ScopeBaseObject,
			ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"monitorCounter"}, nil))
		if err != nil || len(res.Entries) != 1 {
			return fmt.Errorf("slapdrun: read current connections of replica %d: %v", r.ID, err)
		}
		n, err = strconv.ParseInt(res.Entries[0].GetAttributeValue("monitorCounter"), 10, 64)
		return err
	})
	return n, err
}

// proxyAuthz is the Proxied Authorization v2 control (RFC 4370).
type proxyAuthz struct{ authzID string }

// ProxyAuthzControl returns a critical Proxied Authorization v2 control
// (RFC 4370) for authzID ("dn:<dn>", "u:<user>" or "" for anonymous).
// Unlike ldap.NewControlString, it always encodes the control value, which
// RFC 4370 requires even when the authzId is empty.
func ProxyAuthzControl(authzID string) ldap.Control { return proxyAuthz{authzID} }

// GetControlType implements ldap.Control.
func (p proxyAuthz) GetControlType() string { return ProxiedAuthzOID }

// Encode implements ldap.Control.
func (p proxyAuthz) Encode() *ber.Packet {
	packet := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	packet.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, ProxiedAuthzOID, "Control Type"))
	packet.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, "Criticality"))
	packet.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, p.authzID, "Control Value"))
	return packet
}

// String implements ldap.Control.
func (p proxyAuthz) String() string {
	return fmt.Sprintf("Control Type: Proxied Authorization v2 (%q)  Criticality: true  Control Value: %q", ProxiedAuthzOID, p.authzID)
}
