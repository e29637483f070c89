package ldapwire

// Attribute is one attribute of an entry the proxy answers itself.
type Attribute struct {
	Type   string
	Values []string
}

// AppendSearchEntry appends a SearchResultEntry for id. With typesOnly the
// attributes carry no values (RFC 4511, 4.5.1.8).
func AppendSearchEntry(dst []byte, id int32, dn string, attrs []Attribute, typesOnly bool) []byte {
	list := 0
	for _, a := range attrs {
		list += tlvSize(attributeLen(a, typesOnly))
	}
	body := tlvSize(len(dn)) + tlvSize(list)
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+tlvSize(body))
	dst = appendInt(dst, tagInteger, int64(id))
	dst = appendHeader(dst, OpSearchResultEntry, body)
	dst = appendString(dst, tagOctetString, dn)
	dst = appendHeader(dst, tagSequence, list)
	for _, a := range attrs {
		dst = appendAttribute(dst, a, typesOnly)
	}
	return dst
}

// attributeLen is the content length of a PartialAttribute.
func attributeLen(a Attribute, typesOnly bool) int {
	return tlvSize(len(a.Type)) + tlvSize(valuesLen(a, typesOnly))
}

func valuesLen(a Attribute, typesOnly bool) int {
	if typesOnly {
		return 0
	}
	n := 0
	for _, v := range a.Values {
		n += tlvSize(len(v))
	}
	return n
}

func appendAttribute(dst []byte, a Attribute, typesOnly bool) []byte {
	dst = appendHeader(dst, tagSequence, attributeLen(a, typesOnly))
	dst = appendString(dst, tagOctetString, a.Type)
	dst = appendHeader(dst, 0x31, valuesLen(a, typesOnly)) // SET OF
	if typesOnly {
		return dst
	}
	for _, v := range a.Values {
		dst = appendString(dst, tagOctetString, v)
	}
	return dst
}

// resultNames are the RFC 4511 (appendix A) and RFC 4370 result code names.
var resultNames = map[int]string{
	0: "success", 1: "operationsError", 2: "protocolError", 3: "timeLimitExceeded",
	4: "sizeLimitExceeded", 5: "compareFalse", 6: "compareTrue", 7: "authMethodNotSupported",
	8: "strongerAuthRequired", 10: "referral", 11: "adminLimitExceeded",
	12: "unavailableCriticalExtension", 13: "confidentialityRequired", 14: "saslBindInProgress",
	16: "noSuchAttribute", 17: "undefinedAttributeType", 18: "inappropriateMatching",
	19: "constraintViolation", 20: "attributeOrValueExists", 21: "invalidAttributeSyntax",
	32: "noSuchObject", 33: "aliasProblem", 34: "invalidDNSyntax", 36: "aliasDereferencingProblem",
	48: "inappropriateAuthentication", 49: "invalidCredentials", 50: "insufficientAccessRights",
	51: "busy", 52: "unavailable", 53: "unwillingToPerform", 54: "loopDetect",
	64: "namingViolation", 65: "objectClassViolation", 66: "notAllowedOnNonLeaf",
	67: "notAllowedOnRDN", 68: "entryAlreadyExists", 69: "objectClassModsProhibited",
	71: "affectsMultipleDSAs", 80: "other", 118: "canceled", 119: "noSuchOperation",
	120: "tooLate", 121: "cannotCancel", 122: "assertionFailed", 123: "authorizationDenied",
}

// ResultName is the name of a result code ("success", "noSuchObject"), "none"
// for -1 (no result sent) and "unknown" for codes outside the standards, so
// that it can label metrics without unbounded values.
func ResultName(code int) string {
	if code == -1 {
		return "none"
	}
	if n, ok := resultNames[code]; ok {
		return n
	}
	return "unknown"
}

// OperationName is a short name of a request tag ("search", "modify-dn"),
// fixed for metrics labels; "unknown" for other tags.
func OperationName(tag byte) string {
	switch tag {
	case OpBindRequest:
		return "bind"
	case OpSearchRequest:
		return "search"
	case OpModifyRequest:
		return "modify"
	case OpAddRequest:
		return "add"
	case OpDelRequest:
		return "delete"
	case OpModifyDNRequest:
		return "modify-dn"
	case OpCompareRequest:
		return "compare"
	case OpExtendedRequest:
		return "extended"
	case OpAbandonRequest:
		return "abandon"
	case OpUnbindRequest:
		return "unbind"
	}
	return "unknown"
}

// EntryValues calls fn for every value of every attribute of a
// SearchResultEntry.
func EntryValues(msg Message, fn func(attr, value []byte)) error {
	_, err := AppendEntryFiltered(nil, msg, msg.ID, func(attr, value []byte) bool { fn(attr, value); return true })
	return err
}

// AppendBaseSearch appends a base-object search of base with the filter
// (objectClass=*) for attrs, with control (one encoded Control) when not
// nil.
func AppendBaseSearch(dst []byte, id int32, base string, attrs []string, control []byte) []byte {
	var body []byte
	body = appendString(body, tagOctetString, base)
	body = appendInt(body, tagEnumerated, ScopeBase)
	body = appendInt(body, tagEnumerated, 0) // neverDerefAliases
	body = appendInt(body, tagInteger, 0)    // sizeLimit
	body = appendInt(body, tagInteger, 0)    // timeLimit
	body = append(body, tagBoolean, 1, 0)    // typesOnly FALSE
	body = appendString(body, 0x87, "objectClass")
	var list []byte
	for _, a := range attrs {
		list = appendString(list, tagOctetString, a)
	}
	body = AppendElement(body, tagSequence, list)
	op := AppendElement(nil, OpSearchRequest, body)
	return AppendMessage(dst, id, op, nil, control)
}
