package health

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// 389 Directory Server publishes its replication state as a replica update
// vector (RUV) on a tombstone entry below the suffix: one nsds50ruv value
// per replica, "{replica ID URL} mincsn maxcsn". Its CSNs are 20 hex
// digits: seconds since 1970 (8), a sequence number (4), the replica ID
// (4) and a sub-sequence number (4). The newest CSN of each replica is
// what a contextCSN value is to OpenLDAP, so both feed the same view.

// ruvEntry is the RUV tombstone of a suffix.
func ruvEntry(suffix string) string {
	return "nsuniqueid=ffffffff-ffffffff-ffffffff-ffffffff," + suffix
}

// replicaConfigBase holds 389's replica configuration entries, whose
// nsds50ruv is the live RUV (the tombstone's copy is written to the
// database only from time to time).
const replicaConfigBase = "cn=mapping tree,cn=config"

// readRUV reads the newest CSN of every replica from a 389 server's RUV:
// the live one of the suffix's replica configuration entry, else the
// tombstone's.
func readRUV(ctx context.Context, t *Target, suffix string) ([]CSN, error) {
	filter := "(&(objectClass=nsds5replica)(nsds5replicaroot=" + ldap.EscapeFilter(suffix) + "))"
	res, err := t.search(ctx, ldap.NewSearchRequest(replicaConfigBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{"nsds50ruv"}, nil))
	if err == nil && len(firstEntry(res).GetEqualFoldAttributeValues("nsds50ruv")) > 0 {
		return ruvCSNs(firstEntry(res), "the replica entry of "+suffix)
	}
	dn := ruvEntry(suffix)
	res, err = t.search(ctx, ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=nsTombstone)", []string{"nsds50ruv"}, nil))
	if err != nil {
		return nil, fmt.Errorf("read the replica update vector (nsds50ruv of %q): %w", dn, err)
	}
	return ruvCSNs(firstEntry(res), dn)
}

// ruvCSNs reads the newest CSN of every replica of an RUV.
func ruvCSNs(e *ldap.Entry, dn string) ([]CSN, error) {
	csns := []CSN{}
	replicas := 0
	for _, v := range e.GetEqualFoldAttributeValues("nsds50ruv") {
		c, ok, err := parseRUVElement(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", errNoState, dn, err)
		}
		if strings.HasPrefix(v, "{replica ") {
			replicas++ // one that made no change yet has no CSN
		}
		if ok {
			csns = append(csns, c)
		}
	}
	if replicas == 0 {
		return nil, fmt.Errorf("%w: no replica update vector the service account can read (in %s or at %q; is the suffix replicated? the account needs read access to nsds50ruv there)", errNoState, replicaConfigBase, dn)
	}
	return csns, nil
}

// parseRUVElement reads the newest CSN of one RUV value; ok is false for
// the replica generation and for replicas that made no change yet.
func parseRUVElement(v string) (c CSN, ok bool, err error) {
	if !strings.HasPrefix(v, "{replica ") {
		return CSN{}, false, nil // {replicageneration} and others
	}
	end := strings.IndexByte(v, '}')
	if end < 0 {
		return CSN{}, false, fmt.Errorf("invalid RUV element %q", v)
	}
	fields := strings.Fields(v[end+1:])
	if len(fields) < 2 {
		return CSN{}, false, nil
	}
	c, err = Parse389CSN(fields[1])
	return c, err == nil, err
}

// Parse389CSN parses a 389 Directory Server CSN (20 hex digits).
func Parse389CSN(s string) (CSN, error) {
	if len(s) != 20 {
		return CSN{}, fmt.Errorf("invalid 389 CSN %q: want 20 hex digits", s)
	}
	bounds := [...]int{0, 8, 12, 16, 20} // time, sequence, replica ID, sub-sequence
	var n [4]int64
	for i := range n {
		x, err := strconv.ParseInt(s[bounds[i]:bounds[i+1]], 16, 64)
		if err != nil {
			return CSN{}, fmt.Errorf("invalid 389 CSN %q: %w", s, err)
		}
		n[i] = x
	}
	return CSN{Time: time.Unix(n[0], 0).UTC(), Count: int(n[1]), SID: int(n[2]), Mod: int(n[3])}, nil
}
