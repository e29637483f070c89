package loadgen

import (
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// The load generator encodes its requests by hand, like ldapwire does for
// the proxy, so that the client spends as little CPU as possible: on a small
// machine it shares the cores with the servers it measures.

// LDAP protocol tags used by the requests.
const (
	tagInteger    = 0x02
	tagOctetStr   = 0x04
	tagEnum       = 0x0a
	tagSequence   = 0x30
	tagSet        = 0x31
	tagBindReq    = 0x60
	tagSearchReq  = 0x63
	tagModifyReq  = 0x66
	tagSimpleAuth = 0x80
	tagEquality   = 0xa3
)

// Search scopes.
const (
	ScopeBase = 0
	ScopeOne  = 1
	ScopeSub  = 2
)

// appendTLV appends one element holding content.
func appendTLV(dst []byte, tag byte, content []byte) []byte {
	return ldapwire.AppendElement(dst, tag, content)
}

// appendInt appends an INTEGER or ENUMERATED of a non-negative value.
func appendInt(dst []byte, tag byte, v int) []byte { return ldapwire.AppendInteger(dst, tag, int64(v)) }

// appendMessage wraps an encoded operation body in an LDAPMessage.
func appendMessage(dst []byte, id int32, opTag byte, body []byte) []byte {
	var idBuf [8]byte
	idEnc := appendInt(idBuf[:0], tagInteger, int(id))
	dst = ldapwire.AppendHeader(dst, tagSequence, len(idEnc)+ldapwire.ElementSize(len(body)))
	dst = append(dst, idEnc...)
	return appendTLV(dst, opTag, body)
}

// appendAttrList appends an AttributeSelection (SEQUENCE OF OCTET STRING).
func appendAttrList(dst []byte, attrs []string) []byte {
	var inner []byte
	for _, a := range attrs {
		inner = appendTLV(inner, tagOctetStr, []byte(a))
	}
	return appendTLV(dst, tagSequence, inner)
}

// appendFilter encodes an LDAP filter string: simple equality filters
// directly, anything else through go-ldap's compiler.
func appendFilter(dst []byte, filter []byte) ([]byte, error) {
	if attr, value, ok := simpleEquality(filter); ok {
		var inner [256]byte
		content := appendTLV(appendTLV(inner[:0], tagOctetStr, attr), tagOctetStr, value)
		return appendTLV(dst, tagEquality, content), nil
	}
	p, err := ldap.CompileFilter(string(filter))
	if err != nil {
		return dst, fmt.Errorf("loadgen: filter %q: %w", filter, err)
	}
	return append(dst, p.Bytes()...), nil
}

// simpleEquality recognises "(attr=value)" without wildcards or escapes.
func simpleEquality(f []byte) (attr, value []byte, ok bool) {
	if len(f) < 4 || f[0] != '(' || f[len(f)-1] != ')' {
		return nil, nil, false
	}
	inner := f[1 : len(f)-1]
	eq := strings.IndexByte(string(inner), '=')
	if eq <= 0 || strings.ContainsAny(string(inner), "()*\\&|!<>~:") {
		return nil, nil, false
	}
	return inner[:eq], inner[eq+1:], true
}

// appendSearchBody appends a SearchRequest body; filter and attrs are
// already encoded.
func appendSearchBody(dst, base []byte, scope, sizeLimit int, filter, attrs []byte) []byte {
	dst = appendTLV(dst, tagOctetStr, base)
	dst = appendInt(dst, tagEnum, scope)
	dst = appendInt(dst, tagEnum, 0) // neverDerefAliases
	dst = appendInt(dst, tagInteger, sizeLimit)
	dst = appendInt(dst, tagInteger, 0) // no time limit
	dst = append(dst, 0x01, 1, 0)       // typesOnly FALSE
	dst = append(dst, filter...)
	return append(dst, attrs...)
}

// scratch holds reusable buffers for nested elements.
type scratch struct{ a, b []byte }

// appendModifyBody appends a ModifyRequest body that replaces attr with value.
func appendModifyBody(dst []byte, s *scratch, dn, attr, value []byte) []byte {
	s.a = appendTLV(s.a[:0], tagOctetStr, value)                        // vals
	s.b = appendTLV(appendTLV(s.b[:0], tagOctetStr, attr), tagSet, s.a) // PartialAttribute
	s.a = appendTLV(appendInt(s.a[:0], tagEnum, 2), tagSequence, s.b)   // change: replace
	s.b = appendTLV(s.b[:0], tagSequence, s.a)                          // changes
	dst = appendTLV(dst, tagOctetStr, dn)
	return appendTLV(dst, tagSequence, s.b)
}

// appendBindBody appends a simple BindRequest body.
func appendBindBody(dst, dn, password []byte) []byte {
	dst = appendInt(dst, tagInteger, 3)
	dst = appendTLV(dst, tagOctetStr, dn)
	return appendTLV(dst, tagSimpleAuth, password)
}
