package ldapwire

// Control and extended operation OIDs the proxy inspects.
const (
	OIDPagedResults      = "1.2.840.113556.1.4.319"   // RFC 2696
	OIDServerSortRequest = "1.2.840.113556.1.4.473"   // RFC 2891
	OIDVLVRequest        = "2.16.840.1.113730.3.4.9"  // draft-ietf-ldapext-ldapv3-vlv-09
	OIDVLVResponse       = "2.16.840.1.113730.3.4.10" // draft-ietf-ldapext-ldapv3-vlv-09
	OIDSyncRequest       = "1.3.6.1.4.1.4203.1.9.1.1" // RFC 4533
	OIDPersistentSearch  = "2.16.840.1.113730.3.4.3"  // draft-ietf-ldapext-psearch-03
	// OIDADNotification is Active Directory's change notification
	// (LDAP_SERVER_NOTIFICATION_OID, MS-ADTS 3.1.1.3.4.1.9): a search that
	// never ends, answered with an entry whenever one changes.
	OIDADNotification = "1.2.840.113556.1.4.528"
	OIDCancel         = "1.3.6.1.1.8"    // RFC 3909
	OIDStartTxn       = "1.3.6.1.1.21.1" // RFC 5805
	OIDTxnSpec        = "1.3.6.1.1.21.2" // RFC 5805
	OIDEndTxn         = "1.3.6.1.1.21.3" // RFC 5805
	OIDTurn           = "1.3.6.1.1.19"   // RFC 4531
	// OIDPasswordPolicy is the password policy request and response
	// control (draft-behera-ldap-password-policy).
	OIDPasswordPolicy = "1.3.6.1.4.1.42.2.27.8.5.1"
	// OIDPasswordExpired is 389 Directory Server's password-expired
	// response control: the session may only change the password.
	OIDPasswordExpired = "2.16.840.1.113730.3.4.4"
)

// Sync request modes (RFC 4533, 2.2).
const (
	SyncRefreshOnly       = 1
	SyncRefreshAndPersist = 3
)

// FindControl returns the first control with oid in a [0] Controls element
// (nil: none). A malformed element gives false, whatever it holds. It does
// not allocate for well-formed controls.
func FindControl(controls []byte, oid string) (Control, bool) {
	var found Control
	ok := false
	err := EachControl(controls, func(c Control) bool {
		if !ok && string(c.OID) == oid {
			found, ok = c, true
		}
		return true
	})
	if err != nil {
		return Control{}, false
	}
	return found, ok
}

// ParsePagedValue decodes a paged results control value, request or
// response (RFC 2696): SEQUENCE { size INTEGER, cookie OCTET STRING }.
// The cookie aliases value.
func ParsePagedValue(value []byte) (size int, cookie []byte, err error) {
	c, err := valueCursor(value, "paged results value")
	if err != nil {
		return 0, nil, err
	}
	size = c.count(tagInteger, "page size")
	cookie = c.next(tagOctetString, "paging cookie")
	if err := c.done("paged results value"); err != nil {
		return 0, nil, err
	}
	return size, cookie, nil
}

// ParseVLVRequestContext decodes a virtual list view request control value
// and returns its contextID, nil when absent:
//
//	SEQUENCE { beforeCount INTEGER, afterCount INTEGER,
//	           target CHOICE { byOffset [0] SEQUENCE { offset INTEGER, contentCount INTEGER },
//	                           greaterThanOrEqual [1] AssertionValue },
//	           contextID OCTET STRING OPTIONAL }
func ParseVLVRequestContext(value []byte) (contextID []byte, err error) {
	c, err := valueCursor(value, "VLV request value")
	if err != nil {
		return nil, err
	}
	c.count(tagInteger, "VLV beforeCount")
	c.count(tagInteger, "VLV afterCount")
	if target := c.any("VLV target"); c.err == nil {
		c.err = checkVLVTarget(target)
	}
	contextID, _ = c.optional(tagOctetString)
	if err := c.done("VLV request value"); err != nil {
		return nil, err
	}
	return contextID, nil
}

// checkVLVTarget checks the byOffset or greaterThanOrEqual target choice.
func checkVLVTarget(t tlv) error {
	switch t.tag {
	case 0xa0:
		c := cursor{rest: t.content}
		c.count(tagInteger, "VLV offset")
		c.count(tagInteger, "VLV contentCount")
		return c.done("VLV byOffset")
	case 0x81:
		return nil
	}
	return malformed("VLV target: unknown choice 0x%02x", t.tag)
}

// ParseVLVResponseContext decodes a virtual list view response control
// value and returns its contextID, nil when absent:
//
//	SEQUENCE { targetPosition INTEGER, contentCount INTEGER,
//	           virtualListViewResult ENUMERATED, contextID OCTET STRING OPTIONAL }
func ParseVLVResponseContext(value []byte) (contextID []byte, err error) {
	c, err := valueCursor(value, "VLV response value")
	if err != nil {
		return nil, err
	}
	c.count(tagInteger, "VLV targetPosition")
	c.count(tagInteger, "VLV contentCount")
	c.count(tagEnumerated, "VLV result")
	contextID, _ = c.optional(tagOctetString)
	if err := c.done("VLV response value"); err != nil {
		return nil, err
	}
	return contextID, nil
}

// ParseSyncRequestMode decodes a sync request control value (RFC 4533) and
// returns its mode, SyncRefreshOnly or SyncRefreshAndPersist:
//
//	SEQUENCE { mode ENUMERATED, cookie OCTET STRING OPTIONAL, reloadHint BOOLEAN DEFAULT FALSE }
func ParseSyncRequestMode(value []byte) (mode int, err error) {
	c, err := valueCursor(value, "sync request value")
	if err != nil {
		return 0, err
	}
	mode = c.count(tagEnumerated, "sync mode")
	if c.err == nil && mode != SyncRefreshOnly && mode != SyncRefreshAndPersist {
		c.err = malformed("sync mode %d", mode)
	}
	c.optional(tagOctetString)
	if len(c.rest) > 0 && c.rest[0] == tagBoolean {
		c.boolean("sync reloadHint")
	}
	if err := c.done("sync request value"); err != nil {
		return 0, err
	}
	return mode, nil
}

// valueCursor walks the SEQUENCE that a control value must consist of.
func valueCursor(value []byte, what string) (cursor, error) {
	seq, err := expect(value, tagSequence, what)
	if err != nil {
		return cursor{}, err
	}
	if seq.size != len(value) {
		return cursor{}, malformed("%s: %d bytes after the sequence", what, len(value)-seq.size)
	}
	return cursor{rest: seq.content}, nil
}

// count reads an INTEGER or ENUMERATED element in 0..maxInt.
func (c *cursor) count(tag byte, what string) int {
	content := c.next(tag, what)
	if c.err != nil {
		return 0
	}
	v, err := parseInt(content)
	if err == nil && (v < 0 || v > MaxMessageID) {
		err = malformed("%s %d out of range", what, v)
	}
	c.err = err
	return int(v)
}

// PasswordModify is a decoded Password Modify request value (RFC 3062);
// absent fields are nil.
type PasswordModify struct {
	UserIdentity, OldPassword, NewPassword []byte
}

// ParsePasswordModify decodes the requestValue of an ExtendedRequest
// body: PasswdModifyRequestValue ::= SEQUENCE { userIdentity [0]
// OPTIONAL, oldPasswd [1] OPTIONAL, newPasswd [2] OPTIONAL }. A request
// without a value is an empty PasswordModify.
func ParsePasswordModify(body []byte) (PasswordModify, error) {
	var pm PasswordModify
	value, present, err := extendedValue(body)
	if err != nil || !present {
		return pm, err
	}
	seq, err := expect(value, tagSequence, "PasswdModifyRequestValue")
	if err != nil {
		return pm, err
	}
	for fields := seq.content; len(fields) > 0; {
		f, err := readTLV(fields)
		if err != nil {
			return pm, err
		}
		switch f.tag {
		case 0x80:
			pm.UserIdentity = f.content
		case 0x81:
			pm.OldPassword = f.content
		case 0x82:
			pm.NewPassword = f.content
		default:
			return pm, malformed("password modify: unexpected element 0x%02x", f.tag)
		}
		fields = fields[f.size:]
	}
	return pm, nil
}

// AppendControl appends one Control (RFC 4511, 4.1.11): its OID, the
// criticality when true, and the value when not nil.
func AppendControl(dst []byte, oid string, critical bool, value []byte) []byte {
	var c []byte
	c = appendString(c, tagOctetString, oid)
	if critical {
		c = append(c, tagBoolean, 1, 0xff)
	}
	if value != nil {
		c = AppendElement(c, tagOctetString, value)
	}
	return AppendElement(dst, tagSequence, c)
}

// AppendControls wraps encoded controls in the [0] Controls element of a
// message; nil when there are none.
func AppendControls(ctrls ...[]byte) []byte {
	if len(ctrls) == 0 {
		return nil
	}
	var all []byte
	for _, c := range ctrls {
		all = append(all, c...)
	}
	return AppendElement(nil, tagControls, all)
}

// AppendPagedValue appends a paged results control value (RFC 2696): the
// page size and the cookie.
func AppendPagedValue(dst []byte, size int, cookie string) []byte {
	v := appendInt(nil, tagInteger, int64(size))
	v = appendString(v, tagOctetString, cookie)
	return AppendElement(dst, tagSequence, v)
}

// BindAnswer tells what the controls of a successful bind's answer say of
// the session it opened. said: anything at all, any control but an empty
// password policy response (a server may send one to any bind that
// asked). restricted: that the server restricts the session, by a password
// policy error (a reset password that must be changed), a grace login (an
// expired password) or 389 Directory Server's password-expired control; a
// warning that the password will expire restricts nothing.
func BindAnswer(controls []byte) (said, restricted bool) {
	if len(controls) == 0 {
		return false, false
	}
	_, expired := FindControl(controls, OIDPasswordExpired)
	policy, hasPolicy := FindControl(controls, OIDPasswordPolicy)
	policySaid, policyRestricted := policyResponse(policy.Value)
	restricted = expired || hasPolicy && policyRestricted
	said = WithoutControl(controls, OIDPasswordPolicy) != nil || !hasPolicy || policySaid
	return said, restricted
}

// policyResponse reads a password policy response value
// (draft-behera-ldap-password-policy, 6.2): said when it holds a warning or
// an error, restricted when that is an error or a grace login warning. A
// malformed value counts as both.
func policyResponse(value []byte) (said, restricted bool) {
	if len(value) == 0 {
		return false, false
	}
	seq, err := expect(value, tagSequence, "password policy response")
	if err != nil {
		return true, true
	}
	said = seq.size != len(value) || len(seq.content) > 0
	for rest := seq.content; len(rest) > 0; {
		t, err := readTLV(rest)
		if err != nil {
			return true, true
		}
		switch t.tag {
		case policyError:
			return true, true
		case policyWarning:
			w, err := readTLV(t.content)
			if err != nil || w.tag == policyGraceLogins {
				return true, true
			}
		}
		rest = rest[t.size:]
	}
	return said, false
}

// Tags of a password policy response value
// (draft-behera-ldap-password-policy, 6.2).
const (
	policyWarning     = 0xa0 // [0] warning CHOICE
	policyGraceLogins = 0x81 // warning [1] graceAuthNsRemaining
	policyError       = 0x81 // [1] error ENUMERATED
)
