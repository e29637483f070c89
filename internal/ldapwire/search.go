package ldapwire

// Search scopes (RFC 4511, 4.5.1.2).
const (
	ScopeBase = 0
	ScopeOne  = 1
	ScopeSub  = 2
)

// Filter choice tags (RFC 4511, 4.5.1.7).
const (
	FilterAnd        = 0xa0
	FilterOr         = 0xa1
	FilterNot        = 0xa2
	FilterEqual      = 0xa3
	FilterSubstring  = 0xa4
	FilterGreater    = 0xa5
	FilterLess       = 0xa6
	FilterPresent    = 0x87
	FilterApprox     = 0xa8
	FilterExtensible = 0xa9
)

// SearchRequest is a decoded SearchRequest; slices alias the message.
type SearchRequest struct {
	BaseDN     []byte
	Scope      int
	SizeLimit  int
	TypesOnly  bool
	Filter     Filter
	Attributes [][]byte
}

// Filter is a decoded search filter.
type Filter struct {
	Kind     byte     // one of the Filter* tags
	Attr     []byte   // attribute description (not for and, or, not)
	Value    []byte   // assertion value (equality, ordering, approx)
	Children []Filter // and, or; not has one
	Initial  []byte   // substrings
	Any      [][]byte
	Final    []byte
}

// ParseSearch decodes the body of a SearchRequest.
func ParseSearch(body []byte) (SearchRequest, error) {
	var sr SearchRequest
	rest := body
	base, err := expect(rest, tagOctetString, "search base")
	if err != nil {
		return sr, err
	}
	sr.BaseDN, rest = base.content, rest[base.size:]
	ints := [4]int64{}
	tags := [4]byte{tagEnumerated, tagEnumerated, tagInteger, tagInteger}
	for i, tag := range tags {
		e, err := expect(rest, tag, "search parameter")
		if err != nil {
			return sr, err
		}
		if ints[i], err = parseInt(e.content); err != nil {
			return sr, err
		}
		rest = rest[e.size:]
	}
	sr.Scope, sr.SizeLimit = int(ints[0]), int(ints[2])
	types, err := expect(rest, tagBoolean, "typesOnly")
	if err != nil {
		return sr, err
	}
	sr.TypesOnly, rest = len(types.content) == 1 && types.content[0] != 0, rest[types.size:]
	f, n, err := parseFilter(rest, 0)
	if err != nil {
		return sr, err
	}
	sr.Filter, rest = f, rest[n:]
	sr.Attributes, err = parseAttributeList(rest)
	return sr, err
}

// parseAttributeList decodes the requested attributes.
func parseAttributeList(b []byte) ([][]byte, error) {
	list, err := expect(b, tagSequence, "attributes")
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for rest := list.content; len(rest) > 0; {
		a, err := expect(rest, tagOctetString, "attribute")
		if err != nil {
			return nil, err
		}
		out = append(out, a.content)
		rest = rest[a.size:]
	}
	return out, nil
}

// maxFilterDepth bounds nesting so that a hostile filter cannot exhaust the stack.
const maxFilterDepth = 32

// parseFilter decodes the filter at the start of b and returns its size.
func parseFilter(b []byte, depth int) (Filter, int, error) {
	if depth > maxFilterDepth {
		return Filter{}, 0, malformed("filter nested deeper than %d", maxFilterDepth)
	}
	e, err := readTLV(b)
	if err != nil {
		return Filter{}, 0, err
	}
	f := Filter{Kind: e.tag}
	switch e.tag {
	case FilterAnd, FilterOr, FilterNot:
		f.Children, err = parseFilterSet(e.content, depth)
		if err == nil && e.tag == FilterNot && len(f.Children) != 1 {
			err = malformed("not filter with %d elements", len(f.Children))
		}
	case FilterPresent:
		f.Attr = e.content
	case FilterEqual, FilterGreater, FilterLess, FilterApprox:
		f.Attr, f.Value, err = parseAssertion(e.content)
	case FilterSubstring:
		err = parseSubstrings(&f, e.content)
	case FilterExtensible:
		// matched by nothing the proxy serves; kept undecoded
	default:
		err = malformed("unknown filter tag 0x%02x", e.tag)
	}
	return f, e.size, err
}

func parseFilterSet(b []byte, depth int) ([]Filter, error) {
	var out []Filter
	for len(b) > 0 {
		f, n, err := parseFilter(b, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
		b = b[n:]
	}
	return out, nil
}

// parseAssertion decodes an AttributeValueAssertion.
func parseAssertion(b []byte) (attr, value []byte, err error) {
	a, err := expect(b, tagOctetString, "assertion attribute")
	if err != nil {
		return nil, nil, err
	}
	v, err := expect(b[a.size:], tagOctetString, "assertion value")
	if err != nil {
		return nil, nil, err
	}
	return a.content, v.content, nil
}

// parseSubstrings decodes a SubstringFilter into f.
func parseSubstrings(f *Filter, b []byte) error {
	a, err := expect(b, tagOctetString, "substrings attribute")
	if err != nil {
		return err
	}
	f.Attr = a.content
	seq, err := expect(b[a.size:], tagSequence, "substrings")
	if err != nil {
		return err
	}
	for rest := seq.content; len(rest) > 0; {
		s, err := readTLV(rest)
		if err != nil {
			return err
		}
		switch s.tag {
		case 0x80:
			f.Initial = s.content
		case 0x81:
			f.Any = append(f.Any, s.content)
		case 0x82:
			f.Final = s.content
		default:
			return malformed("unknown substring tag 0x%02x", s.tag)
		}
		rest = rest[s.size:]
	}
	return nil
}

// SearchScope returns the scope of a SearchRequest body without decoding
// the rest (no allocation).
func SearchScope(body []byte) (int, error) {
	base, err := expect(body, tagOctetString, "search base")
	if err != nil {
		return 0, err
	}
	scope, err := expect(body[base.size:], tagEnumerated, "search scope")
	if err != nil {
		return 0, err
	}
	v, err := parseInt(scope.content)
	return int(v), err
}
