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

// readRUV reads the newest CSN of every replica from a 389 server's RUV.
func readRUV(ctx context.Context, t *Target, suffix string) ([]CSN, error) {
	dn := ruvEntry(suffix)
	res, err := t.search(ctx, ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=nsTombstone)", []string{"nsds50ruv"}, nil))
	if err != nil {
		return nil, fmt.Errorf("read the replica update vector (nsds50ruv of %q): %w", dn, err)
	}
	var csns []CSN
	for _, v := range firstEntry(res).GetAttributeValues("nsds50ruv") {
		c, ok, err := parseRUVElement(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", errNoState, dn, err)
		}
		if ok {
			csns = append(csns, c)
		}
	}
	if len(csns) == 0 {
		return nil, fmt.Errorf("%w: no replica update vector the service account can read at %q (is the suffix replicated? the account needs read access to it)", errNoState, dn)
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
	var n [4]int64
	for i, w := range []int{8, 4, 4, 4} {
		off := []int{0, 8, 12, 16}[i]
		x, err := strconv.ParseInt(s[off:off+w], 16, 64)
		if err != nil {
			return CSN{}, fmt.Errorf("invalid 389 CSN %q: %w", s, err)
		}
		n[i] = x
	}
	return CSN{Time: time.Unix(n[0], 0).UTC(), Count: int(n[1]), SID: int(n[2]), Mod: int(n[3])}, nil
}
