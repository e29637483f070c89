package route

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// bytesOrString is how DNs reach the router: the bound identity as a
// string, the target DN as the request's bytes.
type bytesOrString interface{ ~string | ~[]byte }

// Room in a normDN; bigger DNs take the allocating parser.
const (
	maxDNBytes  = 256 // normalised bytes
	maxDNRDNs   = 16
	maxRDNAttrs = 8 // attribute values in one multi-valued RDN
)

// normDN is a DN normalised exactly as ParseDN does, held without
// allocating: the RDNs joined by ',' in buf, RDN i ending at ends[i]. A DN
// the allocation-free normaliser leaves alone (rare syntax, too big) is
// held parsed by ParseDN in slow.
type normDN struct {
	buf    [maxDNBytes]byte
	ends   [maxDNRDNs]uint16
	rdns   int
	slow   DN
	isSlow bool
}

// parseDN normalises s into d and reports whether it is a valid DN. With
// nonEmpty, a blank DN (the anonymous identity) is not valid.
func parseDN[T bytesOrString](d *normDN, s T, nonEmpty bool) bool {
	d.rdns, d.slow, d.isSlow = 0, nil, false
	if asciiBlank(s) {
		return !nonEmpty
	}
	if normalizeDN(d, s) {
		return true
	}
	str := string(s)
	if nonEmpty && strings.TrimSpace(str) == "" {
		return false
	}
	var err error
	d.slow, err = ParseDN(str)
	d.isSlow = true
	return err == nil
}

// len is the number of RDNs.
func (d *normDN) len() int {
	if d.isSlow {
		return len(d.slow)
	}
	return d.rdns
}

// rdnIs reports whether RDN i is the normalised RDN r.
func (d *normDN) rdnIs(i int, r string) bool {
	if d.isSlow {
		return d.slow[i] == r
	}
	start := 0
	if i > 0 {
		start = int(d.ends[i-1]) + 1
	}
	return string(d.buf[start:d.ends[i]]) == r
}

// within is DN.Within: d is base or lies below it.
func (d *normDN) within(base DN) bool {
	off := d.len() - len(base)
	if off < 0 {
		return false
	}
	for i, r := range base {
		if !d.rdnIs(off+i, r) {
			return false
		}
	}
	return true
}

// is reports whether d is the DN x.
func (d *normDN) is(x DN) bool { return d.len() == len(x) && d.within(x) }

// text is the normalised DN as DN.String gives it. It allocates only for a
// DN held in slow.
func (d *normDN) text() []byte {
	switch {
	case d.isSlow:
		return []byte(d.slow.String())
	case d.rdns == 0:
		return d.buf[:0]
	}
	return d.buf[:d.ends[d.rdns-1]]
}

// Byte classes for the normaliser.
const (
	cSpace   = 1 << iota // ASCII white space: a DN of only these is the root
	cType                // allowed in the attribute types this path takes
	cEscaped             // escaped with a backslash in normalised values
	cInvalid             // invalid unescaped in a value
	cEscape              // may follow a backslash as itself
	cPlain               // kept as is anywhere in a value
)

var dnByte = func() (t [256]uint8) {
	set := func(chars string, class uint8) {
		for i := range len(chars) {
			t[chars[i]] |= class
		}
	}
	set(" \t\n\v\f\r", cSpace)
	set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -.:@_", cType)
	set(`"+,;<>\`, cEscaped)
	set("\x00\";<>", cInvalid)
	set(` "#+,;<=>\`, cEscape)
	for c := byte('!'); c <= '~'; c++ {
		if t[c]&(cEscaped|cInvalid) == 0 && c != '#' {
			t[c] |= cPlain
		}
	}
	return t
}()

// asciiBlank reports whether s is empty or only ASCII white space, which
// ParseDN reads as the root DN.
func asciiBlank[T bytesOrString](s T) bool {
	for i := 0; i < len(s); i++ {
		if dnByte[s[i]]&cSpace == 0 {
			return false
		}
	}
	return true
}

// normalizeDN normalises s into d following ParseDN's grammar. It reports
// false when s needs the full parser: it is invalid, too big, or uses
// syntax kept off this path (BER values, escaped or unusual types).
func normalizeDN[T bytesOrString](d *normDN, s T) bool {
	w := dnWriter{d: d}
	start, typed := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++ // an escaped byte separates nothing
		case c == '=' && !typed:
			if !putType(&w, s[start:i]) {
				return false
			}
			start, typed = i+1, true
		case c == ',' || c == '+' || c == ';':
			if !typed || !putValue(&w, s[start:i]) {
				return false
			}
			if c != '+' {
				w.endRDN()
			}
			start, typed = i+1, false
		}
	}
	if !typed || !putValue(&w, s[start:]) {
		return false
	}
	w.endRDN()
	return !w.full
}

// dnWriter writes a normalised DN into a normDN's buffer.
type dnWriter struct {
	d     *normDN
	n     int                     // bytes written
	rdn   int                     // where the current RDN starts
	attrs [maxRDNAttrs + 1]uint16 // where its attributes start
	nattr int
	full  bool // out of room: the DN needs the full parser
}

func (w *dnWriter) put(c byte) {
	if w.n == len(w.d.buf) {
		w.full = true
		return
	}
	w.d.buf[w.n] = c
	w.n++
}

func (w *dnWriter) putHex(c byte) {
	const digits = "0123456789abcdef"
	w.put('\\')
	w.put(digits[c>>4])
	w.put(digits[c&15])
}

// putType starts an attribute with its type, folded to lower case. It only
// takes types of letters, digits and " -.:@_", which need no decoding.
func putType[T bytesOrString](w *dnWriter, raw T) bool {
	raw = trimSpaces(raw)
	if len(raw) == 0 || w.nattr == maxRDNAttrs {
		return false
	}
	if w.nattr == 0 {
		if w.d.rdns > 0 {
			w.put(',')
		}
		w.rdn = w.n
	}
	w.attrs[w.nattr] = uint16(w.n)
	w.nattr++
	for i := 0; i < len(raw); i++ {
		if dnByte[raw[i]]&cType == 0 {
			return false
		}
		w.put(lowerASCII(raw[i]))
	}
	w.put('=')
	return true
}

// putValue ends an attribute with its value, decoded and escaped again as
// ParseDN and AttributeTypeAndValue.String do.
func putValue[T bytesOrString](w *dnWriter, raw T) bool {
	if len(raw) > 0 && raw[0] == '#' {
		return false // BER-encoded
	}
	raw = trimValue(raw)
	for i := 0; i < len(raw); {
		if c := raw[i]; dnByte[c]&cPlain != 0 {
			w.put(c)
			i++
			continue
		}
		n := putValueUnit(w, raw, i)
		if n == 0 {
			return false
		}
		i += n
	}
	return true
}

// putValueUnit writes the character, escape or UTF-8 sequence at raw[i]
// and returns its length, 0 if it is invalid.
func putValueUnit[T bytesOrString](w *dnWriter, raw T, i int) int {
	c, n := raw[i], 1
	switch {
	case c == '\\':
		if c, n = unescape(raw[i:]); n == 0 {
			return 0
		}
	case c >= utf8.RuneSelf:
		return putRune(w, raw[i:])
	case dnByte[c]&cInvalid != 0:
		return 0 // must be escaped
	}
	w.putValueByte(c, i == 0, i+n == len(raw))
	return n
}

// putValueByte writes one decoded value byte, escaped as RFC 4514 says;
// first and last say where it is in the value.
func (w *dnWriter) putValueByte(c byte, first, last bool) {
	switch {
	case dnByte[c]&cEscaped != 0, first && c == '#', (first || last) && c == ' ':
		w.put('\\')
		w.put(c)
	case c < ' ' || c > '~':
		w.putHex(c)
	default:
		w.put(c)
	}
}

// putRune writes the UTF-8 sequence starting s hex-escaped, an invalid one
// as U+FFFD (ParseDN decodes values rune by rune), and returns its length.
func putRune[T bytesOrString](w *dnWriter, s T) int {
	var b [utf8.UTFMax]byte
	r, n := utf8.DecodeRune(b[:copy(b[:], s)])
	for _, c := range b[:utf8.EncodeRune(b[:], r)] {
		w.putHex(c)
	}
	return n
}

// unescape decodes the escape starting s: a backslash, then a special
// character or two hex digits. n is its length, 0 if invalid.
func unescape[T bytesOrString](s T) (c byte, n int) {
	if len(s) >= 2 && dnByte[s[1]]&cEscape != 0 {
		return s[1], 2
	}
	if len(s) >= 3 {
		if hi, lo := unhex(s[1]), unhex(s[2]); hi < 16 && lo < 16 {
			return hi<<4 | lo, 3
		}
	}
	return 0, 0
}

func unhex(c byte) byte {
	l := c | 0x20 // lower-cases letters
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= l && l <= 'f':
		return l - 'a' + 10
	}
	return 255
}

// endRDN sorts the current RDN's attributes as RelativeDN.String does,
// lower-cases it and records its end.
func (w *dnWriter) endRDN() {
	if w.nattr > 1 {
		w.sortAttrs()
	}
	w.nattr = 0
	if w.full || w.d.rdns == maxDNRDNs {
		w.full = true
		return
	}
	for i := w.rdn; i < w.n; i++ {
		w.d.buf[i] = lowerASCII(w.d.buf[i])
	}
	w.d.ends[w.d.rdns] = uint16(w.n)
	w.d.rdns++
}

// sortAttrs sorts the current RDN's attributes and joins them with '+'.
func (w *dnWriter) sortAttrs() {
	if w.full || w.n+w.nattr-1 > len(w.d.buf) {
		w.full = true
		return
	}
	w.attrs[w.nattr] = uint16(w.n)
	var order [maxRDNAttrs]int
	for i := range w.nattr {
		order[i] = i
		for j := i; j > 0 && bytes.Compare(w.attr(order[j]), w.attr(order[j-1])) < 0; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	var tmp [maxDNBytes]byte
	out := tmp[:0]
	for i, a := range order[:w.nattr] {
		if i > 0 {
			out = append(out, '+')
		}
		out = append(out, w.attr(a)...)
	}
	w.n = w.rdn + copy(w.d.buf[w.rdn:], out)
}

// attr is attribute i of the current RDN, once attrs marks its end.
func (w *dnWriter) attr(i int) []byte { return w.d.buf[w.attrs[i]:w.attrs[i+1]] }

// trimSpaces drops leading and trailing spaces.
func trimSpaces[T bytesOrString](s T) T {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

// trimValue is trimSpaces keeping a trailing space that is escaped.
func trimValue[T bytesOrString](s T) T {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	end := len(s)
	for end > 0 && s[end-1] == ' ' {
		end--
	}
	if end > 0 && end < len(s) && oddBackslashes(s[:end]) {
		end++
	}
	return s[:end]
}

// oddBackslashes reports whether s ends in an odd number of backslashes.
func oddBackslashes[T bytesOrString](s T) bool {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n%2 == 1
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
