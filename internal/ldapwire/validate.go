package ldapwire

// Structural validation of client requests.
//
// The proxy forwards requests as raw BER over connections shared by many
// clients. A server that cannot decode a request does not just fail that
// operation: slapd, for one, answers a Notice of Disconnection ("decoding
// error", "decoding controls error") and closes the whole connection, which
// would fail every other client's operations on it and mark the server
// unavailable. So every request is checked against its RFC 4511 ASN.1
// structure first, without allocating, and a client that sends one that
// does not fit is disconnected (RFC 4511, 4.1.1) before anything reaches a
// server.

// ldapUniversal are the universal tags of LDAP's ASN.1.
var ldapUniversal = map[byte]bool{tagBoolean: true, tagInteger: true, tagOctetString: true, 0x05: true,
	tagEnumerated: true, tagSequence: true, tagSet: true}

// maxValidFilterDepth bounds the nesting of and/or/not filters.
const maxValidFilterDepth = 64

// Tags of the structures checked below.
const (
	tagSet         = 0x31
	tagExtName     = 0x80
	tagExtValue    = 0x81
	tagNewSuperior = 0x80
)

// ValidateRequest checks that m's protocolOp and controls are structured as
// RFC 4511 defines them (elements, tags and nesting; not the values).
// Unknown operation tags are an error; unknown filter and authentication
// choices are allowed, as the ASN.1 is extensible there.
func ValidateRequest(m Message) error {
	if err := validateControls(m.Controls); err != nil {
		return err
	}
	switch m.OpTag {
	case OpBindRequest:
		return validateBind(m.Body)
	case OpSearchRequest:
		return validateSearch(m.Body)
	case OpModifyRequest:
		return validateModify(m.Body)
	case OpAddRequest:
		return validateAdd(m.Body)
	case OpDelRequest, OpUnbindRequest:
		return nil
	case OpModifyDNRequest:
		return validateModifyDN(m.Body)
	case OpCompareRequest:
		return validateCompare(m.Body)
	case OpAbandonRequest:
		return checkInt(m.Body, "abandon message ID")
	case OpExtendedRequest:
		return validateExtended(m.Body)
	}
	return malformed("unknown request tag 0x%02x", m.OpTag)
}

// cursor walks the elements of a constructed value; the first error sticks.
type cursor struct {
	rest []byte
	err  error
}

// next returns the content of the next element, which must have tag.
func (c *cursor) next(tag byte, what string) []byte {
	if c.err != nil {
		return nil
	}
	t, err := expect(c.rest, tag, what)
	if err != nil {
		c.err = err
		return nil
	}
	c.rest = c.rest[t.size:]
	return t.content
}

// optional returns the content of the next element when it has tag.
func (c *cursor) optional(tag byte) ([]byte, bool) {
	if c.err != nil || len(c.rest) == 0 || c.rest[0] != tag {
		return nil, false
	}
	return c.next(tag, ""), c.err == nil
}

// any returns the next element whatever its tag.
func (c *cursor) any(what string) tlv {
	if c.err != nil {
		return tlv{}
	}
	if len(c.rest) == 0 {
		c.err = malformed("%s missing", what)
		return tlv{}
	}
	t, err := readTLV(c.rest)
	if err != nil {
		c.err = err
		return tlv{}
	}
	c.rest = c.rest[t.size:]
	return t
}

func (c *cursor) integer(tag byte, what string) {
	if content := c.next(tag, what); c.err == nil {
		c.err = checkInt(content, what)
	}
}

func (c *cursor) boolean(what string) {
	if content := c.next(tagBoolean, what); c.err == nil && len(content) != 1 {
		c.err = malformed("%s: boolean of %d octets", what, len(content))
	}
}

// check applies fn to the content of the next element with tag.
func (c *cursor) check(tag byte, what string, fn func([]byte) error) {
	if content := c.next(tag, what); c.err == nil {
		c.err = fn(content)
	}
}

// done returns the first error, or one for elements left over.
func (c *cursor) done(what string) error {
	if c.err == nil && len(c.rest) > 0 {
		c.err = malformed("%s: unexpected element 0x%02x", what, c.rest[0])
	}
	return c.err
}

// checkInt accepts INTEGER and ENUMERATED contents of 1 to 4 octets, what
// every decoder (liblber's included) handles.
func checkInt(content []byte, what string) error {
	if len(content) == 0 || len(content) > 4 {
		return malformed("%s: integer of %d octets", what, len(content))
	}
	return nil
}

// each applies fn to every element of a SEQUENCE OF or SET OF content,
// each of which must have tag.
func each(b []byte, tag byte, what string, fn func([]byte) error) error {
	c := cursor{rest: b}
	for len(c.rest) > 0 && c.err == nil {
		content := c.next(tag, what)
		if c.err == nil && fn != nil {
			c.err = fn(content)
		}
	}
	return c.err
}

func validateControls(controls []byte) error {
	if controls == nil {
		return nil
	}
	outer, err := expect(controls, tagControls, "controls")
	if err != nil {
		return err
	}
	return each(outer.content, tagSequence, "control", validateControl)
}

// validateControl: controlType, criticality BOOLEAN OPTIONAL, controlValue
// OCTET STRING OPTIONAL, in that order.
func validateControl(b []byte) error {
	c := cursor{rest: b}
	c.next(tagOctetString, "control type")
	if len(c.rest) > 0 && c.rest[0] == tagBoolean {
		c.boolean("control criticality")
	}
	c.optional(tagOctetString)
	return c.done("control")
}

func validateBind(b []byte) error {
	c := cursor{rest: b}
	c.integer(tagInteger, "bind version")
	c.next(tagOctetString, "bind name")
	auth := c.any("bind authentication")
	switch {
	case c.err != nil:
	case auth.tag == AuthSASL:
		s := cursor{rest: auth.content}
		s.next(tagOctetString, "SASL mechanism")
		s.optional(tagOctetString)
		c.err = s.done("SASL credentials")
	default: // simple, or a choice answered authMethodNotSupported
		c.err = unknownChoice(auth, 0)
	}
	return c.done("bind request")
}

func validateSearch(b []byte) error {
	c := cursor{rest: b}
	c.next(tagOctetString, "search base")
	c.integer(tagEnumerated, "search scope")
	c.integer(tagEnumerated, "search derefAliases")
	c.integer(tagInteger, "search sizeLimit")
	c.integer(tagInteger, "search timeLimit")
	c.boolean("search typesOnly")
	if c.err == nil {
		n, err := validateFilter(c.rest, 0)
		c.rest, c.err = c.rest[n:], err
	}
	c.check(tagSequence, "search attributes", func(b []byte) error { return each(b, tagOctetString, "attribute", nil) })
	return c.done("search request")
}

// validateFilter checks the filter at the start of b and returns its size.
func validateFilter(b []byte, depth int) (int, error) {
	if depth > maxValidFilterDepth {
		return 0, malformed("filter nested deeper than %d", maxValidFilterDepth)
	}
	t, err := readTLV(b)
	if err != nil {
		return 0, err
	}
	switch t.tag {
	case 0xa0, 0xa1: // and, or
		err = filterSet(t.content, depth)
	case 0xa2: // not
		var n int
		if n, err = validateFilter(t.content, depth+1); err == nil && n != len(t.content) {
			err = malformed("not filter with more than one filter")
		}
	case 0xa3, 0xa5, 0xa6, 0xa8: // equality, ordering, approx
		err = validateAssertion(t.content)
	case 0xa4:
		err = validateSubstrings(t.content)
	case 0xa9:
		err = validateExtensible(t.content)
	default: // present (0x87), or a choice the server evaluates as Undefined
		err = unknownChoice(t, depth)
	}
	return t.size, err
}

// unknownChoice accepts an alternative of an extensible CHOICE: LDAP tags
// those context-specific, and its content must be well-formed.
func unknownChoice(t tlv, depth int) error {
	if t.tag&0xc0 != 0x80 {
		return malformed("choice with tag 0x%02x (not context-specific)", t.tag)
	}
	return wellFormed(t, depth)
}

// wellFormed checks that a constructed element's content is a run of
// well-formed elements, down to primitive ones, so that any BER decoder can
// skip or walk it. Universal types are limited to those LDAP's ASN.1 uses
// (RFC 4511, 5.1): others (times, UTF8String...) have content rules of
// their own that decoders enforce.
func wellFormed(t tlv, depth int) error {
	if t.tag&0xc0 == 0 && !ldapUniversal[t.tag] {
		return malformed("universal type 0x%02x is not used by LDAP", t.tag)
	}
	if t.tag&0x20 == 0 {
		return nil
	}
	if depth > maxValidFilterDepth {
		return malformed("elements nested deeper than %d", maxValidFilterDepth)
	}
	for rest := t.content; len(rest) > 0; {
		inner, err := readTLV(rest)
		if err != nil {
			return err
		}
		if err := wellFormed(inner, depth+1); err != nil {
			return err
		}
		rest = rest[inner.size:]
	}
	return nil
}

func filterSet(b []byte, depth int) error {
	for len(b) > 0 {
		n, err := validateFilter(b, depth+1)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// validateAssertion: AttributeValueAssertion, also the compare ava.
func validateAssertion(b []byte) error {
	c := cursor{rest: b}
	c.next(tagOctetString, "attribute description")
	c.next(tagOctetString, "assertion value")
	return c.done("attribute value assertion")
}

func validateSubstrings(b []byte) error {
	c := cursor{rest: b}
	c.next(tagOctetString, "substrings type")
	c.check(tagSequence, "substrings", func(b []byte) error {
		if len(b) == 0 {
			return malformed("substrings filter without substrings")
		}
		for s := (cursor{rest: b}); len(s.rest) > 0; {
			if t := s.any("substring"); s.err != nil || t.tag < 0x80 || t.tag > 0x82 {
				return firstErr(s.err, malformed("substring choice 0x%02x", t.tag))
			}
		}
		return nil
	})
	return c.done("substrings filter")
}

// validateExtensible: MatchingRuleAssertion.
func validateExtensible(b []byte) error {
	c := cursor{rest: b}
	c.optional(0x81) // matchingRule
	c.optional(0x82) // type
	c.next(0x83, "extensible match value")
	if len(c.rest) > 0 && c.rest[0] == 0x84 {
		if content := c.next(0x84, "dnAttributes"); c.err == nil && len(content) != 1 {
			c.err = malformed("dnAttributes: boolean of %d octets", len(content))
		}
	}
	return c.done("extensible match")
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// validatePartialAttribute: type and SET OF value.
func validatePartialAttribute(b []byte) error {
	c := cursor{rest: b}
	c.next(tagOctetString, "attribute type")
	c.check(tagSet, "attribute values", func(b []byte) error { return each(b, tagOctetString, "attribute value", nil) })
	return c.done("attribute")
}

func validateModify(b []byte) error {
	c := cursor{rest: b}
	c.next(tagOctetString, "modify object")
	c.check(tagSequence, "modify changes", func(b []byte) error {
		return each(b, tagSequence, "change", func(b []byte) error {
			ch := cursor{rest: b}
			ch.integer(tagEnumerated, "modify operation")
			ch.check(tagSequence, "modification", validatePartialAttribute)
			return ch.done("change")
		})
	})
	return c.done("modify request")
}

func validateAdd(b []byte) error {
	c := cursor{rest: b}
	c.next(tagOctetString, "add entry")
	c.check(tagSequence, "add attributes", func(b []byte) error {
		return each(b, tagSequence, "attribute", validatePartialAttribute)
	})
	return c.done("add request")
}

func validateModifyDN(b []byte) error {
	c := cursor{rest: b}
	c.next(tagOctetString, "modify DN entry")
	c.next(tagOctetString, "new RDN")
	c.boolean("deleteoldrdn")
	c.optional(tagNewSuperior)
	return c.done("modify DN request")
}

func validateCompare(b []byte) error {
	c := cursor{rest: b}
	c.next(tagOctetString, "compare entry")
	c.check(tagSequence, "compare assertion", validateAssertion)
	return c.done("compare request")
}

func validateExtended(b []byte) error {
	c := cursor{rest: b}
	c.next(tagExtName, "extended request name")
	c.optional(tagExtValue)
	return c.done("extended request")
}
