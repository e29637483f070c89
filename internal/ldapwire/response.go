package ldapwire

// Result codes (RFC 4511, appendix A) the proxy produces or inspects.
const (
	Success                      = 0
	OperationsError              = 1
	ProtocolError                = 2
	TimeLimitExceeded            = 3
	CompareFalse                 = 5
	CompareTrue                  = 6
	AuthMethodNotSupported       = 7
	StrongerAuthRequired         = 8
	AdminLimitExceeded           = 11
	UnavailableCriticalExtension = 12
	ConfidentialityRequired      = 13
	SaslBindInProgress           = 14
	InvalidDNSyntax              = 34
	InvalidCredentials           = 49
	InsufficientAccessRights     = 50
	Busy                         = 51
	Unavailable                  = 52
	UnwillingToPerform           = 53
	Other                        = 80
	Canceled                     = 118 // RFC 3909
	NoSuchOperation              = 119
	TooLate                      = 120
	CannotCancel                 = 121
	AuthorizationDenied          = 123
)

// Well-known OIDs.
const (
	OIDNoticeOfDisconnection = "1.3.6.1.4.1.1466.20036"
	OIDStartTLS              = "1.3.6.1.4.1.1466.20037"
	OIDWhoAmI                = "1.3.6.1.4.1.4203.1.11.3"
	OIDPasswordModify        = "1.3.6.1.4.1.4203.1.11.1"
	OIDProxiedAuthzV2        = "2.16.840.1.113730.3.4.18"
	OIDProxiedAuthzV1        = "2.16.840.1.113730.3.4.12"
)

// Result is the LDAPResult part of a response.
type Result struct {
	Code       int
	MatchedDN  []byte
	Diagnostic []byte
}

// ParseResult decodes the LDAPResult at the start of a response body.
func ParseResult(body []byte) (Result, error) {
	var r Result
	code, err := expect(body, tagEnumerated, "resultCode")
	if err != nil {
		return r, err
	}
	v, err := parseInt(code.content)
	if err != nil {
		return r, err
	}
	r.Code = int(v)
	rest := body[code.size:]
	matched, err := expect(rest, tagOctetString, "matchedDN")
	if err != nil {
		return r, err
	}
	r.MatchedDN = matched.content
	diag, err := expect(rest[matched.size:], tagOctetString, "diagnosticMessage")
	if err != nil {
		return r, err
	}
	r.Diagnostic = diag.content
	return r, nil
}

// AppendResult appends a complete response message with an LDAPResult and
// no controls: resultCode, empty matchedDN and the diagnostic message.
func AppendResult(dst []byte, id int32, respTag byte, code int, diagnostic string) []byte {
	body := tlvSize(intSize(int64(code))) + tlvSize(0) + tlvSize(len(diagnostic))
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+tlvSize(body))
	dst = appendInt(dst, tagInteger, int64(id))
	dst = appendHeader(dst, respTag, body)
	return appendResultFields(dst, code, diagnostic)
}

func appendResultFields(dst []byte, code int, diagnostic string) []byte {
	dst = appendInt(dst, tagEnumerated, int64(code))
	dst = appendString(dst, tagOctetString, "")
	return appendString(dst, tagOctetString, diagnostic)
}

// AppendNotice appends a Notice of Disconnection (RFC 4511, 4.4.1): an
// unsolicited ExtendedResponse with message ID 0.
func AppendNotice(dst []byte, code int, diagnostic string) []byte {
	name := tlvSize(len(OIDNoticeOfDisconnection))
	body := tlvSize(intSize(int64(code))) + tlvSize(0) + tlvSize(len(diagnostic)) + name
	dst = appendHeader(dst, tagSequence, tlvSize(1)+tlvSize(body))
	dst = appendInt(dst, tagInteger, 0)
	dst = appendHeader(dst, OpExtendedResponse, body)
	dst = appendResultFields(dst, code, diagnostic)
	return appendString(dst, 0x8a, OIDNoticeOfDisconnection)
}

// AppendExtendedResult appends an ExtendedResponse with a responseValue.
func AppendExtendedResult(dst []byte, id int32, code int, value string) []byte {
	body := tlvSize(intSize(int64(code))) + tlvSize(0) + tlvSize(0) + tlvSize(len(value))
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+tlvSize(body))
	dst = appendInt(dst, tagInteger, int64(id))
	dst = appendHeader(dst, OpExtendedResponse, body)
	dst = appendResultFields(dst, code, "")
	return appendString(dst, 0x8b, value)
}

// AppendWhoAmI appends a "Who am I?" ExtendedRequest (RFC 4532).
func AppendWhoAmI(dst []byte, id int32) []byte {
	body := tlvSize(len(OIDWhoAmI))
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+tlvSize(body))
	dst = appendInt(dst, tagInteger, int64(id))
	dst = appendHeader(dst, OpExtendedRequest, body)
	return appendString(dst, 0x80, OIDWhoAmI)
}

// ParseExtendedValue returns the responseValue of an ExtendedResponse body
// and whether it has one.
func ParseExtendedValue(body []byte) ([]byte, bool, error) {
	rest := body
	for i := 0; i < 3; i++ { // resultCode, matchedDN, diagnosticMessage
		t, err := readTLV(rest)
		if err != nil {
			return nil, false, err
		}
		rest = rest[t.size:]
	}
	for len(rest) > 0 {
		t, err := readTLV(rest)
		if err != nil {
			return nil, false, err
		}
		if t.tag == 0x8b {
			return t.content, true, nil
		}
		rest = rest[t.size:]
	}
	return nil, false, nil
}

// AppendAbandon appends an AbandonRequest for target.
func AppendAbandon(dst []byte, id, target int32) []byte {
	op := intSize(int64(target))
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+tlvSize(op))
	dst = appendInt(dst, tagInteger, int64(id))
	return appendInt(dst, OpAbandonRequest, int64(target))
}

// AppendUnbind appends an UnbindRequest.
func AppendUnbind(dst []byte, id int32) []byte {
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+2)
	dst = appendInt(dst, tagInteger, int64(id))
	return append(dst, OpUnbindRequest, 0)
}

// AppendSimpleBind appends an LDAPv3 simple BindRequest.
func AppendSimpleBind(dst []byte, id int32, dn, password string) []byte {
	body := tlvSize(1) + tlvSize(len(dn)) + tlvSize(len(password))
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+tlvSize(body))
	dst = appendInt(dst, tagInteger, int64(id))
	dst = appendHeader(dst, OpBindRequest, body)
	dst = appendInt(dst, tagInteger, 3)
	dst = appendString(dst, tagOctetString, dn)
	return appendString(dst, AuthSimple, password)
}

// AppendRootDSEProbe appends a light read: a base search of the root DSE for
// no attributes ("1.1"), with a size limit of 1.
func AppendRootDSEProbe(dst []byte, id int32) []byte {
	const filterAttr = "objectClass"
	body := tlvSize(0) + 3*tlvSize(1) + tlvSize(1) + 3 + // base, scope, deref, size, time, typesOnly
		tlvSize(len(filterAttr)) + tlvSize(tlvSize(3))
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+tlvSize(body))
	dst = appendInt(dst, tagInteger, int64(id))
	dst = appendHeader(dst, OpSearchRequest, body)
	dst = appendString(dst, tagOctetString, "")
	dst = appendInt(dst, tagEnumerated, 0) // baseObject
	dst = appendInt(dst, tagEnumerated, 0) // neverDerefAliases
	dst = appendInt(dst, tagInteger, 1)    // sizeLimit
	dst = appendInt(dst, tagInteger, 0)    // timeLimit
	dst = append(dst, tagBoolean, 1, 0)    // typesOnly FALSE
	dst = appendString(dst, 0x87, filterAttr)
	dst = appendHeader(dst, tagSequence, tlvSize(3))
	return appendString(dst, tagOctetString, "1.1")
}

// ProxiedAuthzControl encodes a critical Proxied Authorization v2 control
// (RFC 4370). authzID is "dn:<DN>" for a user and "" for anonymous; the
// control value is the authzId itself, not a nested BER element.
func ProxiedAuthzControl(authzID string) []byte {
	oid := tlvSize(len(OIDProxiedAuthzV2))
	content := oid + 3 + tlvSize(len(authzID))
	dst := make([]byte, 0, tlvSize(content))
	dst = appendHeader(dst, tagSequence, content)
	dst = appendString(dst, tagOctetString, OIDProxiedAuthzV2)
	dst = append(dst, tagBoolean, 1, 0xff)
	return appendString(dst, tagOctetString, authzID)
}

// AppendResultControls is AppendResult with controls: a [0] Controls
// element (AppendControls), or nil for none.
func AppendResultControls(dst []byte, id int32, respTag byte, code int, diagnostic string, controls []byte) []byte {
	return AppendMessage(dst, id, AppendElement(nil, respTag, appendResultFields(nil, code, diagnostic)), controls, nil)
}
