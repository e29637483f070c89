package ldapwire

import "bytes"

// ReadEntryValue returns the first value of attr (compared ignoring case)
// in an encoded SearchResultEntry, such as the value of a Pre-Read or
// Post-Read response control (RFC 4527). It does not allocate.
func ReadEntryValue(entry []byte, attr string) ([]byte, bool) {
	e, err := expect(entry, OpSearchResultEntry, "read entry")
	if err != nil {
		return nil, false
	}
	_, list, err := splitEntry(e.content)
	if err != nil {
		return nil, false
	}
	for len(list) > 0 {
		typ, vals, size, err := nextAttribute(list)
		if err != nil {
			return nil, false
		}
		if len(vals) > 0 && bytes.EqualFold(typ, []byte(attr)) {
			v, err := expect(vals, tagOctetString, "attribute value")
			return v.content, err == nil
		}
		list = list[size:]
	}
	return nil, false
}

// WithoutControl returns a [0] Controls element holding the controls of
// controls but those with oid; nil when none is left. It allocates only
// when other controls remain.
func WithoutControl(controls []byte, oid string) []byte {
	outer, err := expect(controls, tagControls, "controls")
	if err != nil {
		return controls
	}
	var kept []byte
	for rest := outer.content; len(rest) > 0; {
		t, err := readTLV(rest)
		if err != nil {
			return controls
		}
		if c, err := parseControl(t.content); err != nil || string(c.OID) != oid {
			kept = append(kept, rest[:t.size]...)
		}
		rest = rest[t.size:]
	}
	if kept == nil {
		return nil
	}
	return AppendElement(nil, tagControls, kept)
}
