package replpos

import (
	"errors"
	"fmt"
	"strings"
)

// 389 Directory Server publishes its replication position as a replica
// update vector (RUV): one nsds50ruv value per replica,
// "{replica ID URL} mincsn maxcsn", after a "{replicageneration} csn"
// value. The max CSN of each replica is what a contextCSN value is to
// OpenLDAP. The live RUV is an attribute of the suffix's replica
// configuration entry (under ReplicaConfigBase); a copy is written from
// time to time to a tombstone entry below the suffix (RUVTombstone).

// ReplicaConfigBase holds 389's replica configuration entries.
const ReplicaConfigBase = "cn=mapping tree,cn=config"

// RUVTombstone is the entry below suffix holding the stored copy of the
// RUV.
func RUVTombstone(suffix string) string {
	return "nsuniqueid=ffffffff-ffffffff-ffffffff-ffffffff," + suffix
}

// ErrNoRUV: the values hold no replica element (no RUV, or none the
// reader may see).
var ErrNoRUV = errors.New("no replica update vector")

// ParseRUV reads the max CSN of every replica of an RUV's nsds50ruv
// values. A replica that made no change yet has no CSN and is left out;
// ErrNoRUV says there is no replica element at all.
func ParseRUV(values []string) (Vector, error) {
	var pos Vector
	replicas := 0
	for _, v := range values {
		c, ok, err := ParseRUVElement(v)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(v, "{replica ") {
			replicas++
		}
		if ok {
			pos = pos.Merge(c)
		}
	}
	if replicas == 0 {
		return nil, ErrNoRUV
	}
	return pos, nil
}

// ParseRUVElement reads the max CSN of one RUV value; ok is false for the
// replica generation and for a replica that made no change yet.
func ParseRUVElement(v string) (c CSN, ok bool, err error) {
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
	c, err = Parse389CSN([]byte(fields[1]))
	if err != nil {
		return CSN{}, false, fmt.Errorf("RUV element %q: %w", v, err)
	}
	return c, true, nil
}
