package health

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/replpos"
)

// 389 Directory Server publishes its replication state as a replica update
// vector (RUV, see replpos.ParseRUV). The newest CSN of each replica is
// what a contextCSN value is to OpenLDAP, so both feed the same view.

// readRUV reads the newest CSN of every replica from a 389 server's RUV:
// the live one of the suffix's replica configuration entry, else the
// tombstone's (written to the database only from time to time).
func readRUV(ctx context.Context, t *Target, suffix string) ([]CSN, error) {
	filter := "(&(objectClass=nsds5replica)(nsds5replicaroot=" + ldap.EscapeFilter(suffix) + "))"
	res, err := t.search(ctx, ldap.NewSearchRequest(replpos.ReplicaConfigBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{"nsds50ruv"}, nil))
	if err == nil && len(firstEntry(res).GetEqualFoldAttributeValues("nsds50ruv")) > 0 {
		return ruvCSNs(firstEntry(res), "the replica entry of "+suffix)
	}
	dn := replpos.RUVTombstone(suffix)
	res, err = t.search(ctx, ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=nsTombstone)", []string{"nsds50ruv"}, nil))
	if err != nil {
		return nil, fmt.Errorf("read the replica update vector (nsds50ruv of %q): %w", dn, err)
	}
	return ruvCSNs(firstEntry(res), dn)
}

// ruvCSNs reads the newest CSN of every replica of an RUV.
func ruvCSNs(e *ldap.Entry, dn string) ([]CSN, error) {
	pos, err := replpos.ParseRUV(e.GetEqualFoldAttributeValues("nsds50ruv"))
	if errors.Is(err, replpos.ErrNoRUV) {
		return nil, fmt.Errorf("%w: no replica update vector the service account can read (in %s or at %q; is the suffix replicated? the account needs read access to nsds50ruv there)", errNoState, replpos.ReplicaConfigBase, dn)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", errNoState, dn, err)
	}
	if pos == nil {
		pos = replpos.Vector{}
	}
	return pos, nil
}
