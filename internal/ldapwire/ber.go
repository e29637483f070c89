// Package ldapwire reads, inspects and writes LDAPv3 messages as raw BER.
//
// The proxy forwards operations without decoding them into objects: it frames
// one LDAPMessage at a time, reads only what routing needs (message ID,
// operation tag, target DN, bind name, control OIDs) and rewrites the message
// ID in place of a full re-encoding. This is written by hand rather than with
// go-asn1-ber because that library builds a packet tree (several allocations
// per element) for every message, which the forwarding hot path cannot afford.
package ldapwire

import (
	"errors"
	"fmt"
)

// Universal and LDAP-specific BER tags used by the proxy.
const (
	tagBoolean     = 0x01
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagEnumerated  = 0x0a
	tagSequence    = 0x30
	tagControls    = 0xa0 // [0] Controls in LDAPMessage
)

// ErrMalformed is wrapped by every error about bytes that are not valid BER or LDAP.
var ErrMalformed = errors.New("malformed LDAP message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("ldapwire: %w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// parseLength decodes a definite BER length starting at b[0].
// It returns the length and the number of bytes the length octets use.
// n == 0 means more bytes are needed.
func parseLength(b []byte) (length int, n int, err error) {
	if len(b) == 0 {
		return 0, 0, nil
	}
	first := b[0]
	if first < 0x80 {
		return int(first), 1, nil
	}
	count := int(first & 0x7f)
	if count == 0 {
		return 0, 0, malformed("indefinite length is not allowed in LDAP")
	}
	if count > 4 {
		return 0, 0, malformed("length uses %d octets (at most 4 allowed)", count)
	}
	if len(b) < 1+count {
		return 0, 0, nil
	}
	for _, c := range b[1 : 1+count] {
		length = length<<8 | int(c)
	}
	if length < 0 || length > 1<<31-1 {
		return 0, 0, malformed("length %d out of range", length)
	}
	return length, 1 + count, nil
}

// tlv is one decoded BER element; content aliases the input.
type tlv struct {
	tag     byte
	content []byte
	size    int // bytes used by tag, length and content
}

// readTLV decodes the element at the start of b. Multi-byte tags are rejected:
// LDAP never uses them.
func readTLV(b []byte) (tlv, error) {
	if len(b) < 2 {
		return tlv{}, malformed("truncated element")
	}
	if b[0]&0x1f == 0x1f {
		return tlv{}, malformed("multi-byte tag 0x%02x", b[0])
	}
	length, n, err := parseLength(b[1:])
	if err != nil {
		return tlv{}, err
	}
	if n == 0 || len(b) < 1+n+length {
		return tlv{}, malformed("element 0x%02x longer than its container", b[0])
	}
	start := 1 + n
	return tlv{tag: b[0], content: b[start : start+length], size: start + length}, nil
}

// expect reads the element at the start of b and checks its tag.
func expect(b []byte, tag byte, what string) (tlv, error) {
	t, err := readTLV(b)
	if err != nil {
		return t, err
	}
	if t.tag != tag {
		return t, malformed("%s: tag 0x%02x, want 0x%02x", what, t.tag, tag)
	}
	return t, nil
}

// parseInt decodes a BER INTEGER or ENUMERATED content of at most 4 octets.
func parseInt(content []byte) (int64, error) {
	if len(content) == 0 || len(content) > 5 {
		return 0, malformed("integer of %d octets", len(content))
	}
	v := int64(int8(content[0]))
	for _, c := range content[1:] {
		v = v<<8 | int64(c)
	}
	return v, nil
}

// lengthSize is the number of octets appendLength writes for n.
func lengthSize(n int) int {
	switch {
	case n < 0x80:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffff:
		return 4
	default:
		return 5
	}
}

// appendLength appends the definite-length encoding of n.
func appendLength(dst []byte, n int) []byte {
	switch size := lengthSize(n); size {
	case 1:
		return append(dst, byte(n))
	default:
		dst = append(dst, 0x80|byte(size-1))
		for i := size - 2; i >= 0; i-- {
			dst = append(dst, byte(n>>(8*i)))
		}
		return dst
	}
}

// appendHeader appends a tag and the length of content to come.
func appendHeader(dst []byte, tag byte, contentLen int) []byte {
	return appendLength(append(dst, tag), contentLen)
}

// intSize is the number of content octets of a minimal INTEGER encoding of v.
func intSize(v int64) int {
	n := 1
	for v > 127 || v < -128 {
		n++
		v >>= 8
	}
	return n
}

// appendInt appends a complete INTEGER/ENUMERATED element.
func appendInt(dst []byte, tag byte, v int64) []byte {
	n := intSize(v)
	dst = append(dst, tag, byte(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// appendString appends a complete primitive element holding s.
func appendString(dst []byte, tag byte, s string) []byte {
	return append(appendHeader(dst, tag, len(s)), s...)
}

// tlvSize is the full size of an element with content of length n.
func tlvSize(n int) int { return 1 + lengthSize(n) + n }

// AppendElement appends one complete element holding content. It and the
// helpers below serve code that builds requests by hand (the load tool).
func AppendElement(dst []byte, tag byte, content []byte) []byte {
	return append(appendHeader(dst, tag, len(content)), content...)
}

// AppendHeader appends a tag and the definite length of the content to come.
func AppendHeader(dst []byte, tag byte, contentLen int) []byte {
	return appendHeader(dst, tag, contentLen)
}

// AppendInteger appends a complete INTEGER or ENUMERATED element.
func AppendInteger(dst []byte, tag byte, v int64) []byte { return appendInt(dst, tag, v) }

// ElementSize is the full size of an element whose content is n bytes.
func ElementSize(n int) int { return tlvSize(n) }
