package fakeldap

import "github.com/ldapmux/ldapmux/internal/ldapwire"

// Entry encodes a SearchResultEntry protocolOp for dn shaped like the sample
// users of internal/slapdtest (about 250 bytes).
func Entry(dn string) []byte {
	var attrs []byte
	attrs = appendAttr(attrs, "objectClass", "top", "person", "organizationalPerson", "inetOrgPerson")
	attrs = appendAttr(attrs, "uid", "user.1")
	attrs = appendAttr(attrs, "cn", "User 1")
	attrs = appendAttr(attrs, "sn", "1")
	attrs = appendAttr(attrs, "mail", "user.1@example.com")
	attrs = appendAttr(attrs, "telephoneNumber", "+1 555 0000001")
	body := appendTLV(nil, 0x04, []byte(dn))
	body = appendTLV(body, 0x30, attrs)
	return appendTLV(nil, ldapwire.OpSearchResultEntry, body)
}

// appendAttr appends a PartialAttribute.
func appendAttr(dst []byte, name string, values ...string) []byte {
	var vals []byte
	for _, v := range values {
		vals = appendTLV(vals, 0x04, []byte(v))
	}
	inner := appendTLV(appendTLV(nil, 0x04, []byte(name)), 0x31, vals)
	return appendTLV(dst, 0x30, inner)
}

// appendTLV appends one BER element.
func appendTLV(dst []byte, tag byte, content []byte) []byte {
	dst = append(dst, tag)
	switch n := len(content); {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n <= 0xff:
		dst = append(dst, 0x81, byte(n))
	default:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	}
	return append(dst, content...)
}
